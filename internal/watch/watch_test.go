package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "node_modules"), 0o755)
	calls := make(chan []string, 10)
	// A debounce well above a loaded machine's scheduling delays, so that
	// the burst below is one change however slowly its writes run.
	w, err := New(Config{Dirs: []string{dir}, Debounce: 250 * time.Millisecond, OnChange: func(_ context.Context, c []string) { calls <- c }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect := func(what string) []string {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
		return nil
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case c := <-calls:
			t.Fatalf("%s reported a change: %q", what, c)
		case <-time.After(600 * time.Millisecond):
		}
	}
	// A burst of writes is one change.
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, "app.py"), []byte{byte('a' + i)}, 0o644)
	}
	if c := expect("a burst"); len(c) != 1 || filepath.Base(c[0]) != "app.py" {
		t.Errorf("changed %q", c)
	}
	quiet("the end of a burst")
	os.WriteFile(filepath.Join(dir, ".app.py.swp"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.py~"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "node_modules", "x.js"), []byte("x"), 0o644)
	quiet("editor files and node_modules")
	// A new folder is watched too.
	os.Mkdir(filepath.Join(dir, "pkg"), 0o755)
	expect("a new folder")
	os.WriteFile(filepath.Join(dir, "pkg", "m.py"), []byte("x"), 0o644)
	if c := expect("a file in a new folder"); filepath.Base(c[len(c)-1]) != "m.py" {
		t.Errorf("changed %q", c)
	}
}

func TestIgnored(t *testing.T) {
	for name, want := range map[string]bool{
		"app.py": false, ".app.py.swp": true, "4913": true, "app.py~": true, ".#app.py": true, "#app.py#": true,
		"x.pyc": true, "__pycache__": true, "node_modules": true, "main.go": false, ".env": false,
	} {
		if Ignored(name) != want {
			t.Errorf("Ignored(%q) = %v", name, !want)
		}
	}
	if _, err := New(Config{Dirs: []string{"/nonexistent-dir"}, OnChange: func(context.Context, []string) {}}); err == nil {
		t.Error("no error watching a missing folder")
	}
}
