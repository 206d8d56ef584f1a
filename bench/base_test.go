package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// awsSizes are the compressed sizes of AWS's base images for the same
// runtimes (x86_64), in MiB, from ../shared/spec/images.md: provided.al2023,
// python3.12, nodejs20.x, java21 and dotnet8 are listed there; the other
// runtimes are compared with the listed image of the same language (AWS's
// images of one language share their Amazon Linux base and differ mostly
// in the runtime's own size).
var awsSizes = map[string]float64{
	"provided":   25,
	"python3.11": 112, // python3.12
	"python3.13": 112, // python3.12
	"python3.14": 112, // python3.12
	"nodejs":     69,  // nodejs20.x
	"nodejs24":   69,  // nodejs20.x
	"java17":     69,  // java21
	"java21":     69,
	"java25":     69, // java21
}

// baseRuntimes are the runtimes BenchmarkBaseImage builds: the new ones of
// issue 11 first, then the bookworm ones.
var baseRuntimes = []string{"provided", "python3.13", "python3.14", "nodejs24", "java21", "java25", "python3.11", "nodejs", "java17"}

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
	for _, runtime := range baseRuntimes {
		b.Run(runtime, func(b *testing.B) {
			if strings.HasPrefix(runtime, "nodejs") && os.Geteuid() != 0 {
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

// BenchmarkBaseUpdate times `lambdabox base update <runtime> --check` of a
// lock that is up to date (target < 2 s): it fetches the suite's package
// lists again and compares every pin with apt's candidates and PyPI's or
// npm's answers. The same-run baseline is the refresh of the same package
// lists alone (the archives' InRelease files fetched and compared; apt-get
// update when they changed), the network floor of any check
// (x-lists-refresh). The lock comes from a first base build in the shared
// cache.
func BenchmarkBaseUpdate(b *testing.B) {
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
	for _, runtime := range []string{"provided", "python3.13", "java21"} {
		b.Run(runtime, func(b *testing.B) {
			dir := b.TempDir()
			lock := filepath.Join(dir, "lock.json")
			run := func(args ...string) time.Duration {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
				defer cancel()
				start := time.Now()
				cmd := exec.CommandContext(ctx, bin, args...)
				if msg, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("lambdabox %s: %v\n%s", strings.Join(args, " "), err, msg)
				}
				return time.Since(start)
			}
			run("base", "build", runtime, "--cache", cache, "--lock", lock, "--output", "oci:"+filepath.Join(dir, "image.oci"))
			r, err := recipe.Load(runtime)
			if err != nil {
				b.Fatal(err)
			}
			a, err := debian.New(debian.Config{Dir: filepath.Join(cache, "apt-"+r.Suite+"-amd64"), Suite: r.Suite})
			if err != nil {
				b.Fatal(err)
			}
			var baseline time.Duration
			b.ResetTimer()
			var took time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := a.Update(context.Background(), true); err != nil {
					b.Fatal(err)
				}
				baseline += time.Since(start)
				took += run("base", "update", runtime, "--check", "--cache", cache, "--lock", lock)
			}
			b.StopTimer()
			b.ReportMetric(took.Seconds()/float64(b.N), "update-s")
			b.ReportMetric(baseline.Seconds()/float64(b.N), "lists-refresh-s")
			b.ReportMetric(took.Seconds()/baseline.Seconds(), "x-lists-refresh")
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
