package store

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func zipOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sha, size, err := s.PutCode(zipOf(t, map[string]string{"app.py": "x = 1\n", "bootstrap": "#!/bin/sh\n"}))
	if err != nil {
		t.Fatal(err)
	}
	f := Function{Name: "f", PackageType: "Zip", Runtime: "python3.12", Handler: "app.h", CodeSha256: sha, CodeSize: size, Timeout: 3, MemorySize: 128}
	if err := s.CreateFunction(f); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFunction(f); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	same := func(a, b Function) bool { return a.CodeSha256 == b.CodeSha256 }
	noop := func(v, l *Function) error { return nil }
	v1, err := s.PublishVersion("f", nil, same, noop)
	if err != nil || v1.Version != "1" {
		t.Fatalf("publish: %+v, %v", v1, err)
	}
	if again, _ := s.PublishVersion("f", nil, same, noop); again.Version != "1" {
		t.Fatalf("publish unchanged: version %s, want 1", again.Version)
	}
	if err := s.PutAlias(Alias{Function: "f", Name: "live", Version: "1"}, true); err != nil {
		t.Fatal(err)
	}
	if err, inUse := s.DeleteVersion("f", "1"), new(InUseError); !errors.As(err, &inUse) || inUse.Alias != "live" {
		t.Fatalf("delete version under an alias: %v", err)
	}
	codeDir, err := s.CodeDir(sha)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(codeDir, "bootstrap")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("bootstrap: %v %v", fi, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Function("f")
	if err != nil || got.Handler != "app.h" || got.LastVersion != 1 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if vs, _ := s.Versions("f"); len(vs) != 1 {
		t.Fatalf("versions: %+v", vs)
	}
	if a, err := s.Alias("f", "live"); err != nil || a.Version != "1" {
		t.Fatalf("alias: %+v %v", a, err)
	}
	if _, _, _, err := s.DeleteFunction("f"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Function("f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if as, _ := s.Aliases("f"); len(as) != 0 {
		t.Fatalf("aliases left: %+v", as)
	}
	if _, err := os.Stat(codeDir); !os.IsNotExist(err) {
		t.Fatalf("unused code not pruned: %v", err)
	}
}

func TestStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lambdabox.db"), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Dir: dir})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a corrupt file: %v, want ErrCorrupt", err)
	}
}

func TestStoreBadZip(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.PutCode([]byte("not a zip")); err == nil {
		t.Fatal("PutCode took a non-zip")
	}
	sha, _, err := s.PutCode(zipOf(t, map[string]string{"../escape": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CodeDir(sha); err == nil {
		t.Fatal("CodeDir unpacked a path outside its folder")
	}
	if _, _, err := s.PutCode(bigZip(t, MaxUnzippedSize/2+1)); !errors.Is(err, ErrUnzippedTooLarge) {
		t.Fatalf("PutCode of a zip over 250 MB unzipped: %v, want ErrUnzippedTooLarge", err)
	}
}

// bigZip is a small zip whose two files say they unzip to size bytes
// each (their data is not that).
func bigZip(t testing.TB, size uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"a", "b"} {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Store, CompressedSize64: 1, UncompressedSize64: size})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStoreConcurrentUpdates(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateFunction(Function{Name: "f"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := s.UpdateFunction("f", func(f *Function) error { f.Timeout++; return nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if f, _ := s.Function("f"); f.Timeout != 200 {
		t.Fatalf("timeout %d after 200 increments", f.Timeout)
	}
}

// A second Open of a database in use fails within LockTimeout, saying why.
func TestStoreLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(Config{Dir: dir, LockTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "another lambdabox holds it open") {
		t.Fatalf("second open: %v", err)
	}
}
