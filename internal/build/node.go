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
// Native addons are built by npm on the host, so they need the host's Node
// to be the image's major version (version) and the image's architecture.
func (b *builder) npmInstall(ctx context.Context, dir, prefix, verb string, omitDev bool, version string) (*image.Tree, []Package, error) {
	tmp, err := os.MkdirTemp("", "lambdabox-npm-")
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
	args := []string{verb, "--no-audit", "--no-fund", "--loglevel=error", "--os=linux", "--cpu=" + cpu}
	if omitDev {
		args = append(args, "--omit=dev")
	}
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Errorf("npm %s: %w\n%s", verb, err, bytes.TrimSpace(out))
	}
	nm := filepath.Join(tmp, "node_modules")
	if addons := nativeAddons(nm); len(addons) > 0 {
		host, _ := exec.CommandContext(ctx, "node", "-p", "process.versions.node.split('.')[0] + ' ' + process.arch").Output()
		if want := version + " " + cpu; strings.TrimSpace(string(host)) != want {
			return nil, nil, fmt.Errorf("npm packages with native addons (%s) were built for the host's Node (%s), not the image's (Node %s on %s): build on a matching host or use --engine",
				strings.Join(addons, ", "), strings.TrimSpace(string(host)), version, cpu)
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
