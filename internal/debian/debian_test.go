package debian

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"
)

func TestInstLine(t *testing.T) {
	tests := []struct {
		line              string
		name, version, ar string
		security          bool
	}{
		{"Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])", "libc6", "2.36-9+deb12u14", "amd64", false},
		{"Inst libzstd1 (1.5.7+dfsg-1+deb13u1 Debian-Security:13/stable-security [amd64])", "libzstd1", "1.5.7+dfsg-1+deb13u1", "amd64", true},
		{"Inst zlib1g (1:1.3.dfsg+really1.3.1-1+deb13u1 Debian:13.8/stable, Debian-Security:13/stable-security [amd64])", "zlib1g", "1:1.3.dfsg+really1.3.1-1+deb13u1", "amd64", true},
		{"Inst libgcc-s1 (14.2.0-19 Debian:13.8/stable [amd64]) []", "libgcc-s1", "14.2.0-19", "amd64", false},
		{"Inst tzdata (2026f-0+deb13u1 Debian:13.8/stable, Debian:13-updates/stable-updates [all])", "tzdata", "2026f-0+deb13u1", "all", false},
	}
	for _, tt := range tests {
		m := instLine.FindStringSubmatch(tt.line)
		if m == nil {
			t.Fatalf("%q: no match", tt.line)
		}
		p := Package{Name: m[1], Version: m[2], Arch: m[4], Security: strings.Contains(m[3], "Debian-Security:")}
		if p.Name != tt.name || p.Version != tt.version || p.Arch != tt.ar || p.Security != tt.security {
			t.Errorf("%q: %+v", tt.line, p)
		}
	}
}

func TestLookupSuite(t *testing.T) {
	for _, name := range []string{"bookworm", "trixie", "forky"} {
		if _, err := LookupSuite(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s, _ := LookupSuite("forky"); !s.Testing || !s.MergedUsr {
		t.Errorf("forky: %+v", s)
	}
	_, err := LookupSuite("sid")
	if !errors.Is(err, ErrUnknownSuite) || !strings.Contains(err.Error(), "known: bookworm, trixie, forky") {
		t.Fatalf("err = %v", err)
	}
	if err := (Config{Dir: "x", Suite: "buster"}).Validate(); !errors.Is(err, ErrUnknownSuite) {
		t.Fatalf("Validate: err = %v", err)
	}
}

func TestUsrMerged(t *testing.T) {
	for in, want := range map[string]string{
		"bin/sh": "usr/bin/sh", "/bin/sh": "usr/bin/sh", "lib64/ld-linux-x86-64.so.2": "usr/lib64/ld-linux-x86-64.so.2",
		"lib": "usr/lib", "sbin/x": "usr/sbin/x", "usr/bin/sh": "usr/bin/sh", "etc/bin/x": "etc/bin/x", "binx/y": "binx/y",
		"lib32/x": "lib32/x",
	} {
		if got := UsrMerged(in); got != want {
			t.Errorf("UsrMerged(%q) = %q, want %q", in, got, want)
		}
	}
}

type tarNames []string

func (n *tarNames) AddTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(tr)
		*n = append(*n, h.Name+"="+h.Linkname+"="+string(data))
	}
}

func TestUsrMergedTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin/dash", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4},
		{Name: "./bin/sh", Typeflag: tar.TypeSymlink, Linkname: "dash"},
		{Name: "./usr/bin/rdash", Typeflag: tar.TypeLink, Linkname: "./bin/dash"},
		{Name: "./etc/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("dash")[:h.Size])
		}
	}
	tw.Close()
	var got tarNames
	if err := got.AddTar(usrMergedTar(&buf)); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := "etc/x==d usr/bin/== usr/bin/dash==dash usr/bin/rdash=usr/bin/dash= usr/bin/sh=dash="
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %q\nwant %q", strings.Join(got, " "), want)
	}
}
