package base

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// npm packages are installed in two steps, so that native addons (such as
// aws-lambda-ric's, which builds curl and aws-lambda-cpp with autotools and
// cmake) match the image's Node and not the host's:
//
//  1. the host's npm downloads exactly the locked tree (npm ci
//     --ignore-scripts against the package-lock.json kept in the lock file)
//     into /build of a throwaway build root unpacked from pinned Debian
//     packages: the recipe's own packages (the image's nodejs), the Node
//     headers and the recipe's build tools;
//  2. the packages' install scripts (preinstall, install or node-gyp
//     rebuild, postinstall) run in that build root with chroot, under the
//     image's node.
//
// Only /build/node_modules goes into the image; the build root and npm's
// cache (under the cache directory) do not.

// npmPackageJSON is the package.json that the locked tree is resolved for:
// each recipe package ("name@version", or "name" for the latest) as a
// dependency.
func npmPackageJSON(n *recipe.Npm) []byte {
	deps := map[string]string{}
	for _, p := range n.Packages {
		name, version := p, "*"
		if i := strings.LastIndex(p, "@"); i > 0 {
			name, version = p[:i], p[i+1:]
		}
		deps[name] = version
	}
	data, err := json.MarshalIndent(map[string]any{
		"name": "lambdabox-npm", "version": "1.0.0", "private": true, "dependencies": deps,
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(data, '\n')
}

// npmLockFile is the part of package-lock.json that is read here.
type npmLockFile struct {
	Packages map[string]struct {
		Name             string `json:"name"`
		Version          string `json:"version"`
		Integrity        string `json:"integrity"`
		Link             bool   `json:"link"`
		HasInstallScript bool   `json:"hasInstallScript"`
	} `json:"packages"`
}

func (b *builder) npm(ctx context.Context, dir string, args ...string) error {
	args = append(args, "--no-audit", "--no-fund", "--ignore-scripts", "--cache", filepath.Join(b.cfg.CacheDir, "npm"))
	if _, err := run(ctx, dir, "npm", args...); err != nil {
		return fmt.Errorf("npm: %w", err)
	}
	return nil
}

// npmResolve locks the npm tree (package-lock.json, with versions and
// integrity hashes) and the build root's Debian packages.
func (b *builder) npmResolve(ctx context.Context, n *recipe.Npm, ll *LayerLock) error {
	tmp, err := os.MkdirTemp("", "lambdabox-npm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), npmPackageJSON(n), 0o644); err != nil {
		return err
	}
	if err := b.npm(ctx, tmp, "install", "--package-lock-only", "--lockfile-version", "3"); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(tmp, "package-lock.json"))
	if err != nil {
		return err
	}
	var lf npmLockFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return fmt.Errorf("reading package-lock.json: %w", err)
	}
	seen := map[string]bool{}
	for key, p := range lf.Packages {
		if key == "" || p.Link {
			continue
		}
		if p.Integrity == "" {
			return fmt.Errorf("package-lock.json: %s has no integrity hash", key)
		}
		if !inImage(key, n.Keep) {
			continue
		}
		name := p.Name
		if name == "" {
			name = key[strings.LastIndex(key, "node_modules/")+len("node_modules/"):]
		}
		pin := name + "@" + p.Version
		if !seen[pin] {
			seen[pin] = true
			ll.Npm = append(ll.Npm, pin)
		}
	}
	sort.Strings(ll.Npm)
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return err
	}
	ll.NpmLock = compact.Bytes()

	a, err := b.debian()
	if err != nil {
		return err
	}
	pkgs, err := a.Resolve(ctx, npmBuildPackages(b.cfg.Recipe, n), nil)
	if err != nil {
		return fmt.Errorf("build root: %w", err)
	}
	for _, p := range pkgs {
		pin, err := b.pin(ctx, a, p)
		if err != nil {
			return err
		}
		ll.BuildDebs = append(ll.BuildDebs, pin)
	}
	return nil
}

// npmBuildPackages are the build root's Debian packages: every layer's
// packages (so the image's nodejs), the Node headers and the build tools.
func npmBuildPackages(r *recipe.Recipe, n *recipe.Npm) []string {
	var pkgs []string
	for _, nl := range r.Layers() {
		pkgs = append(pkgs, nl.Layer.Packages...)
	}
	if n.NodeHeaders != "" {
		pkgs = append(pkgs, n.NodeHeaders)
	}
	return append(pkgs, n.Build...)
}

// npmInstall installs the locked npm tree into the layer at
// n.Target/node_modules, with install scripts run in a build root.
func (b *builder) npmInstall(ctx context.Context, n *recipe.Npm, ll *LayerLock, t *image.Tree) error {
	if len(ll.NpmLock) == 0 {
		return errors.New("the lock file has no npm package-lock (run with --update-lock)")
	}
	root, err := os.MkdirTemp(b.cfg.CacheDir, "npm-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := b.buildRoot(ctx, root, ll.BuildDebs); err != nil {
		return fmt.Errorf("build root: %w", err)
	}
	build := filepath.Join(root, "build")
	if err := os.MkdirAll(filepath.Join(build, ".lambdabox", "bin"), 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"package.json", npmPackageJSON(n), 0o644},
		{"package-lock.json", ll.NpmLock, 0o644},
		{".lambdabox/lifecycle.js", []byte(npmLifecycle), 0o644},
		{".lambdabox/bin/npm", []byte(npmShim), 0o755},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(build, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	b.logf("npm ci %s", strings.Join(n.Packages, " "))
	start := time.Now()
	if err := b.npm(ctx, build, "ci"); err != nil {
		return err
	}
	var lf npmLockFile
	if err := json.Unmarshal(ll.NpmLock, &lf); err != nil {
		return fmt.Errorf("lock file: npm_lock: %w", err)
	}
	for _, p := range lf.Packages {
		if p.HasInstallScript {
			if host := hostArch(); host != b.cfg.Arch {
				return fmt.Errorf("npm install scripts run under the image's own Node and compilers, so %s images with native addons build only on %s hosts (this one is %s)", b.cfg.Arch, b.cfg.Arch, host)
			}
			b.logf("running npm install scripts in the build root")
			if err := b.chroot(ctx, root, "/usr/bin/node", "/build/.lambdabox/lifecycle.js"); err != nil {
				return err
			}
			b.logf("npm install scripts: done in %s", time.Since(start).Round(time.Millisecond))
			break
		}
	}
	modules := filepath.Join(build, "node_modules")
	if err := os.Remove(filepath.Join(modules, ".package-lock.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := pruneModules(modules, n.Keep); err != nil {
		return err
	}
	target := path.Join(n.Target, "node_modules")
	if err := t.AddDirFromDisk(modules, target); err != nil {
		return err
	}
	for _, p := range t.Paths() {
		if strings.HasPrefix(p, strings.TrimPrefix(target, "/")+"/") && strings.HasSuffix(p, "/__pycache__") {
			if err := t.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// inImage reports whether the package-lock.json entry at key (such as
// "node_modules/a/node_modules/b") goes into the image: all do, unless keep
// names the top-level packages that do.
func inImage(key string, keep []string) bool {
	if len(keep) == 0 {
		return true
	}
	for _, k := range keep {
		if top := "node_modules/" + k; key == top || strings.HasPrefix(key, top+"/") {
			return true
		}
	}
	return false
}

// pruneModules leaves only the packages named in keep ("name" or
// "@scope/name") in the node_modules directory modules; an empty keep
// leaves everything.
func pruneModules(modules string, keep []string) error {
	if len(keep) == 0 {
		return nil
	}
	kept := map[string]bool{}
	for _, k := range keep {
		if _, err := os.Stat(filepath.Join(modules, filepath.FromSlash(k), "package.json")); err != nil {
			return fmt.Errorf("npm keep: %s is not installed", k)
		}
		kept[k] = true
	}
	tops, err := os.ReadDir(modules)
	if err != nil {
		return err
	}
	var drop []string
	for _, top := range tops {
		if !strings.HasPrefix(top.Name(), "@") {
			if !kept[top.Name()] {
				drop = append(drop, top.Name())
			}
			continue
		}
		pkgs, err := os.ReadDir(filepath.Join(modules, top.Name()))
		if err != nil {
			return err
		}
		left := len(pkgs)
		for _, p := range pkgs {
			if name := top.Name() + "/" + p.Name(); !kept[name] {
				drop = append(drop, name)
				left--
			}
		}
		if left == 0 {
			drop = append(drop, top.Name())
		}
	}
	for _, d := range drop {
		if err := os.RemoveAll(filepath.Join(modules, filepath.FromSlash(d))); err != nil {
			return err
		}
	}
	return nil
}

// buildRoot unpacks the pinned Debian packages into root, without
// maintainer scripts, and adds what those scripts and update-alternatives
// would: /bin/sh, awk, cc and c++, device nodes, /tmp, /etc/passwd.
func (b *builder) buildRoot(ctx context.Context, root string, debs []debian.Package) error {
	if len(debs) == 0 {
		return errors.New("the lock file has no build root packages (run with --update-lock)")
	}
	a, err := b.debian()
	if err != nil {
		return err
	}
	start := time.Now()
	paths := make([]string, len(debs))
	for i, p := range debs {
		if paths[i], err = a.Fetch(ctx, p); err != nil {
			return err
		}
	}
	// dpkg-deb -x in parallel: the packages' files do not overlap, and
	// tar tolerates directories that another extraction made first.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan string)
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deb := range next {
				if _, err := run(ctx, root, "dpkg-deb", "-x", deb, root); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, deb := range paths {
		next <- deb
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	b.logf("build root: %d packages unpacked in %s", len(debs), time.Since(start).Round(time.Millisecond))
	if b.suite().MergedUsr {
		// base-files' links into /usr, which the loader path goes through.
		for _, d := range debian.MergedDirs {
			if _, err := os.Lstat(filepath.Join(root, d[0])); err == nil {
				continue
			}
			if err := os.Symlink(d[1], filepath.Join(root, d[0])); err != nil {
				return err
			}
		}
	}
	// Links that maintainer scripts (update-alternatives) make; the target
	// is a glob in the link's directory, the last match wins.
	// /bin/sh is bash, as on Amazon Linux where npm packages for Lambda are
	// made: aws-lambda-ric's postinstall cleans up with bash-only globs.
	if err := os.Remove(filepath.Join(root, "bin/sh")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	links := [][2]string{
		{"bin/sh", "bash"},
		{"usr/bin/awk", "mawk"},
		{"usr/bin/cc", "gcc"},
		{"usr/bin/c++", "g++"},
		{"usr/bin/aclocal", "aclocal-[0-9]*"},
		{"usr/bin/automake", "automake-[0-9]*"},
	}
	for _, l := range links {
		p := filepath.Join(root, l[0])
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(filepath.Dir(p), l[1]))
		if len(matches) == 0 {
			continue
		}
		if err := os.Symlink(filepath.Base(matches[len(matches)-1]), p); err != nil {
			return err
		}
	}
	for _, d := range []string{"dev", "tmp", "proc", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return err
	}
	for _, f := range [][2]string{{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"}, {"etc/group", "root:x:0:\n"}} {
		if err := os.WriteFile(filepath.Join(root, f[0]), []byte(f[1]), 0o644); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name         string
		major, minor int
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}} {
		if _, err := run(ctx, root, "mknod", "-m", "666", filepath.Join(root, "dev", d.name), "c", strconv.Itoa(d.major), strconv.Itoa(d.minor)); err != nil {
			return err
		}
	}
	return nil
}

// chroot runs a command in the build root with a clean environment.
func (b *builder) chroot(ctx context.Context, root string, args ...string) error {
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...)
	jobs := runtime.NumCPU()
	if jobs > 8 {
		jobs = 8
	}
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"HOME=/root",
		"LC_ALL=C",
		"TZ=UTC",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(b.epoch().Unix(), 10),
		"MAKEFLAGS=-j" + strconv.Itoa(jobs),
		"npm_config_nodedir=/usr",
		"PYTHONDONTWRITEBYTECODE=1", // node-gyp's .pyc files would hold build times
		"npm_config_jobs=" + strconv.Itoa(jobs),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 3000 {
			msg = msg[len(msg)-3000:]
		}
		return fmt.Errorf("chroot %s %s: %w:\n%s", root, strings.Join(args, " "), err, msg)
	}
	return nil
}

// npmLifecycle runs, in the build root, the install scripts of every
// package that has them, as npm install does: preinstall, install (or
// node-gyp rebuild for a binding.gyp without either), postinstall, deepest
// packages first, with node_modules/.bin directories on PATH.
const npmLifecycle = `"use strict";
const fs = require("fs"), path = require("path"), cp = require("child_process");
const root = "/build";
const lock = JSON.parse(fs.readFileSync(root + "/package-lock.json", "utf8"));
const depth = (k) => k.split("node_modules/").length;
const keys = Object.keys(lock.packages)
  .filter((k) => k && lock.packages[k].hasInstallScript && !lock.packages[k].link)
  .sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : a > b ? 1 : 0));
for (const key of keys) {
  const dir = path.join(root, key);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const scripts = Object.assign({}, pkg.scripts);
  if (!scripts.install && !scripts.preinstall && fs.existsSync(path.join(dir, "binding.gyp"))) {
    scripts.install = "node-gyp rebuild";
  }
  const bins = [];
  for (let d = dir; d.startsWith(root); d = path.dirname(d)) {
    if (path.basename(d) !== "node_modules") bins.push(path.join(d, "node_modules", ".bin"));
  }
  for (const event of ["preinstall", "install", "postinstall"]) {
    if (!scripts[event]) continue;
    console.log("> " + pkg.name + "@" + pkg.version + " " + event + ": " + scripts[event]);
    cp.execFileSync("/bin/sh", ["-c", scripts[event]], {
      cwd: dir,
      stdio: "inherit",
      env: Object.assign({}, process.env, {
        PATH: bins.concat([root + "/.lambdabox/bin", process.env.PATH]).join(":"),
        INIT_CWD: root,
        npm_lifecycle_event: event,
        npm_lifecycle_script: scripts[event],
        npm_package_name: pkg.name,
        npm_package_version: pkg.version,
        npm_package_json: path.join(dir, "package.json"),
        npm_node_execpath: process.execPath,
        npm_execpath: root + "/.lambdabox/bin/npm",
      }),
    });
  }
}
`

// npmShim is "npm run SCRIPT" for install scripts that call it: the build
// root has Node but not npm.
const npmShim = `#!/usr/bin/node
"use strict";
const fs = require("fs"), path = require("path"), cp = require("child_process");
const args = process.argv.slice(2);
if (args[0] !== "run" && args[0] !== "run-script" || !args[1]) {
  console.error("lambdabox build root: only 'npm run SCRIPT' is available, not 'npm " + args.join(" ") + "'");
  process.exit(1);
}
const pkg = JSON.parse(fs.readFileSync(path.join(process.cwd(), "package.json"), "utf8"));
const script = (pkg.scripts || {})[args[1]];
if (!script) {
  console.error("npm run " + args[1] + ": no such script in " + pkg.name);
  process.exit(1);
}
console.log("> " + pkg.name + "@" + pkg.version + " " + args[1] + ": " + script);
const res = cp.spawnSync("/bin/sh", ["-c", script + (args.length > 2 ? " " + args.slice(args[2] === "--" ? 3 : 2).join(" ") : "")], {
  stdio: "inherit",
  env: Object.assign({}, process.env, { npm_lifecycle_event: args[1], npm_lifecycle_script: script }),
});
process.exit(res.status === null ? 1 : res.status);
`
