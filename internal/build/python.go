package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/lambdabox/lambdabox/internal/image"
)

// ErrNoWheel is wrapped when pip finds no wheel of a package for the
// image's platform.
var ErrNoWheel = errors.New("no wheel")

// pythonDefaults are tried in order for a Python function's handler.
var pythonDefaults = []string{"lambda_function", "app", "handler", "index", "main"}

func (b *builder) python(rt Runtime, version string) (*plan, error) {
	dir := b.cfg.Dir
	handler := b.cfg.Handler
	if handler == "" {
		for _, m := range pythonDefaults {
			if _, err := os.Stat(filepath.Join(dir, m+".py")); err == nil {
				handler = m + ".handler"
				break
			}
		}
		if handler == "" {
			return nil, fmt.Errorf("%w: none of %s.py in %s: give --handler module.function", ErrHandler, strings.Join(pythonDefaults, ".py, "), dir)
		}
	}
	if err := pythonHandler(dirReader(dir), dir, handler); err != nil {
		return nil, err
	}
	p := &plan{handler: handler}
	p.code = func(context.Context) (*image.Tree, error) {
		t := image.NewTree()
		return t, addDir(t, dir, "var/task", b.codeSkip("__pycache__", ".venv", "venv", ".pytest_cache"))
	}
	req := filepath.Join(dir, "requirements.txt")
	if data, err := os.ReadFile(req); err == nil && hasRequirements(data) {
		p.depsKey = []string{"pip", version, fmt.Sprint(b.cfg.AllowSdist), hashFiles(dir, "requirements.txt")}
		p.deps = func(ctx context.Context) (*image.Tree, []Package, error) {
			return b.pipInstall(ctx, dir, version, []string{"-r", req}, "var/task")
		}
	}
	return p, nil
}

func hasRequirements(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// pipPlatform is the wheel platform pip installs for: manylinux2014 as sam
// build does, and the newer manylinux tags Debian bookworm's glibc 2.36
// runs.
func pipPlatforms(arch string) []string {
	m := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
	return []string{"manylinux2014_" + m, "manylinux_2_28_" + m, "manylinux_2_34_" + m}
}

var noDist = regexp.MustCompile(`No matching distribution found for ([^\s]+)`)

// pipInstall installs args (requirement files or specifiers) with the
// host's pip for the image's Python version and platform into a temporary
// folder, and returns it as a tree under prefix with the installed
// packages.
func (b *builder) pipInstall(ctx context.Context, dir, version string, args []string, prefix string) (*image.Tree, []Package, error) {
	tmp, err := os.MkdirTemp("", "lambdabox-pip-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	target := filepath.Join(tmp, "target")
	cmdArgs := []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "--no-compile", "--target", target}
	if b.cfg.AllowSdist {
		if err := hostMatches(ctx, version, b.cfg.Arch); err != nil {
			return nil, nil, fmt.Errorf("--allow-sdist: %w", err)
		}
	} else {
		for _, p := range pipPlatforms(b.cfg.Arch) {
			cmdArgs = append(cmdArgs, "--platform", p)
		}
		cmdArgs = append(cmdArgs, "--implementation", "cp", "--python-version", version, "--only-binary=:all:")
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := exec.CommandContext(ctx, "python3", cmdArgs...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PIP_NO_WARN_SCRIPT_LOCATION=1", "PYTHONDONTWRITEBYTECODE=1", "SOURCE_DATE_EPOCH="+fmt.Sprint(b.cfg.Epoch.Unix()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		if m := noDist.FindSubmatch(out); m != nil && !b.cfg.AllowSdist {
			return nil, nil, fmt.Errorf("%w of %s for CPython %s on %s (pip: %s); --allow-sdist builds it on this host when the host's Python and architecture match the image's",
				ErrNoWheel, m[1], version, pipPlatforms(b.cfg.Arch)[0], lastLine(out))
		}
		return nil, nil, fmt.Errorf("pip install: %w\n%s", err, bytes.TrimSpace(out))
	}
	t := image.NewTree()
	if _, err := os.Stat(target); err == nil {
		if err := addDir(t, target, prefix, func(rel string, _ bool) bool {
			return filepath.Base(rel) == "__pycache__"
		}); err != nil {
			return nil, nil, err
		}
	}
	return t, pipPackages(target), nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// hostMatches checks that the host's python3 is version for arch.
func hostMatches(ctx context.Context, version, arch string) error {
	out, err := exec.CommandContext(ctx, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
	if err != nil {
		return fmt.Errorf("host python3: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != version || runtime.GOARCH != arch {
		return fmt.Errorf("the host has Python %s on %s, the image Python %s on %s: build on a matching host or use the engine", got, runtime.GOARCH, version, arch)
	}
	return nil
}

// pipPackages lists the *.dist-info packages installed in target.
func pipPackages(target string) []Package {
	ms, _ := filepath.Glob(filepath.Join(target, "*.dist-info", "METADATA"))
	var pkgs []Package
	for _, m := range ms {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var p Package
		p.Type = "pypi"
		for _, l := range strings.Split(string(data), "\n") {
			if l == "" || l == "\r" {
				break
			}
			if v, ok := strings.CutPrefix(l, "Name: "); ok {
				p.Name = strings.TrimSpace(v)
			} else if v, ok := strings.CutPrefix(l, "Version: "); ok {
				p.Version = strings.TrimSpace(v)
			}
		}
		if p.Name != "" {
			pkgs = append(pkgs, p)
		}
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs
}
