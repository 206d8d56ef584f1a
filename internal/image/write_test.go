package image

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseOutput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in      string
		want    Output
		wantErr string
	}{
		{in: "oci:" + dir + "/x.oci", want: Output{OCI, dir + "/x.oci"}},
		{in: "tar:" + dir + "/x.tar", want: Output{Tarball, dir + "/x.tar"}},
		{in: "zip:" + dir + "/x", wantErr: "want oci:DIR or tar:FILE"},
		{in: "oci:", wantErr: "want oci:DIR or tar:FILE"},
		{in: dir, wantErr: "want oci:DIR or tar:FILE"},
		{in: "tar:" + dir + "/missing/x.tar", wantErr: "does not exist"},
	} {
		got, err := ParseOutput(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseOutput(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseOutput(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// Write puts the same image in every destination, each file output with
// its SBOM beside it.
func TestWriteEveryDestination(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	dir := t.TempDir()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	tag := name.MustParseReference("lambdabox/test:1").(name.Tag)
	push, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/lambdabox/test:1")
	if err != nil {
		t.Fatal(err)
	}
	d := Destinations{
		Outputs: []Output{{OCI, filepath.Join(dir, "img.oci")}, {Tarball, filepath.Join(dir, "img.tar")}},
		Push:    push,
	}
	if d.Empty() || !(Destinations{}).Empty() {
		t.Fatal("Empty is wrong")
	}
	sbom := []byte(`{"spdxVersion":"SPDX-2.3"}`)
	if err := Write(context.Background(), img, tag, d, sbom); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "img.oci"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != tag.String() {
		t.Errorf("OCI layout holds %+v; want %s tagged %s", m.Manifests, want, tag)
	}
	fromTar, err := tarball.ImageFromPath(filepath.Join(dir, "img.tar"), &tag)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fromTar.Digest(); got != want {
		t.Errorf("tarball image %s; want %s", got, want)
	}
	desc, err := remote.Head(push)
	if err != nil || desc.Digest != want {
		t.Errorf("pushed %v, %v; want %s", desc, err, want)
	}
	for _, out := range d.Outputs {
		if b, err := os.ReadFile(out.Path + ".spdx.json"); err != nil || string(b) != string(sbom) {
			t.Errorf("SBOM beside %s: %q, %v", out, b, err)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if got, err := SourceDateEpoch(); err != nil || !got.IsZero() {
		t.Errorf("unset: %v, %v; want the zero time", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if got, err := SourceDateEpoch(); err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("1700000000: %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := SourceDateEpoch(); !errors.Is(err, ErrBadEpoch) {
		t.Errorf("yesterday: %v; want ErrBadEpoch", err)
	}
}

// Load tries again when the engine lost a layer to a removal running at
// the same time, and gives up after loadAttempts or on any other failure.
func TestLoadRetriesLostLayer(t *testing.T) {
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("localhost/lambdabox-test/load:1")
	for _, tc := range []struct {
		name     string
		failures int    // how many loads fail before one succeeds
		message  string // what a failing load prints
		wantErr  bool
		wantRuns int
	}{
		{"lost once", 1, "Error: writing blob: locating layer for blob sha256:86c0: layer not known", false, 2},
		{"lost every time", 5, "Error: layer not known", true, LoadAttempts},
		{"other failure", 1, "Error: no space left on device", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runs := filepath.Join(dir, "runs")
			engine := filepath.Join(dir, "podman")
			script := "#!/bin/sh\necho x >> " + runs + "\n" +
				"[ $(wc -l < " + runs + ") -gt " + strconv.Itoa(tc.failures) + " ] && exit 0\n" +
				"echo '" + tc.message + "' >&2\nexit 125\n"
			if err := os.WriteFile(engine, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			err := Load(context.Background(), engine, img, tag)
			if (err != nil) != tc.wantErr {
				t.Errorf("Load: %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Load: %v, want the engine's message %q", err, tc.message)
			}
			b, _ := os.ReadFile(runs)
			if n := strings.Count(string(b), "x"); n != tc.wantRuns {
				t.Errorf("engine ran %d times, want %d", n, tc.wantRuns)
			}
		})
	}
}
