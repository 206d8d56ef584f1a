package build

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lambdabox/lambdabox/internal/image"
)

// hasFile reports whether the tree has a regular file at p.
func hasFile(t *image.Tree, p string) bool {
	_, ok := t.File(p)
	return ok
}

func isTarball(p string) bool {
	for _, s := range []string{".tar", ".tar.gz", ".tgz"} {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// addTarball unpacks a local tar archive under dst, as ADD does.
func addTarball(t *image.Tree, file, dst string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if !strings.HasSuffix(file, ".tar") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		r = zr
	}
	return t.AddTarAt(r, dst)
}

// dfRun runs a RUN line of pip installs or npm installs natively, each
// command as its own cached dependency layer.
func (b *builder) dfRun(ctx context.Context, s *dfState, in instruction) error {
	kind, parts := runKind(in.args[0])
	for _, part := range parts {
		words, err := s.lex.ProcessWords(part, s.getenv())
		if err != nil {
			return err
		}
		tmp, err := os.MkdirTemp("", "lambdabox-run-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		h := sha256.New()
		// materialise writes a file or folder of the image so far into tmp
		// and returns its path there; its content goes into the cache key.
		n := 0
		materialise := func(p string) (string, error) {
			p = s.abs(p)
			n++
			out := filepath.Join(tmp, fmt.Sprintf("f%d", n), path.Base(p))
			if data, ok := s.code.File(p); ok {
				fmt.Fprintf(h, "file %s %d\n", p, len(data))
				h.Write(data)
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					return "", err
				}
				return out, os.WriteFile(out, data, 0o644)
			}
			files := s.code.Files(p)
			if len(files) == 0 {
				return "", fmt.Errorf("%s: no such file in the image (COPY it first)", p)
			}
			for _, f := range files {
				data, _ := s.code.File(f)
				fmt.Fprintf(h, "file %s %d\n", f, len(data))
				h.Write(data)
				rel := strings.TrimPrefix(strings.TrimPrefix(f, strings.TrimPrefix(p, "/")), "/")
				dst := filepath.Join(out, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return "", err
				}
				if err := os.WriteFile(dst, data, 0o644); err != nil {
					return "", err
				}
			}
			return out, nil
		}
		var detail string
		var fn func(ctx context.Context) (*image.Tree, []Package, error)
		switch kind {
		case "rpm":
			if words[0] == "rm" {
				continue
			}
			pkgs, err := rpmPackages(words)
			if err != nil {
				return err
			}
			if len(pkgs) == 0 {
				continue
			}
			fmt.Fprintf(h, "deb %q\n", pkgs)
			detail = "Debian packages " + strings.Join(pkgs, " ")
			fn = func(ctx context.Context) (*image.Tree, []Package, error) {
				return b.debInstall(ctx, pkgs)
			}
		case "pip":
			args, target, err := pipArgs(words, materialise)
			if err != nil {
				return err
			}
			version := s.langVersion
			if version == "" {
				return fmt.Errorf("cannot tell the base image's Python version: use --base python3.X or FROM a Lambda python image")
			}
			fmt.Fprintf(h, "pip %s %v %q %s\n", version, b.cfg.AllowSdist, args, target)
			detail = "pip install " + strings.Join(args, " ")
			fn = func(ctx context.Context) (*image.Tree, []Package, error) {
				return b.pipInstall(ctx, tmp, version, args, strings.TrimPrefix(s.abs(target), "/"))
			}
		case "npm":
			verb := words[1]
			if verb == "i" {
				verb = "install"
			}
			omitDev := false
			for _, w := range words[2:] {
				if w == "--omit=dev" || w == "--production" || strings.HasPrefix(w, "--only=prod") {
					omitDev = true
				}
			}
			pkgDir := filepath.Join(tmp, "pkg")
			if err := os.MkdirAll(pkgDir, 0o755); err != nil {
				return err
			}
			for _, f := range []string{"package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"} {
				if data, ok := s.code.File(path.Join(s.workdir, f)); ok {
					fmt.Fprintf(h, "%s %d\n", f, len(data))
					h.Write(data)
					if err := os.WriteFile(filepath.Join(pkgDir, f), data, 0o644); err != nil {
						return err
					}
				}
			}
			if _, err := os.Stat(filepath.Join(pkgDir, "package.json")); err != nil {
				return fmt.Errorf("no package.json in %s (COPY it first)", s.workdir)
			}
			fmt.Fprintf(h, "npm %s %v %s\n", verb, omitDev, s.workdir)
			detail = "npm " + verb
			fn = func(ctx context.Context) (*image.Tree, []Package, error) {
				return b.npmInstall(ctx, pkgDir, strings.TrimPrefix(s.workdir, "/"), verb, omitDev, s.langVersion)
			}
		}
		key := hex.EncodeToString(h.Sum(nil))
		if err := b.step("dependencies", func() (string, error) {
			d, err := b.cachedLayer(ctx, RoleDependencies, "lambdabox RUN "+detail, []string{key}, fn)
			return detail + ": " + d, err
		}); err != nil {
			return err
		}
	}
	return nil
}

// pipArgs turns the words of a pip install into arguments for the host's
// pip: requirement and constraint files and --find-links folders of the
// image are materialised, --target is taken out and returned.
func pipArgs(words []string, materialise func(string) (string, error)) ([]string, string, error) {
	i := 2
	if words[1] == "-m" {
		i = 4
	}
	var args []string
	target := ""
	takesFile := map[string]bool{"-r": true, "--requirement": true, "-c": true, "--constraint": true}
	takesDir := map[string]bool{"-f": true, "--find-links": true}
	takesValue := map[string]bool{"-i": true, "--index-url": true, "--extra-index-url": true, "--trusted-host": true, "--platform": true, "--python-version": true, "--implementation": true, "--abi": true, "--only-binary": true, "--no-binary": true, "--progress-bar": true}
	for ; i < len(words); i++ {
		w := words[i]
		name, val, hasVal := strings.Cut(w, "=")
		if !strings.HasPrefix(w, "--") {
			name, hasVal = w, false
		}
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(words) {
				return "", fmt.Errorf("pip %s: missing value", name)
			}
			i++
			return words[i], nil
		}
		switch {
		case name == "-t" || name == "--target":
			v, err := next()
			if err != nil {
				return nil, "", err
			}
			target = v
		case takesFile[name] || takesDir[name]:
			v, err := next()
			if err != nil {
				return nil, "", err
			}
			if takesDir[name] && strings.Contains(v, "://") {
				args = append(args, name, v)
				continue
			}
			p, err := materialise(v)
			if err != nil {
				return nil, "", err
			}
			args = append(args, name, p)
		case takesValue[name]:
			v, err := next()
			if err != nil {
				return nil, "", err
			}
			args = append(args, name, v)
		case name == "--no-cache-dir" || name == "--upgrade" || name == "-U" || name == "--root-user-action":
			if name == "--root-user-action" && !hasVal {
				i++
			}
		default:
			args = append(args, w)
		}
	}
	if target == "" {
		return nil, "", fmt.Errorf("pip install without --target: %w", ErrNeedsEngine)
	}
	return args, target, nil
}
