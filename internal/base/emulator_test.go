package base

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
			if !strings.Contains(settings["-tags"], "lambdabox_emulator") {
				t.Errorf("tags %q: want the emulator build", settings["-tags"])
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
