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
		pin, err := b.pin(ctx, a, p)
		if err != nil {
			return nil, err
		}
		pins = append(pins, pin)
	}
	if len(pins) != len(want) {
		return nil, fmt.Errorf("jlink: resolved %d of the packages %s", len(pins), strings.Join(j.Packages, " "))
	}
	return pins, nil
}

// hostArch is the Debian architecture of the machine running lambdabox.
func hostArch() string { return runtime.GOARCH }

// builtFor returns the same packages, at the same versions, built for arch;
// packages for all architectures stay as they are, checksum included.
func builtFor(pkgs []debian.Package, arch string) []debian.Package {
	out := make([]debian.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = p
		if p.Arch != "all" {
			out[i] = debian.Package{Name: p.Name, Version: p.Version, Arch: arch}
		}
	}
	return out
}

// jlinkInstall unpacks the pinned JDK into a throwaway build root, runs its
// jlink there and adds the linked runtime under j.Target. jlink's output
// depends only on the jmods, the options and jlink's version, so the same
// pins give the same bytes.
//
// For an image of another architecture than the host's, the jmods come
// from the pinned packages and jlink from the same JDK version built for
// the host (jlink refuses jmods of any other version). The host's packages
// are not in the lock file: they change nothing in the image.
func (b *builder) jlinkInstall(ctx context.Context, j *recipe.Jlink, pins []debian.Package, t *image.Tree) error {
	tmp, err := os.MkdirTemp(b.cfg.CacheDir, "jlink-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	a, err := b.debian()
	if err != nil {
		return err
	}
	jdk := filepath.Join(tmp, "jdk")
	if err := unpackRoot(ctx, a, pins, jdk); err != nil {
		return err
	}
	jmods := filepath.Join(jdk, strings.ReplaceAll(j.JavaHome, "{arch}", b.cfg.Arch), "jmods")
	tool := filepath.Join(jdk, strings.ReplaceAll(j.JavaHome, "{arch}", b.cfg.Arch), "bin", "jlink")
	toolRoot := jdk
	if host := hostArch(); host != b.cfg.Arch {
		ha, err := b.debianFor(host)
		if err != nil {
			return err
		}
		hostJDK := filepath.Join(tmp, "host-jdk")
		if err := unpackRoot(ctx, ha, builtFor(pins, host), hostJDK); err != nil {
			return fmt.Errorf("jlink for %s runs the same JDK built for this %s host: %w", b.cfg.Arch, host, err)
		}
		tool = filepath.Join(hostJDK, strings.ReplaceAll(j.JavaHome, "{arch}", host), "bin", "jlink")
		toolRoot = hostJDK
	}
	out := filepath.Join(tmp, "out")
	args := append([]string{"--module-path", jmods, "--add-modules", strings.Join(j.Modules, ","), "--output", out}, j.Options...)
	b.logf("jlink --add-modules %s", strings.Join(j.Modules, ","))
	// A JDK of a newer suite than the host's needs its own C library: when
	// the recipe puts libc6 (and the JDK's other libraries) in the build
	// root, jlink runs through the root's dynamic loader, as the Python
	// bytecode compiler does.
	// Its child processes (objcopy for --strip-debug) are the host's: the
	// FORK launch mechanism execs them directly, without jspawnhelper, a
	// program of the build root that the host's loader cannot run.
	if ld, libs, ok := rootLoader(toolRoot); ok {
		args = append([]string{"--library-path", libs, tool, "-J-Djdk.lang.Process.launchMechanism=FORK"}, args...)
		tool = ld
	}
	cmd := exec.CommandContext(ctx, tool, args...)
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

// rootLoader returns the dynamic loader for this host's architecture in
// root and its library path, when root has one.
func rootLoader(root string) (ld, libs string, ok bool) {
	l := loaders[hostArch()]
	for _, p := range []string{l.ld, debian.UsrMerged(l.ld)} {
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && !fi.IsDir() {
			var dirs []string
			for _, d := range strings.Split(l.libs, ":") {
				dirs = append(dirs, filepath.Join(root, d), filepath.Join(root, debian.UsrMerged(d)))
			}
			return filepath.Join(root, p), strings.Join(dirs, ":"), true
		}
	}
	return "", "", false
}

// unpackRoot fetches pkgs with a and extracts them into root, with their
// absolute symbolic links pointed into root.
func unpackRoot(ctx context.Context, a *debian.Apt, pkgs []debian.Package, root string) error {
	for _, p := range pkgs {
		path, err := a.Fetch(ctx, p)
		if err != nil {
			return err
		}
		if err := debian.Extract(ctx, path, root); err != nil {
			return err
		}
	}
	return rootSymlinks(root)
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
