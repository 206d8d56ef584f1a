package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lambdabox/lambdabox/internal/image"
)

// nodeDefaults are tried in order for a Node function's handler file.
var nodeDefaults = []string{"index", "app", "handler"}

func (b *builder) node(version string) (*plan, error) {
	dir := b.cfg.Dir
	handler := b.cfg.Handler
	if handler == "" {
		for _, m := range nodeDefaults {
			for _, ext := range []string{".js", ".mjs", ".cjs"} {
				if _, err := os.Stat(filepath.Join(dir, m+ext)); err == nil && handler == "" {
					handler = m + ".handler"
				}
			}
		}
		if handler == "" {
			return nil, fmt.Errorf("%w: no index.js, index.mjs or app.js in %s: give --handler file.export", ErrHandler, dir)
		}
	}
	if err := nodeHandler(dirReader(dir), dir, handler); err != nil {
		return nil, err
	}
	p := &plan{handler: handler}
	p.code = func(context.Context) (*image.Tree, error) {
		t := image.NewTree()
		return t, addDir(t, dir, "var/task", b.codeSkip("node_modules"))
	}
	if data, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		var pj struct {
			Dependencies map[string]string `json:"dependencies"`
		}
		if err := json.Unmarshal(data, &pj); err != nil {
			return nil, fmt.Errorf("package.json: %w", err)
		}
		if len(pj.Dependencies) > 0 {
			p.depsKey = []string{"npm", hashFiles(dir, "package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc")}
			p.deps = func(ctx context.Context) (*image.Tree, []Package, error) {
				return b.npmInstall(ctx, dir, "var/task", "ci", true, version)
			}
		}
	}
	return p, nil
}

// npmInstall runs npm ci (or npm install without a lock file) with
// --omit=dev on a copy of dir's package files and returns node_modules as
// a tree under prefix, with its packages.
//
// Packages are installed with --ignore-scripts, then their install scripts
// run: on the host when no package has a native addon (binding.gyp) or the
// host's Node is the image's major version (version) and architecture,
// else under the image's own Node, in a chroot of the base's Debian
// packages and build tools (AddonBuilder), which needs root and a
// lambdabox base.
func (b *builder) npmInstall(ctx context.Context, dir, prefix, verb string, omitDev bool, version string) (*image.Tree, []Package, error) {
	tmp, err := os.MkdirTemp(filepath.Join(b.cfg.CacheDir, "build"), "npm-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	hasLock := false
	for _, n := range []string{"package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"} {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		hasLock = hasLock || strings.HasSuffix(n, "json") && n != "package.json"
		if err := os.WriteFile(filepath.Join(tmp, n), data, 0o644); err != nil {
			return nil, nil, err
		}
	}
	if verb == "ci" && !hasLock {
		verb = "install"
	}
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[b.cfg.Arch]
	args := []string{verb, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", "--os=linux", "--cpu=" + cpu}
	if omitDev {
		args = append(args, "--omit=dev")
	}
	if err := runNpm(ctx, tmp, args...); err != nil {
		return nil, nil, err
	}
	nm := filepath.Join(tmp, "node_modules")
	if scripts := installScripts(nm); len(scripts) > 0 || len(nativeAddons(nm)) > 0 {
		if err := b.npmScripts(ctx, tmp, scripts, version, cpu); err != nil {
			return nil, nil, err
		}
	}
	t := image.NewTree()
	if _, err := os.Stat(nm); err == nil {
		if err := addDir(t, nm, prefix+"/node_modules", func(rel string, _ bool) bool {
			return rel == ".package-lock.json" || rel == ".bin"
		}); err != nil {
			return nil, nil, err
		}
	}
	return t, npmPackages(nm), nil
}

// npmScripts runs the install scripts of the packages installed in dir
// (scripts lists them): with npm rebuild on the host when the host's Node
// can build them for the image, else under the image's Node in a build
// root.
func (b *builder) npmScripts(ctx context.Context, dir string, scripts []string, version, cpu string) error {
	nm := filepath.Join(dir, "node_modules")
	addons := nativeAddons(nm)
	host := ""
	if out, err := exec.CommandContext(ctx, "node", "-p", "process.versions.node.split('.')[0] + ' ' + process.arch").Output(); err == nil {
		host = strings.TrimSpace(string(out))
	}
	if len(addons) == 0 || host == version+" "+cpu {
		b.logf("npm install scripts on the host: %s", strings.Join(scripts, ", "))
		return runNpm(ctx, dir, "rebuild", "--no-audit", "--no-fund", "--loglevel=error")
	}
	if host == "" {
		host = "none"
	}
	ab, ok := b.cfg.Bases.(AddonBuilder)
	if b.recipe == "" || !ok {
		return fmt.Errorf("npm packages with native addons (%s) must be built against the image's Node (%s on %s), not the host's (%s), and only a lambdabox base gives lambdabox that Node: use --base with a lambdabox runtime, build on a matching host, or use --engine",
			strings.Join(addons, ", "), version, cpu, host)
	}
	// The install scripts go by the lock file npm kept of what it installed.
	hidden, err := os.ReadFile(filepath.Join(nm, ".package-lock.json"))
	if err != nil {
		return fmt.Errorf("npm left no node_modules/.package-lock.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), hidden, 0o644); err != nil {
		return err
	}
	b.logf("building native addons (%s) against the image's Node %s in a build root of base %s", strings.Join(addons, ", "), version, b.recipe)
	if err := ab.BuildAddons(ctx, b.recipe, b.cfg.Arch, dir); err != nil {
		return fmt.Errorf("native addons (%s) for the image's Node %s (the host has %s): %w", strings.Join(addons, ", "), version, host, err)
	}
	return nil
}

// runNpm runs the host's npm in dir; its output is the error's.
func runNpm(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm %s: %w\n%s", args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// installScripts lists the packages of npm's record of node_modules (nm's
// .package-lock.json) that have install scripts, a binding.gyp included.
func installScripts(nm string) []string {
	data, err := os.ReadFile(filepath.Join(nm, ".package-lock.json"))
	if err != nil {
		return nil
	}
	var lf struct {
		Packages map[string]struct {
			HasInstallScript bool `json:"hasInstallScript"`
			Link             bool `json:"link"`
		} `json:"packages"`
	}
	if json.Unmarshal(data, &lf) != nil {
		return nil
	}
	var out []string
	for k, p := range lf.Packages {
		if p.HasInstallScript && !p.Link {
			out = append(out, strings.TrimPrefix(k, "node_modules/"))
		}
	}
	sort.Strings(out)
	return out
}

// nativeAddons lists the packages under nm that have a binding.gyp.
func nativeAddons(nm string) []string {
	var out []string
	filepath.WalkDir(nm, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "binding.gyp" {
			rel, _ := filepath.Rel(nm, filepath.Dir(p))
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// npmPackages lists the packages installed under nm.
func npmPackages(nm string) []Package {
	var pkgs []Package
	filepath.WalkDir(nm, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "package.json" {
			return nil
		}
		rel, _ := filepath.Rel(nm, filepath.Dir(p))
		parts := strings.Split(filepath.ToSlash(rel), "/")
		// node_modules/x or node_modules/@s/x, possibly nested.
		last := parts[len(parts)-1]
		parent := ""
		if len(parts) >= 2 {
			parent = parts[len(parts)-2]
		}
		if !(len(parts) == 1 || parent == "node_modules" || (strings.HasPrefix(parent, "@") && (len(parts) == 2 || parts[len(parts)-3] == "node_modules"))) || strings.HasPrefix(last, ".") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var pj struct{ Name, Version string }
		if json.Unmarshal(data, &pj) == nil && pj.Name != "" {
			pkgs = append(pkgs, Package{Type: "npm", Name: pj.Name, Version: pj.Version})
		}
		return nil
	})
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Version < pkgs[j].Version
	})
	return pkgs
}
