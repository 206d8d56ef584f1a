package base

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lambdabox/lambdabox/internal/debian"
)

// Lock pins every package of a base image, like a package manager's lock
// file: the build writes it after resolving and reads it on every later
// build, so two builds from one lock install the same bytes.
type Lock struct {
	// Runtime is the recipe's name.
	Runtime string `json:"runtime"`
	// Arch is the Debian architecture.
	Arch string `json:"arch"`
	// Suite is the Debian release every package was resolved from; a lock
	// without one (written before suites) is bookworm's.
	Suite string `json:"suite,omitempty"`
	// Layers are keyed by layer name: os, runtime, ric.
	Layers map[string]*LayerLock `json:"layers"`
}

// SuiteName is the lock's Debian suite.
func (l *Lock) SuiteName() string {
	if l.Suite == "" {
		return "bookworm"
	}
	return l.Suite
}

// LayerLock pins one layer's packages.
type LayerLock struct {
	// Inputs is the hash of the recipe fields that the resolution depends
	// on; when the recipe changes, the layer is resolved again.
	Inputs string `json:"inputs"`
	// Debs are Debian packages with their .deb checksums.
	Debs []debian.Package `json:"debs,omitempty"`
	// Pip are Python distributions as name==version.
	Pip []string `json:"pip,omitempty"`
	// Npm are the npm packages in the image, as name@version.
	Npm []string `json:"npm,omitempty"`
	// NpmLock is npm's package-lock.json of every npm package installed,
	// including those only needed to build (versions and integrity
	// hashes); the build installs exactly it with npm ci.
	NpmLock json.RawMessage `json:"npm_lock,omitempty"`
	// BuildDebs are the Debian packages of the build root that npm
	// packages' install scripts (native addons) run in; not in the image.
	BuildDebs []debian.Package `json:"build_debs,omitempty"`
	// Maven are the jar files copied, with their sha256.
	Maven []Artifact `json:"maven,omitempty"`
	// Jlink are the Debian packages of the build root that jlink runs in;
	// the runtime it links comes from them.
	Jlink []debian.Package `json:"jlink,omitempty"`
}

// Artifact is one downloaded file and its checksum.
type Artifact struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// ReadLock reads a lock file; a missing file gives (nil, nil).
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	var l Lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("reading lock file %s: %w", path, err)
	}
	return &l, nil
}

// Write writes the lock file atomically.
func (l *Lock) Write(path string) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), mode); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
