package base

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// run runs a host tool, returning its stderr in the error.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// pipPlatform selects binary wheels for the image's CPython and glibc (the
// suite's: bookworm has 2.36, trixie 2.41), whatever the host runs.
func pipPlatform(p *recipe.Pip, arch, glibc string) []string {
	m := "x86_64"
	if arch == "arm64" {
		m = "aarch64"
	}
	cp := "cp" + strings.ReplaceAll(p.Python, ".", "")
	args := []string{"--only-binary=:all:", "--implementation", "cp", "--python-version", p.Python,
		"--abi", cp, "--abi", "abi3", "--abi", "none"}
	var minor int
	if _, err := fmt.Sscanf(glibc, "2.%d", &minor); err != nil {
		minor = 17
	}
	// Newest first: the suite's glibc, then the versions wheels on PyPI are
	// tagged for (each tag costs pip time on every candidate file), then the
	// legacy aliases.
	args = append(args, "--platform", fmt.Sprintf("manylinux_2_%d_%s", minor, m))
	for _, v := range []int{39, 38, 36, 35, 34, 31, 28, 27, 24, 17} {
		if v < minor {
			args = append(args, "--platform", fmt.Sprintf("manylinux_2_%d_%s", v, m))
		}
	}
	for _, plat := range []string{"manylinux2014", "manylinux_2_5", "manylinux1"} {
		args = append(args, "--platform", plat+"_"+m)
	}
	return args
}

// pipResolve pins the distributions pip would install, as name==version.
func pipResolve(ctx context.Context, p *recipe.Pip, arch, glibc string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "lambdabox-pip-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	report := filepath.Join(tmp, "report.json")
	args := append([]string{"-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--dry-run", "--ignore-installed",
		"--report", report, "--target", filepath.Join(tmp, "t")}, pipPlatform(p, arch, glibc)...)
	if _, err := run(ctx, tmp, "python3", append(args, p.Packages...)...); err != nil {
		return nil, fmt.Errorf("pip: %w", err)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		return nil, err
	}
	var rep struct {
		Install []struct {
			Metadata struct{ Name, Version string } `json:"metadata"`
		} `json:"install"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("reading pip report: %w", err)
	}
	var pins []string
	for _, in := range rep.Install {
		pins = append(pins, in.Metadata.Name+"=="+in.Metadata.Version)
	}
	sort.Strings(pins)
	return pins, nil
}

// pipInstall installs the pinned distributions, without dependency
// resolution and without byte-compiling, into the layer at p.Target.
func pipInstall(ctx context.Context, p *recipe.Pip, pins []string, arch, glibc string, t *image.Tree) error {
	tmp, err := os.MkdirTemp("", "lambdabox-pip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	target := filepath.Join(tmp, "t")
	args := append([]string{"-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-deps", "--no-compile",
		"--ignore-installed", "--target", target}, pipPlatform(p, arch, glibc)...)
	if _, err := run(ctx, tmp, "python3", append(args, pins...)...); err != nil {
		return fmt.Errorf("pip: %w", err)
	}
	if err := t.AddDirFromDisk(target, p.Target); err != nil {
		return err
	}
	for _, path := range t.Paths() {
		if strings.HasSuffix(path, "/__pycache__") {
			if err := t.Remove(path); err != nil {
				return err
			}
		}
	}
	return nil
}

// mavenCopy copies the artifacts and their runtime dependencies from Maven
// Central with mvn dependency:copy-dependencies into dir.
func mavenCopy(ctx context.Context, m *recipe.Maven, dir string) error {
	var deps strings.Builder
	for _, a := range m.Artifacts {
		parts := strings.Split(a, ":")
		fmt.Fprintf(&deps, "<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>", parts[0], parts[1], parts[2])
	}
	pom := `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>lambdabox</groupId><artifactId>base-image</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>` + deps.String() + `</dependencies></project>`
	work := filepath.Join(dir, "..", filepath.Base(dir)+"-pom")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "pom.xml"), []byte(pom), 0o644); err != nil {
		return err
	}
	_, err := run(ctx, work, "mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+dir)
	return err
}

func jarSums(dir string) ([]Artifact, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var arts []Artifact
	for _, e := range ents {
		h, err := hashPath(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		arts = append(arts, Artifact{Name: e.Name(), SHA256: h})
	}
	return arts, nil
}

func (b *builder) mavenResolve(ctx context.Context, m *recipe.Maven) ([]Artifact, error) {
	tmp, err := os.MkdirTemp("", "lambdabox-mvn-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := mavenCopy(ctx, m, filepath.Join(tmp, "jars")); err != nil {
		return nil, err
	}
	return jarSums(filepath.Join(tmp, "jars"))
}

func (b *builder) mavenInstall(ctx context.Context, m *recipe.Maven, pins []Artifact, t *image.Tree) error {
	tmp, err := os.MkdirTemp("", "lambdabox-mvn-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "jars")
	if err := mavenCopy(ctx, m, dir); err != nil {
		return err
	}
	got, err := jarSums(dir)
	if err != nil {
		return err
	}
	if hashJSON(got) != hashJSON(pins) {
		return fmt.Errorf("maven resolved %v, lock file says %v (run with --update-lock)", got, pins)
	}
	if m.PruneNative {
		for _, a := range got {
			if err := pruneJar(filepath.Join(dir, a.Name), b.cfg.Arch); err != nil {
				return fmt.Errorf("%s: %w", a.Name, err)
			}
		}
	}
	return t.AddDirFromDisk(dir, m.Target)
}

// otherPlatforms are the words that name, in a native library's path, a
// platform other than a glibc Linux of the given architecture.
var otherPlatforms = map[string][]string{
	"amd64": {"musl", "aarch64", "aarch_64", "arm64"},
	"arm64": {"musl", "x86_64", "x86-64", "amd64"},
}

// pruneJar rewrites the jar at path without the .so entries for other
// platforms than arch's glibc Linux; the entries kept are copied as they
// are (headers, compressed bytes), so the result is deterministic.
func pruneJar(path, arch string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	defer zr.Close()
	drop := func(name string) bool {
		if !strings.HasSuffix(name, ".so") {
			return false
		}
		for _, w := range otherPlatforms[arch] {
			if strings.Contains(name, w) {
				return true
			}
		}
		return false
	}
	pruned := false
	for _, f := range zr.File {
		pruned = pruned || drop(f.Name)
	}
	if !pruned {
		return nil
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		if drop(f.Name) {
			continue
		}
		raw, err := f.OpenRaw()
		if err != nil {
			return err
		}
		fh := f.FileHeader
		w, err := zw.CreateRaw(&fh)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, raw); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// unpackInput puts a user-provided directory or tarball (.tar, .tar.gz,
// .tgz) under target.
func unpackInput(ctx context.Context, src, target string, t *image.Tree) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return t.AddDirFromDisk(src, target)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(src, ".gz") || strings.HasSuffix(src, ".tgz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer zr.Close()
		r = zr
	}
	return t.AddTarAt(r, target)
}

// hashPath hashes a file's content, or a directory's paths, modes and
// contents.
func hashPath(p string) (string, error) {
	h := sha256.New()
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p, path)
		fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode()&(fs.ModeType|0o111))
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			io.WriteString(h, l)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			return err
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// inputVersions returns <NAME>_VERSION for each input whose recipe entry
// names a version directory.
func inputVersions(r *recipe.Recipe, inputs map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, in := range r.Inputs {
		if in.Version == "" {
			continue
		}
		v, err := inputVersion(inputs[in.Name], in.Version)
		if err != nil {
			return nil, fmt.Errorf("input %s: version: %w", in.Name, err)
		}
		out[strings.ToUpper(in.Name)+"_VERSION"] = v
	}
	return out, nil
}

// inputVersion is the name of the only subdirectory of dir inside the
// user-provided directory or tarball src.
func inputVersion(src, dir string) (string, error) {
	names := map[string]bool{}
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		ents, err := os.ReadDir(filepath.Join(src, filepath.FromSlash(dir)))
		if err != nil {
			return "", err
		}
		for _, e := range ents {
			if e.IsDir() {
				names[e.Name()] = true
			}
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return "", err
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(src, ".gz") || strings.HasSuffix(src, ".tgz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				return "", fmt.Errorf("%s: %w", src, err)
			}
			defer zr.Close()
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("%s: %w", src, err)
			}
			rest, ok := strings.CutPrefix(strings.TrimPrefix(path.Clean("/"+h.Name), "/"), dir+"/")
			if ok && rest != "" && (h.Typeflag == tar.TypeDir || strings.Contains(rest, "/")) {
				names[strings.SplitN(rest, "/", 2)[0]] = true
			}
		}
	}
	if len(names) != 1 {
		return "", fmt.Errorf("want exactly one directory in %s, found %d", dir, len(names))
	}
	for n := range names {
		return n, nil
	}
	return "", nil
}
