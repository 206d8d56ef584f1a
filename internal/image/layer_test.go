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
	wantDigest, _ := want.Digest()
	wantDiffID, _ := want.DiffID()
	check := func(what string) {
		t.Helper()
		l, err := openLayer(p)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		digest, _ := l.Digest()
		diffID, _ := l.DiffID()
		if digest != wantDigest || diffID != wantDiffID {
			t.Fatalf("%s: digest %s diffID %s, want %s %s", what, digest, diffID, wantDigest, wantDiffID)
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
