package base

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// jlinkResolve pins the build root's packages: the ones the recipe names,
// at the versions apt would install together, without their dependencies.
func (b *builder) jlinkResolve(ctx context.Context, j *recipe.Jlink) ([]debian.Package, error) {
	a, err := b.debian()
	if err != nil {
		return nil, err
	}
	all, err := a.Resolve(ctx, j.Packages, nil)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, p := range j.Packages {
		want[p] = true
	}
	var pins []debian.Package
	for _, p := range all {
		if !want[p.Name] {
			continue
		}
		path, err := a.Fetch(ctx, p)
		if err != nil {
			return nil, err
		}
		if p.SHA256, err = debian.SHA256(path); err != nil {
			return nil, err
		}
		pins = append(pins, p)
	}
	if len(pins) != len(want) {
		return nil, fmt.Errorf("jlink: resolved %d of the packages %s", len(pins), strings.Join(j.Packages, " "))
	}
	return pins, nil
}

// hostArch is the Debian architecture of the machine running lambdabox.
func hostArch() string { return runtime.GOARCH }

// jlinkInstall unpacks the pinned JDK into a throwaway build root, runs its
// jlink there and adds the linked runtime under j.Target. jlink's output
// depends only on the jmods and the options, so the same pins give the
// same bytes.
func (b *builder) jlinkInstall(ctx context.Context, j *recipe.Jlink, pins []debian.Package, t *image.Tree) error {
	if hostArch() != b.cfg.Arch {
		return fmt.Errorf("jlink runs the image's JDK, so this recipe builds %s images only on %s hosts (this one is %s)", b.cfg.Arch, b.cfg.Arch, hostArch())
	}
	a, err := b.debian()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(b.cfg.CacheDir, "jlink-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	for _, p := range pins {
		path, err := a.Fetch(ctx, p)
		if err != nil {
			return err
		}
		if err := debian.Extract(ctx, path, root); err != nil {
			return err
		}
	}
	if err := rootSymlinks(root); err != nil {
		return err
	}
	home := filepath.Join(root, strings.ReplaceAll(j.JavaHome, "{arch}", b.cfg.Arch))
	out := filepath.Join(tmp, "out")
	args := append([]string{"--module-path", filepath.Join(home, "jmods"), "--add-modules", strings.Join(j.Modules, ","), "--output", out}, j.Options...)
	b.logf("jlink --add-modules %s", strings.Join(j.Modules, ","))
	cmd := exec.CommandContext(ctx, filepath.Join(home, "bin", "jlink"), args...)
	cmd.Dir = tmp
	// Options from the host's environment must not change what jlink writes.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "JAVA_TOOL_OPTIONS" && k != "_JAVA_OPTIONS" && k != "JDK_JAVA_OPTIONS" && k != "JAVA_HOME" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("jlink: %w: %s", err, strings.TrimSpace(string(msg)))
	}
	return t.AddDirFromDisk(out, j.Target)
}

// rootSymlinks points the absolute symbolic links under root (Debian's JDK
// links its configuration to /etc/java-17-openjdk) into root, so the build
// root's JDK never reads the host's files.
func rootSymlinks(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil || !filepath.IsAbs(target) {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		return os.Symlink(filepath.Join(root, target), p)
	})
}
