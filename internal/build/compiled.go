package build

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lambdabox/lambdabox/internal/image"
)

// ErrCompile is wrapped when a Go function does not compile; the
// compiler's output follows it.
var ErrCompile = errors.New("go build failed")

// golang builds a Go function as /var/task/bootstrap: CGO_ENABLED=0, the
// image's GOOS/GOARCH, -trimpath, no VCS stamp, stripped.
func (b *builder) golang() (*plan, error) {
	p := &plan{handler: b.handlerOr("bootstrap")}
	p.code = func(ctx context.Context) (*image.Tree, error) {
		tmp, err := os.MkdirTemp("", "lambdabox-go-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, "bootstrap")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, ".")
		cmd.Dir = b.cfg.Dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.cfg.Arch, "GOFLAGS=-mod=mod")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%w in %s: %v\n%s", ErrCompile, b.cfg.Dir, err, bytes.TrimSpace(msg))
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		t := image.NewTree()
		return t, t.AddFile("var/task/bootstrap", data, 0o755)
	}
	return p, nil
}

func (b *builder) handlerOr(def string) string {
	if b.cfg.Handler != "" {
		return b.cfg.Handler
	}
	return def
}

// bootstrap is a Rust (cargo lambda) or any other folder with a built
// bootstrap executable: it goes to /var/task/bootstrap.
func (b *builder) bootstrap() (*plan, error) {
	dir := b.cfg.Dir
	var found []string
	for _, pat := range []string{"bootstrap", "target/lambda/*/bootstrap", "target/x86_64-unknown-linux-*/release/bootstrap", "target/aarch64-unknown-linux-*/release/bootstrap", "target/release/bootstrap"} {
		ms, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, m := range ms {
			if isExecutable(m) {
				found = append(found, m)
			}
		}
		if len(found) > 0 {
			break
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("want one built bootstrap executable in %s (bootstrap, target/lambda/*/bootstrap; cargo lambda build --release), found %d", dir, len(found))
	}
	p := &plan{handler: b.handlerOr("bootstrap")}
	p.code = func(context.Context) (*image.Tree, error) {
		data, err := os.ReadFile(found[0])
		if err != nil {
			return nil, err
		}
		t := image.NewTree()
		return t, t.AddFile("var/task/bootstrap", data, 0o755)
	}
	return p, nil
}

// java is a Maven or Gradle project with a built jar: its dependencies
// (target/dependency/*.jar, from mvn dependency:copy-dependencies) go to
// /var/task/lib in the dependency layer, the jar itself in the code layer.
// A shaded jar is just the code layer.
func (b *builder) java() (*plan, error) {
	dir := b.cfg.Dir
	var jars []string
	for _, pat := range []string{"target/*.jar", "build/libs/*.jar"} {
		ms, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, m := range ms {
			n := filepath.Base(m)
			if strings.HasPrefix(n, "original-") || strings.HasSuffix(n, "-sources.jar") || strings.HasSuffix(n, "-javadoc.jar") || strings.HasSuffix(n, "-tests.jar") || strings.HasSuffix(n, "-plain.jar") {
				continue
			}
			jars = append(jars, m)
		}
	}
	if len(jars) != 1 {
		return nil, fmt.Errorf("want one built jar in %s/target or build/libs (mvn package, gradle build), found %d", dir, len(jars))
	}
	jar := jars[0]
	handler := b.cfg.Handler
	if handler == "" {
		h, err := javaHandler(jar)
		if err != nil {
			return nil, err
		}
		handler = h
	} else if err := javaClassExists(jar, dir, handler); err != nil {
		return nil, err
	}
	p := &plan{handler: handler}
	p.code = func(context.Context) (*image.Tree, error) {
		data, err := os.ReadFile(jar)
		if err != nil {
			return nil, err
		}
		t := image.NewTree()
		return t, t.AddFile("var/task/lib/"+filepath.Base(jar), data, 0o644)
	}
	depDir := filepath.Join(dir, "target", "dependency")
	if deps, _ := filepath.Glob(filepath.Join(depDir, "*.jar")); len(deps) > 0 {
		sort.Strings(deps)
		var names []string
		for _, d := range deps {
			names = append(names, filepath.Base(d))
		}
		p.depsKey = []string{"maven", hashFiles(depDir, names...)}
		p.deps = func(context.Context) (*image.Tree, []Package, error) {
			t := image.NewTree()
			var pkgs []Package
			for _, d := range deps {
				data, err := os.ReadFile(d)
				if err != nil {
					return nil, nil, err
				}
				if err := t.AddFile("var/task/lib/"+filepath.Base(d), data, 0o644); err != nil {
					return nil, nil, err
				}
				pkgs = append(pkgs, mavenPackage(data, filepath.Base(d)))
			}
			return t, pkgs, nil
		}
	}
	return p, nil
}

// javaHandler finds the one class named *Handler in jar.
func javaHandler(jar string) (string, error) {
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", jar, err)
	}
	defer zr.Close()
	var found []string
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "Handler.class") && !strings.Contains(f.Name, "$") && !strings.HasPrefix(f.Name, "com/amazonaws/") {
			found = append(found, strings.ReplaceAll(strings.TrimSuffix(f.Name, ".class"), "/", "."))
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%w: cannot tell the handler class of %s (found %d classes named *Handler): give --handler package.Class::method", ErrHandler, filepath.Base(jar), len(found))
	}
	return found[0] + "::handleRequest", nil
}

// javaClassExists checks that handler's class is in jar or in the jars of
// target/dependency.
func javaClassExists(jar, dir, handler string) error {
	class, _, _ := strings.Cut(handler, "::")
	entry := strings.ReplaceAll(class, ".", "/") + ".class"
	jars := []string{jar}
	deps, _ := filepath.Glob(filepath.Join(dir, "target", "dependency", "*.jar"))
	for _, j := range append(jars, deps...) {
		zr, err := zip.OpenReader(j)
		if err != nil {
			continue
		}
		for _, f := range zr.File {
			if f.Name == entry {
				zr.Close()
				return nil
			}
		}
		zr.Close()
	}
	return fmt.Errorf("%w %q: no class %s in %s", ErrHandler, handler, class, filepath.Base(jar))
}

// mavenPackage reads a jar's META-INF/maven/*/*/pom.properties, or guesses
// from its file name.
func mavenPackage(data []byte, name string) Package {
	p := Package{Type: "maven", Name: strings.TrimSuffix(name, ".jar")}
	if i := strings.LastIndexByte(p.Name, '-'); i > 0 {
		p.Name, p.Version = p.Name[:i], p.Name[i+1:]
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return p
	}
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, "META-INF/maven/") || path.Base(f.Name) != "pom.properties" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			continue
		}
		props, _ := io.ReadAll(io.LimitReader(rc, 1<<16))
		rc.Close()
		kv := map[string]string{}
		for _, l := range strings.Split(string(props), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
				kv[k] = v
			}
		}
		if kv["artifactId"] != "" {
			return Package{Type: "maven", Name: kv["groupId"] + ":" + kv["artifactId"], Version: kv["version"]}
		}
	}
	return p
}

// dotnet is a dotnet publish folder: the assembly named by its
// *.runtimeconfig.json and its own files form the code layer, every other
// file (the libraries) the dependency layer.
func (b *builder) dotnet() (*plan, error) {
	dir := b.cfg.Dir
	rcs, _ := filepath.Glob(filepath.Join(dir, "*.runtimeconfig.json"))
	if len(rcs) != 1 {
		return nil, fmt.Errorf("want one *.runtimeconfig.json in %s (dotnet publish output), found %d", dir, len(rcs))
	}
	asm := strings.TrimSuffix(filepath.Base(rcs[0]), ".runtimeconfig.json")
	handler := b.handlerOr(asm)
	hasm, _, _ := strings.Cut(handler, "::")
	if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(hasm, ".dll")+".dll")); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, hasm)); err2 != nil {
			return nil, fmt.Errorf("%w %q: no assembly %s.dll in %s", ErrHandler, handler, strings.TrimSuffix(hasm, ".dll"), dir)
		}
	}
	own := func(rel string) bool {
		return !strings.Contains(rel, "/") && strings.HasPrefix(rel, asm+".")
	}
	p := &plan{handler: handler}
	p.code = func(context.Context) (*image.Tree, error) {
		t := image.NewTree()
		skip := b.codeSkip()
		return t, addDir(t, dir, "var/task", func(rel string, d bool) bool {
			return skip(rel, d) || (!d && !own(rel))
		})
	}
	var deps []string
	skip := b.codeSkip()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && !own(rel) {
			deps = append(deps, rel)
		}
		return nil
	})
	if len(deps) > 0 {
		p.depsKey = []string{"dotnet", hashFiles(dir, deps...)}
		p.deps = func(context.Context) (*image.Tree, []Package, error) {
			t := image.NewTree()
			for _, rel := range deps {
				full := filepath.Join(dir, filepath.FromSlash(rel))
				st, err := os.Stat(full)
				if err != nil {
					return nil, nil, err
				}
				data, err := os.ReadFile(full)
				if err != nil {
					return nil, nil, err
				}
				if err := t.AddFile("var/task/"+rel, data, st.Mode()); err != nil {
					return nil, nil, err
				}
			}
			return t, nugetPackages(filepath.Join(dir, asm+".deps.json")), nil
		}
	}
	return p, nil
}

// nugetPackages reads the package libraries of a .deps.json.
func nugetPackages(depsFile string) []Package {
	data, err := os.ReadFile(depsFile)
	if err != nil {
		return nil
	}
	var deps struct {
		Libraries map[string]struct {
			Type string `json:"type"`
		} `json:"libraries"`
	}
	if json.Unmarshal(data, &deps) != nil {
		return nil
	}
	var pkgs []Package
	for k, l := range deps.Libraries {
		if l.Type != "package" {
			continue
		}
		n, v, _ := strings.Cut(k, "/")
		pkgs = append(pkgs, Package{Type: "nuget", Name: n, Version: v})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs
}

// addZip adds the entries of a zip file (a Lambda layer archive) under
// prefix.
func addZip(t *image.Tree, file, prefix string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		name := path.Join(prefix, path.Clean("/"+f.Name))
		if f.FileInfo().IsDir() {
			if err := t.AddDir(name); err != nil {
				return err
			}
			continue
		}
		if f.Mode()&os.ModeSymlink != 0 {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			if err := t.AddSymlink(name, string(target)); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		mode := f.Mode()
		// Zips made on Windows carry no Unix modes: files under bin/ and
		// extensions/ are executables there.
		if mode&0o777 == 0 && (strings.HasPrefix(f.Name, "extensions/") || strings.HasPrefix(f.Name, "bin/")) {
			mode = 0o755
		}
		if err := t.AddFile(name, data, mode); err != nil {
			return err
		}
	}
	return nil
}
