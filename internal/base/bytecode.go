package base

import (
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// loaders are the dynamic loaders of the image's architectures and the
// library directories they search, relative to the root.
var loaders = map[string]struct{ ld, libs string }{
	"amd64": {"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu:usr/lib/x86_64-linux-gnu"},
	"arm64": {"lib/ld-linux-aarch64.so.1", "lib/aarch64-linux-gnu:usr/lib/aarch64-linux-gnu"},
}

// pythonBytecode compiles the Python sources of t below bc.Dirs, in a
// throwaway root holding the layers below and t, with the image's own
// Python started through the image's dynamic loader (no chroot, so no
// root), and adds the .pyc files it writes to t.
//
// .pyc files do not depend on the architecture: for an image of another
// architecture than the host's, the root gets the same Debian packages
// built for the host, and their Python compiles the same sources.
func (b *builder) pythonBytecode(ctx context.Context, bc *recipe.Bytecode, t *image.Tree) error {
	tmp, err := os.MkdirTemp(b.cfg.CacheDir, "bytecode-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	full := image.NewTree()
	for _, l := range b.below {
		if err := addLayer(full, l); err != nil {
			return err
		}
	}
	full.Merge(t)
	host := hostArch()
	if host != b.cfg.Arch {
		if err := b.addHostPackages(ctx, full); err != nil {
			return fmt.Errorf("compiling Python bytecode with this %s host's build of the image's packages: %w", host, err)
		}
	}
	if err := full.WriteDir(root); err != nil {
		return err
	}
	// Debian links sitecustomize.py to /etc: the root's, not the host's.
	if err := rootSymlinks(root); err != nil {
		return err
	}
	ld := loaders[host]
	var libs []string
	for _, d := range strings.Split(ld.libs, ":") {
		libs = append(libs, filepath.Join(root, d))
	}
	args := []string{"--library-path", strings.Join(libs, ":"), filepath.Join(root, bc.Python),
		"-s", "-m", "compileall", "-q", "-f", "-j", "1", "--invalidation-mode", "unchecked-hash",
		// The sources' paths as the image has them, not the build root's.
		"-s", root, "-p", "/"}
	for _, d := range bc.Dirs {
		args = append(args, filepath.Join(root, d))
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, ld.ld), args...)
	cmd.Dir = tmp
	// PYTHONHOME finds the standard library in the root; a fixed hash seed
	// keeps the order of set constants, and so the .pyc bytes, stable; the
	// modules compileall itself imports must not leave timestamp .pycs of
	// their own.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PYTHONHOME=" + filepath.Join(root, "usr"), "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1", "LC_ALL=C.UTF-8"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compiling Python bytecode: %w: %s", err, strings.TrimSpace(string(out)))
	}
	n := 0
	for _, d := range bc.Dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() || !strings.HasSuffix(p, ".pyc") || filepath.Base(filepath.Dir(p)) != "__pycache__" {
				return err
			}
			// Only the layer's own sources: "dir/__pycache__/m.cpython-311.pyc"
			// is the bytecode of "dir/m.py".
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			module, _, _ := strings.Cut(path.Base(rel), ".")
			if !t.Has(path.Join(path.Dir(path.Dir(rel)), module+".py")) {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			return t.AddFile(rel, data, 0o644)
		})
		if err != nil {
			return err
		}
	}
	b.logf("python bytecode: %d modules compiled", n)
	return nil
}

// addHostPackages unpacks into t the host's build of every architecture-
// specific Debian package the lock pins, at the same versions.
func (b *builder) addHostPackages(ctx context.Context, t *image.Tree) error {
	a, err := b.debianFor(hostArch())
	if err != nil {
		return err
	}
	for _, nl := range b.cfg.Recipe.Layers() {
		ll := b.pins.Layers[nl.Name]
		if ll == nil {
			continue
		}
		for _, d := range builtFor(ll.Debs, hostArch()) {
			if d.Arch == "all" {
				continue // already in t
			}
			path, err := a.Fetch(ctx, d)
			if err != nil {
				return err
			}
			if err := debian.Unpack(ctx, path, t, b.suite().MergedUsr); err != nil {
				return err
			}
		}
	}
	return nil
}

// addLayer adds the gzip-compressed tar layer at path to t.
func addLayer(t *image.Tree, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", path, err)
	}
	if err := t.AddTar(zr); err != nil {
		return fmt.Errorf("reading layer %s: %w", path, err)
	}
	return nil
}
