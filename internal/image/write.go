package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Output kinds.
const (
	OCI     = "oci" // an OCI image layout directory
	Tarball = "tar" // a docker-loadable tarball
)

// Output is one file-system destination of an image.
type Output struct {
	Kind string // OCI or Tarball
	Path string
}

func (o Output) String() string { return o.Kind + ":" + o.Path }

// ParseOutput parses an --output value, oci:DIR or tar:FILE, and checks
// that the directory it goes into exists.
func ParseOutput(s string) (Output, error) {
	kind, path, ok := strings.Cut(s, ":")
	if !ok || (kind != OCI && kind != Tarball) || path == "" {
		return Output{}, fmt.Errorf("--output %q: want oci:DIR or tar:FILE", s)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return Output{}, fmt.Errorf("--output %s: directory %s does not exist", path, filepath.Dir(path))
	}
	return Output{Kind: kind, Path: path}, nil
}

// Destinations says where Write puts an image.
type Destinations struct {
	// Outputs are written in order; each gets its SBOM beside it as
	// <path>.spdx.json.
	Outputs []Output
	// Load loads the image into Engine ("docker", "podman", or "" for
	// whichever answers).
	Load   bool
	Engine string
	// Push, when set, is where the image is pushed, with Keychain.
	Push name.Reference
}

// Empty reports whether d names no destination at all.
func (d Destinations) Empty() bool { return len(d.Outputs) == 0 && !d.Load && d.Push == nil }

// Write puts img, tagged tag, everywhere d names: the file outputs (each
// with sbom beside it, when sbom is not nil), then the engine, then the
// registry. It stops at the first failure.
func Write(ctx context.Context, img v1.Image, tag name.Tag, d Destinations, sbom []byte) error {
	for _, out := range d.Outputs {
		var err error
		switch out.Kind {
		case OCI:
			err = WriteLayout(out.Path, img, tag)
		case Tarball:
			err = WriteTarball(out.Path, img, tag)
		default:
			err = fmt.Errorf("output %s: unknown kind %q", out, out.Kind)
		}
		if err != nil {
			return err
		}
		if sbom != nil {
			if err := os.WriteFile(out.Path+".spdx.json", sbom, 0o644); err != nil {
				return fmt.Errorf("writing the SBOM of %s: %w", out, err)
			}
		}
	}
	if d.Load {
		if err := Load(ctx, d.Engine, img, tag); err != nil {
			return err
		}
	}
	if d.Push != nil {
		if err := Push(ctx, d.Push, img); err != nil {
			return err
		}
	}
	return nil
}

// ErrBadEpoch is wrapped by SourceDateEpoch for a value that is not a
// number of seconds.
var ErrBadEpoch = errors.New("SOURCE_DATE_EPOCH: want seconds since 1970")

// SourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org): the
// time stamped on every file and on the image. Unset, it is the zero time,
// which the builders take as the Unix epoch.
func SourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q", ErrBadEpoch, v)
	}
	return time.Unix(n, 0), nil
}
