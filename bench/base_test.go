package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// awsSizes are the compressed sizes of AWS's base images for the same
// runtimes (x86_64, ../shared/spec/images.md), in MiB.
var awsSizes = map[string]float64{
	"provided":   25,
	"python3.11": 112, // python3.12, the one images.md lists
	"nodejs":     69,  // nodejs20.x
	"java17":     69,  // java21, likewise
}

// BenchmarkBaseImage builds each base image once with `lambdabox base
// build` (which fills the lock file and, unless an earlier run or
// TestBaseImages did, the layer cache), then times b.N cached rebuilds of
// the unchanged recipe, each a whole `lambdabox base build` process
// writing an OCI layout. It reports the image's compressed size, its ratio
// to AWS's image for the runtime (target ≤ 0.5) and the rebuild time
// (target < 2 s).
//
// The cache is the one TestBaseImages uses, so after `go test ./...` no
// package is downloaded again. An empty cache makes the first build slow
// (nodejs: minutes, as it compiles aws-lambda-ric's addon).
func BenchmarkBaseImage(b *testing.B) {
	for _, tool := range []string{"dpkg-deb", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s (bash .ci/run installs it)", tool)
		}
	}
	cache := filepath.Join(tmpDir, "base-cache")
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "lambdabox-tests")
	}
	bin := lambdaboxBinary(b)
	for _, runtime := range []string{"provided", "python3.11", "nodejs", "java17"} {
		b.Run(runtime, func(b *testing.B) {
			if runtime == "nodejs" && os.Geteuid() != 0 {
				b.Skip("the nodejs recipe builds its RIC in a chroot: run as root")
			}
			dir := b.TempDir()
			out := filepath.Join(dir, "image.oci")
			build := func() time.Duration {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
				defer cancel()
				start := time.Now()
				cmd := exec.CommandContext(ctx, bin, "base", "build", runtime, "--cache", cache,
					"--lock", filepath.Join(dir, "lock.json"), "--output", "oci:"+out)
				if msg, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("lambdabox base build %s: %v\n%s", runtime, err, msg)
				}
				return time.Since(start)
			}
			first := build()
			b.ResetTimer()
			var took time.Duration
			for i := 0; i < b.N; i++ {
				took += build()
			}
			b.StopTimer()
			mib := imageMiB(b, out)
			b.ReportMetric(mib, "MiB")
			b.ReportMetric(mib/awsSizes[runtime], "x-aws")
			b.ReportMetric(took.Seconds()/float64(b.N), "rebuild-s")
			b.ReportMetric(first.Seconds(), "first-s")
		})
	}
}

// imageMiB is the compressed size of the single image in an OCI layout:
// its layers, config and manifest, in MiB.
func imageMiB(b *testing.B, layout string) float64 {
	b.Helper()
	type descriptor struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	}
	var index struct{ Manifests []descriptor }
	readJSON := func(p string, v any) {
		data, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(data, v)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	readJSON(filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		b.Fatalf("%s: %d manifests, want 1", layout, len(index.Manifests))
	}
	m := index.Manifests[0]
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	readJSON(filepath.Join(layout, "blobs", "sha256", m.Digest[len("sha256:"):]), &manifest)
	total := m.Size + manifest.Config.Size
	for _, l := range manifest.Layers {
		total += l.Size
	}
	return float64(total) / (1 << 20)
}
