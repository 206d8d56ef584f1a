package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchRequirements are about 10 MB of installed Python dependencies
// (pydantic with its compiled core, requests and its dependencies, PyYAML).
const benchRequirements = "pydantic==2.10.6\nrequests==2.32.3\nPyYAML==6.0.2\n"

const benchHandler = `import pydantic, requests, yaml


def handler(event, context):
    return {"ok": True, "line": 0}
`

// BenchmarkFunctionBuild times the edit-build loop of a Python function
// with about 10 MB of dependencies: a one-line change of the handler, then
// `lambdabox build` to an OCI layout (dependencies cached), against
// `podman build` of the equivalent Dockerfile on the same lambdabox base,
// its layer cache warm, wheels fetched beforehand (a build cannot reach
// PyPI), in the same run. It reports lambdabox-s, podman-s and
// x-faster (podman-s / lambdabox-s; target ≥ 10, and lambdabox-s < 0.5).
func BenchmarkFunctionBuild(b *testing.B) {
	for _, tool := range []string{"podman", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s (bash .ci/run installs it)", tool)
		}
	}
	bin := lambdaboxBinary(b)
	cache := filepath.Join(tmpDir, "build-cache")
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "lambdabox-tests")
	}
	dir := b.TempDir()
	fn := filepath.Join(dir, "fn")
	os.MkdirAll(fn, 0o755)
	os.WriteFile(filepath.Join(fn, "requirements.txt"), []byte(benchRequirements), 0o644)
	os.WriteFile(filepath.Join(fn, "lambda_function.py"), []byte(benchHandler), 0o644)
	out := filepath.Join(dir, "fn.oci")
	lambdabox := func(args ...string) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, bin, append([]string{"build", fn, "--cache", cache}, args...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("lambdabox build: %v\n%s", err, msg)
		}
		return time.Since(start)
	}
	// The base, loaded into podman for the Dockerfile.
	suffix := fmt.Sprintf("bench%d", os.Getpid())
	base := "localhost/lambdabox-bench/python3.11:" + suffix
	img := "localhost/lambdabox-bench/fn:" + suffix
	lambdabox("--output", "oci:"+out)
	// lambdabox's own base, alone, loaded into podman as the FROM.
	baseDir := filepath.Join(dir, "base")
	os.MkdirAll(baseDir, 0o755)
	cmd := exec.Command(bin, "base", "build", "python3.11", "--cache", cache, "--lock", filepath.Join(cache, "bases", "python3.11-amd64.lock.json"), "-t", base, "--load", "--engine", "podman", "--output", "oci:"+filepath.Join(baseDir, "base.oci"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("base build: %v\n%s", err, msg)
	}
	defer exec.Command("podman", "rmi", "-f", img, base).Run()
	ctxDir := filepath.Join(dir, "podman")
	os.MkdirAll(ctxDir, 0o755)
	os.WriteFile(filepath.Join(ctxDir, "requirements.txt"), []byte(benchRequirements), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "lambda_function.py"), []byte(benchHandler), 0o644)
	dl := exec.Command("python3", "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
		"--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64", "--implementation", "cp", "--python-version", "3.11",
		"-d", filepath.Join(ctxDir, "wheels"), "-r", filepath.Join(ctxDir, "requirements.txt"))
	if msg, err := dl.CombinedOutput(); err != nil {
		b.Fatalf("pip download: %v\n%s", err, msg)
	}
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+base+"\n"+
		"COPY requirements.txt wheels/ /tmp/wheels/\n"+
		"RUN pip3 install --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt --target /var/task\n"+
		"COPY lambda_function.py ${LAMBDA_TASK_ROOT}/\n"+
		`CMD ["lambda_function.handler"]`+"\n"), 0o644)
	podman := func() time.Duration {
		start := time.Now()
		cmd := exec.Command("podman", "--runtime", "runc", "build", "-q", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"--network", "none", "-t", img, ctxDir)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("podman build: %v\n%s", err, msg)
		}
		return time.Since(start)
	}
	podman() // warms its layer cache
	edit := func(i int) {
		src := strings.Replace(benchHandler, `"line": 0`, fmt.Sprintf(`"line": %d`, i), 1)
		os.WriteFile(filepath.Join(fn, "lambda_function.py"), []byte(src), 0o644)
		os.WriteFile(filepath.Join(ctxDir, "lambda_function.py"), []byte(src), 0o644)
	}
	var lb, pm time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		edit(i + 1)
		lb += lambdabox("--output", "oci:"+out)
		pm += podman()
	}
	b.StopTimer()
	lbs, pms := lb.Seconds()/float64(b.N), pm.Seconds()/float64(b.N)
	b.ReportMetric(lbs, "lambdabox-s")
	b.ReportMetric(pms, "podman-s")
	b.ReportMetric(pms/lbs, "x-faster")
	b.ReportMetric(imageMiB(b, out), "MiB")
}

// BenchmarkFunctionBuildCold builds each example function with an empty
// function cache (base layers and downloads shared, so the base is not
// rebuilt from Debian; BenchmarkBaseImage's first-s is that) and reports
// the build time and the size of the code layer.
func BenchmarkFunctionBuildCold(b *testing.B) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		b.Skip("needs dpkg-deb (bash .ci/run installs it)")
	}
	bin := lambdaboxBinary(b)
	shared := filepath.Join(tmpDir, "build-cache")
	if d, err := os.UserCacheDir(); err == nil {
		shared = filepath.Join(d, "lambdabox-tests")
	}
	examples, _ := filepath.Abs("../examples")
	for _, ex := range []string{"hello-python", "hello-node", "hello-go"} {
		b.Run(ex, func(b *testing.B) {
			if ex == "hello-node" && os.Geteuid() != 0 {
				b.Skip("the nodejs base builds its RIC in a chroot: run as root")
			}
			var took time.Duration
			var code int64
			for i := 0; i < b.N; i++ {
				cache := b.TempDir()
				for _, d := range []string{"layers", "apt-amd64", "emulator", "bases"} {
					os.MkdirAll(filepath.Join(shared, d), 0o755)
					os.Symlink(filepath.Join(shared, d), filepath.Join(cache, d))
				}
				start := time.Now()
				out, err := exec.Command(bin, "build", filepath.Join(examples, ex), "--cache", cache, "--json", "--output", "oci:"+filepath.Join(b.TempDir(), "fn.oci")).Output()
				if err != nil {
					b.Fatalf("lambdabox build %s: %v\n%s", ex, err, out)
				}
				took += time.Since(start)
				var res struct {
					Layers []struct {
						Size int64
						Role string
					}
				}
				json.Unmarshal(out, &res)
				for _, l := range res.Layers {
					if l.Role == "code" {
						code = l.Size
					}
				}
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "cold-s")
			b.ReportMetric(float64(code)/1024, "code-KiB")
		})
	}
}
