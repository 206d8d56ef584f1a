package base

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestEmulatorReproducible builds the emulator twice, into two caches, from
// the source tree: the bytes are the same, static, stripped, with no VCS
// stamp and no build ID (so a user's checkout state or Go environment does
// not change them).
func TestEmulatorReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lambdabox twice: not in -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	wd, _ := os.Getwd()
	ctx := context.Background()
	t.Setenv("GOFLAGS", "-race") // the user's environment must not reach the build
	t.Setenv("GOAMD64", "v3")
	var bins [][]byte
	for i := 0; i < 2; i++ {
		path, err := FindEmulator(ctx, wd, t.TempDir(), "amd64")
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bins = append(bins, data)
		if i == 0 {
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("the emulator is dynamically linked")
				}
			}
			if f.Section(".symtab") != nil {
				t.Error("the emulator has a symbol table: not stripped")
			}
			f.Close()
			bi, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" || settings["vcs.revision"] != "" || settings["GOAMD64"] != "v1" || bi.GoVersion != EmulatorToolchain {
				t.Errorf("build settings %v, Go %s", settings, bi.GoVersion)
			}
			if want := Module + "/cmd/aws-lambda-rie"; bi.Path != want || settings["-tags"] != "" {
				t.Errorf("built %s with tags %q: want %s, no tags", bi.Path, settings["-tags"], want)
			}
			if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
				for _, arg := range []string{"--help", "--version"} {
					out, err := exec.Command(path, arg).Output()
					if err != nil || !strings.Contains(string(out), "aws-lambda-rie") {
						t.Errorf("aws-lambda-rie %s: %v\n%s", arg, err, out)
					}
				}
			}
		}
	}
	if !bytes.Equal(bins[0], bins[1]) {
		t.Fatal("two builds of the same source differ")
	}
}

// TestEmulatorOutsideSourceTree: a lambdabox built from a source tree (not
// a released version) and run elsewhere says how to get an emulator rather
// than putting its own bytes in the image.
func TestEmulatorOutsideSourceTree(t *testing.T) {
	_, err := FindEmulator(context.Background(), t.TempDir(), t.TempDir(), "amd64")
	if !errors.Is(err, ErrNoEmulator) || !strings.Contains(err.Error(), "is not inside the lambdabox source tree") || !strings.Contains(err.Error(), "--emulator") {
		t.Fatalf("err = %v", err)
	}
	// A directory of another Go module is not lambdabox's tree either.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/fn\n"), 0o644)
	if _, err := FindEmulator(context.Background(), other, t.TempDir(), "amd64"); !errors.Is(err, ErrNoEmulator) {
		t.Fatalf("other module: err = %v", err)
	}
}

func TestReleased(t *testing.T) {
	for v, want := range map[string]bool{"v1.2.3": true, "v0.0.0-20261201-abcdef": true, "(devel)": false, "": false} {
		if released(v) != want {
			t.Errorf("released(%q) = %v", v, !want)
		}
	}
}

// TestEmulatorFromModuleCache: an installed release of lambdabox, run
// outside any source tree, builds its emulator from its version's source,
// fetched into the Go module cache (here from a file proxy holding this
// tree as v0.0.0-test, with the dependencies from the real module cache),
// and gets the same bytes each time.
func TestEmulatorFromModuleCache(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lambdabox: not in -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	realCache := strings.TrimSpace(string(out))
	const version = "v0.0.0-test"
	proxy := t.TempDir()
	writeModuleZip(t, filepath.Join(proxy, Module, "@v"), version)
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPROXY", "file://"+proxy+",file://"+filepath.Join(realCache, "cache", "download"))
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOFLAGS", "-modcacherw")
	t.Cleanup(func() { exec.Command("go", "clean", "-modcache").Run() }) // the test's GOMODCACHE
	ctx := context.Background()
	outside := t.TempDir()
	var sums []string
	for i := 0; i < 2; i++ {
		path, err := findEmulator(ctx, outside, t.TempDir(), "amd64", version)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(filepath.Base(path), version) {
			t.Errorf("cached as %s: want the version in the name", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, string(data))
	}
	if sums[0] != sums[1] {
		t.Fatal("two builds of the same version differ")
	}
	if _, err := findEmulator(ctx, outside, t.TempDir(), "amd64", "v0.0.0-missing"); err == nil || !strings.Contains(err.Error(), "fetching lambdabox v0.0.0-missing's source") {
		t.Fatalf("unknown version: err = %v", err)
	}
}

// writeModuleZip writes a module proxy's files for this source tree as
// Module@version: the Go sources and embedded files of cmd/ and internal/
// (no tests, no testdata), go.mod and go.sum.
func writeModuleZip(t *testing.T, dir, version string) {
	t.Helper()
	wd, _ := os.Getwd()
	root := moduleRoot(wd)
	if root == "" {
		t.Fatal("not in the lambdabox source tree")
	}
	os.MkdirAll(dir, 0o755)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644)
	os.WriteFile(filepath.Join(dir, version+".info"), []byte(`{"Version":"`+version+`","Time":"2026-01-01T00:00:00Z"}`), 0o644)
	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	add := func(rel string) {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(Module + "@" + version + "/" + filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	add("go.mod")
	add("go.sum")
	for _, top := range []string{"cmd", "internal"} {
		filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, "_test.go") || !(strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".toml")) {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			add(rel)
			return nil
		})
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
