package image

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestLayerDigestsRemembered(t *testing.T) {
	dir := t.TempDir()
	data, err := sampleTree(t, false).Gzip(time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "l.tar.gz")
	os.WriteFile(p, data, 0o644)
	want, err := tarball.LayerFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		l, err := openLayer(p)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, f := range []func() (string, string){
			func() (string, string) { a, _ := l.Digest(); b, _ := want.Digest(); return a.String(), b.String() },
			func() (string, string) { a, _ := l.DiffID(); b, _ := want.DiffID(); return a.String(), b.String() },
		} {
			if got, exp := f(); got != exp {
				t.Fatalf("%s: %s, want %s", what, got, exp)
			}
		}
	}
	check("first open")
	if _, err := os.Stat(p + digestsSuffix); err != nil {
		t.Fatalf("digests not saved: %v", err)
	}
	check("remembered")

	// Digests that do not match the file (another layer at the same path,
	// a torn write) are computed again.
	for _, bad := range []string{`{"digest":"sha256:00","diffID":"sha256:00","size":1}`, `{"dig`} {
		os.WriteFile(p+digestsSuffix, []byte(bad), 0o644)
		check("bad digests " + bad)
	}
}
