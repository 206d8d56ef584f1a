package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/lambdabox/lambdabox/internal/recipe"
)

// addonNodeGyp is the node-gyp that builds a function's native addons in
// the build root when the addon's package does not bring its own: the
// version aws-lambda-ric's addon is built with there.
const addonNodeGyp = "node-gyp@9.4.0"

// AddonConfig is one build of a function's npm native addons. Zero values
// are the defaults noted.
type AddonConfig struct {
	// Recipe is the base image's recipe. Required.
	Recipe *recipe.Recipe
	// CacheDir is the base builder's cache (downloads, npm cache). Required.
	CacheDir string
	// LockFile is the base's lock file, as Build wrote it. Required.
	LockFile string
	// Arch is amd64 (default) or arm64.
	Arch string
	// Epoch is SOURCE_DATE_EPOCH for the install scripts.
	Epoch time.Time
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// BuildAddons runs the npm install scripts (node-gyp rebuild for a
// binding.gyp) of the packages in dir, which holds a package-lock.json and
// a node_modules installed with --ignore-scripts, under the image's own
// Node and compilers: in a throwaway build root made of the Debian packages
// the base's lock file pins for its npm layer (the image's packages, the
// Node headers and the build tools), as the recipe's own npm packages are
// built. It needs root (chroot, mknod) and a host of the image's
// architecture.
func BuildAddons(ctx context.Context, cfg AddonConfig, dir string) (err error) {
	switch {
	case cfg.Recipe == nil:
		return errors.New("no recipe")
	case cfg.CacheDir == "" || cfg.LockFile == "":
		return errors.New("no cache directory or lock file")
	}
	if cfg.Arch == "" {
		cfg.Arch = "amd64"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if host := hostArch(); host != cfg.Arch {
		return fmt.Errorf("native addons are built under the image's own Node and compilers, so %s images with native addons build only on %s hosts (this one is %s)", cfg.Arch, cfg.Arch, host)
	}
	if os.Geteuid() != 0 {
		return errors.New("building native addons against the image's Node needs root (a chroot of its Debian packages): run lambdabox build as root")
	}
	lock, err := ReadLock(cfg.LockFile)
	if err != nil {
		return err
	}
	var ll *LayerLock
	for _, nl := range cfg.Recipe.Layers() {
		if l := lock.lockFor(nl.Name); nl.Layer.Npm != nil && l != nil && len(l.BuildDebs) > 0 {
			ll = l
		}
	}
	if ll == nil {
		return fmt.Errorf("base %s: its lock file %s pins no build root for npm packages", cfg.Recipe.Name, cfg.LockFile)
	}
	b := &builder{cfg: Config{Recipe: cfg.Recipe, CacheDir: cfg.CacheDir, LockFile: cfg.LockFile, Arch: cfg.Arch, Epoch: cfg.Epoch, Log: cfg.Log}}
	pristine, err := b.addonRoot(ctx, ll)
	if err != nil {
		return fmt.Errorf("build root: %w", err)
	}
	// Each build gets its own copy: install scripts may change the root.
	root, err := os.MkdirTemp(cfg.CacheDir, "addon-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if out, err := exec.CommandContext(ctx, "cp", "-a", pristine+"/.", root+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copying the build root: %w: %s", err, out)
	}
	build := filepath.Join(root, "build")
	tools := filepath.Join(build, ".lambdabox")
	for _, f := range []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"lifecycle.js", npmLifecycle, 0o644},
		{"bin/npm", npmShim, 0o755},
		{"bin/node-gyp", "#!/bin/sh\nexec /usr/bin/node /opt/lambdabox-node-gyp/node_modules/node-gyp/bin/node-gyp.js \"$@\"\n", 0o755},
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tools, f.name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tools, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	// The function's tree goes into the build root and back.
	for _, n := range []string{"package.json", "package-lock.json", "node_modules"} {
		if err := move(filepath.Join(dir, n), filepath.Join(build, n)); err != nil {
			return err
		}
		defer func(n string) {
			if merr := move(filepath.Join(build, n), filepath.Join(dir, n)); merr != nil && err == nil {
				err = merr
			}
		}(n)
	}
	start := time.Now()
	if err = b.chroot(ctx, root, "/usr/bin/node", "/build/.lambdabox/lifecycle.js"); err != nil {
		return err
	}
	b.logf("npm install scripts under the image's Node: done in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// addonRoot returns the build root of ll's pinned Debian packages,
// unpacked once into the cache (addon-roots/HASH) and reused: unpacking is
// most of an addon build's time.
func (b *builder) addonRoot(ctx context.Context, ll *LayerLock) (string, error) {
	dir := filepath.Join(b.cfg.CacheDir, "addon-roots")
	root := filepath.Join(dir, hashJSON([]any{addonNodeGyp, ll.BuildDebs})[:32])
	const done = ".lambdabox-complete"
	if _, err := os.Stat(filepath.Join(root, done)); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "unpack-")
	if err != nil {
		return "", err
	}
	if err := b.buildRoot(ctx, tmp, ll.BuildDebs); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := b.installNodeGyp(ctx, filepath.Join(tmp, "opt", "lambdabox-node-gyp")); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, done), nil, 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, root); err != nil {
		// Another build unpacked the same packages first.
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(root, done)); serr != nil {
			return "", err
		}
	}
	return root, nil
}

// installNodeGyp installs addonNodeGyp into dir with the host's npm.
func (b *builder) installNodeGyp(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A package.json of its own, so that npm does not look for one above.
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"lambdabox-node-gyp","private":true}`+"\n"), 0o644); err != nil {
		return err
	}
	if err := b.npm(ctx, dir, "install", "--no-save", "--loglevel=error", addonNodeGyp); err != nil {
		return fmt.Errorf("installing %s: %w", addonNodeGyp, err)
	}
	return nil
}

// lockFor returns the lock of the layer called name, or nil.
func (l *Lock) lockFor(name string) *LayerLock {
	if l == nil {
		return nil
	}
	return l.Layers[name]
}

// move renames src to dst, copying when they are on different file
// systems.
func move(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %w: %s", src, err, out)
	}
	return os.RemoveAll(src)
}
