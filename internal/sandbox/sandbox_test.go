package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestFindExtensions(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("zeta", 0o755)
	write("alpha", 0o700)
	write("readme", 0o644)
	write("Beta", 0o755) // names sort bytewise, as Lambda's do
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A named pipe with execute bits is not a program.
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dir string
		want      []string
	}{
		{"mixed", dir, []string{"Beta", "alpha", "zeta"}},
		{"empty name", "", nil},
		{"missing", filepath.Join(dir, "nope"), nil},
		{"a file", filepath.Join(dir, "zeta"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := FindExtensions(c.dir); !slices.Equal(got, c.want) {
				t.Errorf("FindExtensions(%q) = %v, want %v", c.dir, got, c.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	xe := &ExtensionError{Name: "ext", Err: &EntrypointError{Err: os.ErrPermission}}
	if xe.Error() != "extension ext: permission denied" {
		t.Errorf("Error() = %q", xe.Error())
	}
	if !errors.Is(xe, ErrInvalidEntrypoint) {
		t.Error("an extension's exec error does not unwrap to ErrInvalidEntrypoint")
	}
}
