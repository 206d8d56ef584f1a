package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func sampleTree(t *testing.T, reverse bool) *Tree {
	t.Helper()
	tr := NewTree()
	steps := []func() error{
		func() error { return tr.AddFile("/usr/bin/hello", []byte("#!/bin/sh\n"), 0o4775) },
		func() error { return tr.AddFile("./etc/motd", []byte("hi"), 0o600) },
		func() error { return tr.AddSymlink("bin/sh", "dash") },
		func() error { return tr.AddDir("tmp") },
		func() error { return tr.AddFile("a/b/c/d.txt", []byte("deep"), 0o644) },
	}
	if reverse {
		for i, j := 0, len(steps)-1; i < j; i, j = i+1, j-1 {
			steps[i], steps[j] = steps[j], steps[i]
		}
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

type hdr struct {
	Name     string
	Mode     int64
	Typeflag byte
	Uid, Gid int
	ModTime  int64
	Link     string
}

func readTar(t *testing.T, data []byte) []hdr {
	t.Helper()
	var hs []hdr
	r := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q, want empty", h.Name, h.Uname, h.Gname)
		}
		hs = append(hs, hdr{h.Name, h.Mode, h.Typeflag, h.Uid, h.Gid, h.ModTime.Unix(), h.Linkname})
	}
}

func TestWriteTarDeterministic(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	var a, b bytes.Buffer
	if err := sampleTree(t, false).WriteTar(&a, epoch); err != nil {
		t.Fatal(err)
	}
	if err := sampleTree(t, true).WriteTar(&b, epoch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same tree added in another order gives different tar bytes")
	}
	got := readTar(t, a.Bytes())
	want := []hdr{
		{"a/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"a/b/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"a/b/c/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"a/b/c/d.txt", 0o644, tar.TypeReg, 0, 0, 1700000000, ""},
		{"bin/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"bin/sh", 0o777, tar.TypeSymlink, 0, 0, 1700000000, "dash"},
		{"etc/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"etc/motd", 0o644, tar.TypeReg, 0, 0, 1700000000, ""},
		{"tmp/", 0o1777, tar.TypeDir, 0, 0, 1700000000, ""},
		{"usr/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"usr/bin/", 0o755, tar.TypeDir, 0, 0, 1700000000, ""},
		{"usr/bin/hello", 0o755, tar.TypeReg, 0, 0, 1700000000, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries:\n got %+v\nwant %+v", got, want)
	}
}

func TestAddTarHardlinksAndEscapes(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	write(&tar.Header{Name: "./usr/bin/python3.11", Mode: 0o755, Typeflag: tar.TypeReg, Uid: 1000, Uname: "someone"}, "elf")
	write(&tar.Header{Name: "./usr/bin/python3", Typeflag: tar.TypeLink, Linkname: "./usr/bin/python3.11"}, "")
	write(&tar.Header{Name: "../../etc/passwd", Mode: 0o644, Typeflag: tar.TypeReg}, "x")
	tw.Close()
	tr := NewTree()
	if err := tr.AddTarAt(&buf, "/opt"); err != nil {
		t.Fatal(err)
	}
	if got := tr.Paths(); !reflect.DeepEqual(got, []string{"opt/etc/passwd", "opt/usr/bin/python3", "opt/usr/bin/python3.11"}) {
		t.Fatalf("paths = %q", got)
	}
	if data, ok := tr.File("opt/usr/bin/python3"); !ok || string(data) != "elf" {
		t.Fatalf("hard link not copied: %q %v", data, ok)
	}
}

func TestGzipReproducible(t *testing.T) {
	a, err := sampleTree(t, false).Gzip(time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sampleTree(t, true).Gzip(time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("gzip output differs")
	}
	c, _ := sampleTree(t, false).Gzip(time.Unix(1, 0))
	if bytes.Equal(a, c) {
		t.Fatal("epoch does not reach the layer")
	}
}

func buildSample(t *testing.T, dir string, epoch time.Time) string {
	t.Helper()
	data, err := sampleTree(t, false).Gzip(epoch)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "layer.tar.gz")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := Build([]Layer{{Path: p, Comment: "sample"}}, Config{
		Env: []string{"A=1"}, Entrypoint: []string{"/lambda-entrypoint.sh"}, WorkingDir: "/var/task", Created: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Time.Equal(epoch) || cf.History[0].Created.Time.Unix() != epoch.Unix() || cf.Config.Cmd != nil || cf.Config.WorkingDir != "/var/task" {
		t.Fatalf("config: %+v", cf)
	}
	return d.String()
}

func TestBuildDigestReproducible(t *testing.T) {
	epoch := time.Unix(1234, 0)
	if a, b := buildSample(t, t.TempDir(), epoch), buildSample(t, t.TempDir(), epoch); a != b {
		t.Fatalf("digests differ: %s %s", a, b)
	}
	if a, b := buildSample(t, t.TempDir(), epoch), buildSample(t, t.TempDir(), time.Unix(1235, 0)); a == b {
		t.Fatal("digest ignores the epoch")
	}
}

func TestWriteOutputsAtomically(t *testing.T) {
	dir := t.TempDir()
	data, _ := sampleTree(t, false).Gzip(time.Unix(0, 0))
	lp := filepath.Join(dir, "l.tar.gz")
	os.WriteFile(lp, data, 0o644)
	img, err := Build([]Layer{{Path: lp}}, Config{Entrypoint: []string{"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	tag := name.MustParseReference("lambdabox/test:1").(name.Tag)

	out := filepath.Join(dir, "img.oci")
	os.MkdirAll(filepath.Join(out, "stale"), 0o755)
	if err := WriteLayout(out, img, tag); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); err == nil {
		t.Fatal("old layout not replaced")
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImageIndex(); err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(filepath.Join(dir, "img.tar"), img, tag); err != nil {
		t.Fatal(err)
	}

	// An output below a regular file cannot be written: clear error, no debris.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := WriteLayout(filepath.Join(blocker, "img.oci"), img, tag); err == nil {
		t.Fatal("want an error for an output below a file")
	}
	if err := WriteTarball(filepath.Join(blocker, "img.tar"), img, tag); err == nil {
		t.Fatal("want an error for an output below a file")
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"file", "img.oci", "img.tar", "l.tar.gz", "l.tar.gz.digests.json"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("dir holds %q, want %q", names, want)
	}
}

func TestWriteDir(t *testing.T) {
	tr := NewTree()
	tr.AddFile("usr/bin/tool", []byte("#!/bin/sh\n"), 0o755)
	tr.AddFile("etc/conf", []byte("x"), 0o644)
	tr.AddSymlink("lib", "/")            // an absolute link to a directory…
	tr.AddFile("lib/escape", nil, 0o644) // …must not carry files out of dir
	dir := t.TempDir()
	if err := tr.WriteDir(filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if st, err := os.Stat(filepath.Join(root, "usr/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("tool: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/conf")); string(b) != "x" {
		t.Fatalf("conf: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "lib")); l != "/" {
		t.Fatalf("lib links to %q", l)
	}
	if _, err := os.Lstat("/escape"); err == nil {
		t.Fatal("a file was written through the tree's symbolic link")
	}
}
