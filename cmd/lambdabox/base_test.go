package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/base"
	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// TestBaseBuildErrors: bad input gives a clear error and leaves nothing at
// the output path. It needs no network.
func TestBaseBuildErrors(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) error {
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"base", "build"}, args...))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return cmd.ExecuteContext(context.Background())
	}
	emu := filepath.Join(t.TempDir(), "emu")
	os.WriteFile(emu, nil, 0o755)
	bookwormLock := filepath.Join(t.TempDir(), "provided.lock.json")
	os.WriteFile(bookwormLock, []byte(`{"runtime":"provided","arch":"amd64","suite":"bookworm","layers":{}}`), 0o644)
	badLock := filepath.Join(t.TempDir(), "bad.lock.json")
	os.WriteFile(badLock, []byte(`{"runtime":`), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"cobol85"}, "unknown runtime"},
		{[]string{"provided", "--lock", bookwormLock, "--emulator", emu, "--output", "oci:" + filepath.Join(dir, "x.oci")},
			"pins packages of Debian bookworm, but recipe provided is built from trixie"},
		{[]string{"provided", "--lock", badLock, "--emulator", emu, "--output", "oci:" + filepath.Join(dir, "x.oci")}, "reading lock file"},
		{[]string{"provided", "--output", "zip:x"}, "want oci:DIR or tar:FILE"},
		{[]string{"provided", "--platform", "windows/amd64"}, "want linux/amd64 or linux/arm64"},
		{[]string{"provided", "--output", "oci:" + filepath.Join(dir, "missing", "x.oci")}, "does not exist"},
	}
	for _, tt := range tests {
		err := run(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("base build %q: err = %v, want %q", tt.args, err, tt.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed builds left %d files in %s", len(ents), dir)
	}
	// base update: the same checks before anything is fetched.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cobol85", "--check"}, "unknown runtime"},
		{[]string{"provided", "--check", "--lock", bookwormLock}, "pins packages of Debian bookworm"},
		{[]string{"provided", "--platform", "linux/s390x"}, "want linux/amd64 or linux/arm64"},
	} {
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"base", "update"}, tt.args...))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("base update %q: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestBaseLs: each runtime with its Debian suite (testing marked), language,
// RIC version, Lambda runtime and deprecation date; runtimes past it say so
// and name their successor.
func TestBaseLs(t *testing.T) {
	var out bytes.Buffer
	if err := writeBaseList(&out, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), false); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for runtime, want := range map[string]string{
		"python3.13": "python3.13 trixie (13) Python 3.13 4.2.2 python3.13 2029-06-30",
		"python3.14": "python3.14 forky (testing) Python 3.14 4.2.2 python3.14 2029-06-30",
		"nodejs24":   "nodejs24 forky (testing) Node.js 24 4.0.2 nodejs24.x 2028-04-30",
		"java21":     "java21 trixie (13) Java 21 2.10.1 java21 2029-06-30",
		"java25":     "java25 trixie (13) Java 25 2.10.1 java25 2029-06-30",
		"provided":   "provided trixie (13) none (OS only) - provided.al2023 2029-06-30",
		"dotnet10":   "dotnet10 trixie (13) .NET 10 --input dotnet10 2028-11-14",
		"nodejs":     "nodejs bookworm (12) Node.js 18 3.3.0 nodejs18.x 2025-09-01 (deprecated: use nodejs24)",
		"python3.11": "python3.11 bookworm (12) Python 3.11 4.2.2 python3.11 2026-06-30 (deprecated: use python3.13)",
	} {
		if got := strings.Join(rows[runtime], " "); got != want {
			t.Errorf("%s:\n got %s\nwant %s", runtime, got, want)
		}
	}
	if !strings.Contains(out.String(), "Debian testing (forky)") {
		t.Errorf("no note on Debian testing:\n%s", out.String())
	}
}

func TestWarnDeprecated(t *testing.T) {
	r, err := recipe.Load("nodejs")
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	warnDeprecated(&w, r, time.Date(2025, 8, 31, 0, 0, 0, 0, time.UTC))
	if w.Len() != 0 {
		t.Fatalf("warned before the date: %s", w.String())
	}
	warnDeprecated(&w, r, time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC))
	if got := w.String(); got != "warning: AWS Lambda deprecated nodejs18.x on 2025-09-01; use nodejs24 (lambdabox base build nodejs24)\n" {
		t.Fatalf("warning %q", got)
	}
}

// TestEntrypointExit142 runs the binary under the name /lambda-entrypoint.sh
// has in images.
func TestEntrypointExit142(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "lambdabox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	link := filepath.Join(dir, "lambda-entrypoint.sh")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"a", "b"}} {
		cmd := exec.Command(link, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 142 {
			t.Fatalf("args %q: %v, want exit 142", args, err)
		}
		if got := stderr.String(); got != "entrypoint requires the handler name to be the first argument\n" {
			t.Fatalf("stderr %q", got)
		}
	}
}

// baseImages is what the base image tests share: the layer and download
// cache, a scratch directory and a suffix that keeps image names apart.
type baseImages struct {
	cache, tmp, suffix string
}

// build runs `lambdabox base build` in-process and returns the digest and
// the build's log (stderr).
func (b *baseImages) build(t *testing.T, runtime string, extra ...string) (string, string) {
	t.Helper()
	args := append([]string{"base", "build", runtime, "--cache", b.cache, "--lock", filepath.Join(b.tmp, runtime+".lock.json")}, extra...)
	out, log, err := b.lambdabox(args...)
	if err != nil {
		t.Fatalf("lambdabox %s: %v\n%s", strings.Join(args, " "), err, log)
	}
	t.Logf("%s", strings.TrimSpace(log))
	return strings.TrimSpace(out), log
}

// lambdabox runs a lambdabox command in-process.
func (b *baseImages) lambdabox(args ...string) (stdout, stderr string, err error) {
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// load builds runtime into Podman as localhost/lambdabox-test/<runtime>
// and removes it when the test ends.
func (b *baseImages) load(t *testing.T, runtime string, extra ...string) (string, string) {
	t.Helper()
	ref := "localhost/lambdabox-test/" + runtime + ":" + b.suffix
	digest, _ := b.build(t, runtime, append([]string{"-t", ref, "--load", "--engine", "podman"}, extra...)...)
	t.Cleanup(func() { podman(t, "rmi", "-f", ref) })
	return ref, digest
}

// freshCache is a cache with no layers that shares the downloads (apt
// state, .debs) and the emulator of b's: a build there rebuilds every layer.
func (b *baseImages) freshCache(t *testing.T) string {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "cache")
	os.MkdirAll(fresh, 0o755)
	ents, _ := os.ReadDir(b.cache)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "apt-") || e.Name() == "emulator" || e.Name() == "npm" {
			os.Symlink(filepath.Join(b.cache, e.Name()), filepath.Join(fresh, e.Name()))
		}
	}
	return fresh
}

// TestBaseImages builds every base image (the trixie and forky ones of
// issue 11 and the bookworm ones before them), loads each into Podman and
// serves a hello function in its language from it, checking the body and
// the REPORT line (dotnet8 and dotnet10 with a stand-in runtime). python3.13
// is also built twice (same digest), patched with base update from a lock
// that pins an older package, and, once the emulator serves Managed
// Instances, run with AWS_LAMBDA_MAX_CONCURRENCY=4. The images build in
// parallel (up to -parallel, GOMAXPROCS by default), the Node.js ones first:
// their RIC addon compiles in a chroot for minutes. .ci/images.sh installs
// Podman and runc.
func TestBaseImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "runc", "bash .ci/images.sh")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	requirePython(t, "pip")
	b := &baseImages{cache: filepath.Join(t.TempDir(), "cache"), tmp: t.TempDir(), suffix: fmt.Sprintf("it%d", os.Getpid())}
	if d, err := os.UserCacheDir(); err == nil {
		b.cache = filepath.Join(d, "lambdabox-tests") // keeps downloads between runs
	}
	start := time.Now()
	t.Cleanup(func() { t.Logf("all base images: %s", time.Since(start).Round(time.Second)) })
	nodejs := func(runtime, major string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			// aws-lambda-ric's native addon is built in a chroot of Debian
			// packages against the image's Node, not the host's.
			if os.Geteuid() != 0 {
				t.Skip("the Node.js recipes build their RIC in a chroot: run as root")
			}
			requireTool(t, "npm", "npm, any version (e.g. from NodeSource nodejs)")
			base, _ := b.load(t, runtime)
			img := "localhost/lambdabox-test/nodefn-" + runtime + ":" + b.suffix
			podmanBuild(t, testdataDir(t, "baseimages/nodefn"), "Containerfile", base, img)
			serveAndInvoke(t, img, nil, `{"name":"node"}`,
				`{"message":"Hello, node!","node":"`+major+`","sha":"fa12280c","intl":"1.234,5","requestId":true}`)
		}
	}
	python := func(runtime string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			base, _ := b.load(t, runtime)
			img := "localhost/lambdabox-test/pyfn-" + runtime + ":" + b.suffix
			podmanBuild(t, testdataDir(t, "baseimages/pyfn"), "Containerfile", base, img)
			serveAndInvoke(t, img, nil, `{"name":"python"}`, `"message": "Hello, python!", "tls": "OpenSSL"`)
			checkBytecode(t, base, runtime)
		}
	}
	java := func(runtime string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			requireTool(t, "mvn", "apt-get install -y maven")
			javac := requireTool(t, "javac", "apt-get install -y openjdk-17-jdk-headless")
			base, _ := b.load(t, runtime)
			// A handler class compiled here for Java 17, which every image
			// runs; it also checks the trust store.
			ctx := t.TempDir()
			copyDir(t, testdataDir(t, "baseimages/javafn"), ctx)
			if out, err := exec.Command(javac, "--release", "17", "-d", filepath.Join(ctx, "classes"), filepath.Join(ctx, "example", "Hello.java")).CombinedOutput(); err != nil {
				t.Fatalf("javac: %v\n%s", err, out)
			}
			img := "localhost/lambdabox-test/javafn-" + runtime + ":" + b.suffix
			podmanBuild(t, ctx, "Containerfile", base, img)
			serveAndInvoke(t, img, nil, `{"name":"java"}`, `"message":"Hello, java!","cacerts":"ok"`)
		}
	}
	t.Run("images", func(t *testing.T) {
		t.Run("nodejs24", nodejs("nodejs24", "24"))
		t.Run("nodejs", nodejs("nodejs", "18"))
		t.Run("python3.13", func(t *testing.T) { t.Parallel(); testPython313(t, b) })
		t.Run("python3.14", python("python3.14"))
		t.Run("python3.11", func(t *testing.T) { t.Parallel(); testPython311(t, b) })
		t.Run("java21", java("java21"))
		t.Run("java25", java("java25"))
		t.Run("java17", java("java17"))
		t.Run("provided", func(t *testing.T) { t.Parallel(); testProvided(t, b) })
		t.Run("dotnet10", func(t *testing.T) { t.Parallel(); testDotnet(t, b, "dotnet10", "10.0.1") })
		t.Run("dotnet8", func(t *testing.T) { t.Parallel(); testDotnet(t, b, "dotnet8", "8.0.11") })
	})
}

// checkBytecode: the standard library and the RIC come compiled, since a
// read-only image could never cache their bytecode at run time.
func checkBytecode(t *testing.T, base, runtime string) {
	t.Helper()
	check := `import sys, importlib.util as u, os; sys.path.insert(0, "/var/runtime")
import json.decoder, awslambdaric.bootstrap
for m in (json.decoder, awslambdaric.bootstrap):
    pyc = u.cache_from_source(m.__file__)
    print(m.__name__, os.path.exists(pyc) and open(pyc, "rb").read(8)[4:] == b"\1\0\0\0")`
	if res := podmanRun(t, "run", "--rm", "--entrypoint", "/usr/bin/"+runtime, base, "-c", check); res.stdout != "json.decoder True\nawslambdaric.bootstrap True\n" {
		t.Fatalf("bytecode: exit %d, stdout %q, stderr %s", res.code, res.stdout, res.stderr)
	}
}

func testProvided(t *testing.T, b *baseImages) {
	base := "localhost/lambdabox-test/provided:" + b.suffix
	digest, _ := b.build(t, "provided", "-t", base, "--load", "--engine", "podman", "--output", "oci:"+filepath.Join(b.tmp, "provided.oci"))
	t.Cleanup(func() { podman(t, "rmi", "-f", base) })
	again, log := b.build(t, "provided", "-t", base, "--output", "tar:"+filepath.Join(b.tmp, "provided.tar"))
	if again != digest {
		t.Fatalf("rebuild digest %s, first %s", again, digest)
	}
	if strings.Contains(log, "layer: built") {
		t.Errorf("an unchanged rebuild rebuilt layers:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(b.tmp, "provided.tar.spdx.json")); err != nil {
		t.Errorf("no SBOM: %v", err)
	}
	if sbom, _ := os.ReadFile(filepath.Join(b.tmp, "provided.tar.spdx.json")); !bytes.Contains(sbom, []byte("distro=trixie")) {
		t.Errorf("SBOM does not name trixie")
	}
	if lock, _ := os.ReadFile(filepath.Join(b.tmp, "provided.lock.json")); !bytes.Contains(lock, []byte(`"suite": "trixie"`)) {
		t.Errorf("lock does not record the suite:\n%.300s", lock)
	}

	// The entrypoint with zero or two arguments.
	for _, args := range [][]string{nil, {"a", "b"}} {
		res := podmanRun(t, append([]string{"run", "--rm", base}, args...)...)
		if res.code != 142 || !strings.Contains(res.stderr, "entrypoint requires the handler name to be the first argument") {
			t.Fatalf("entrypoint %q: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}

	fn := t.TempDir()
	gobuild := exec.Command("go", "build", "-o", filepath.Join(fn, "bootstrap"), "../../examples/hello-go")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(fn, "Containerfile"), []byte("FROM "+base+"\nCOPY bootstrap /var/task/bootstrap\n"), 0o644)
	img := "localhost/lambdabox-test/gofn:" + b.suffix
	podman(t, "build", "-q", "-t", img, fn)
	t.Cleanup(func() { podman(t, "rmi", "-f", img) })
	serveAndInvoke(t, img, []string{"hello.handler"}, `{"name":"provided"}`, `"message":"Hello, provided!"`)
}

func testPython311(t *testing.T, b *baseImages) {
	base, _ := b.load(t, "python3.11")
	checkBytecode(t, base, "python3.11")
	img := "localhost/lambdabox-test/pyfn:" + b.suffix
	podmanBuild(t, testdataDir(t, "baseimages/pyfn"), "Containerfile", base, img)
	serveAndInvoke(t, img, nil, `{"name":"python"}`, `"message": "Hello, python!", "tls": "OpenSSL"`)

	// Seed 004: COPY, pip3 install -r requirements.txt --target, CMD.
	seed := "localhost/lambdabox-test/seed004:" + b.suffix
	ctx := t.TempDir()
	copyDir(t, testdataDir(t, "baseimages/seed004"), ctx)
	writeWheel(t, filepath.Join(ctx, "wheels"))
	podmanBuild(t, ctx, "Dockerfile", base, seed)
	serveAndInvoke(t, seed, nil, `{"name":"seed"}`, `{"body": "HELLO, SEED!"}`)
}

// testPython313 checks the python3.13 image: a hello function over HTTP and
// under a Runtime API on the host, reproducibility, AWS_EXECUTION_ENV,
// patching with base update, and Managed Instances' concurrency.
func testPython313(t *testing.T, b *baseImages) {
	base, digest := b.load(t, "python3.13")
	checkBytecode(t, base, "python3.13")
	img := "localhost/lambdabox-test/pyfn-python3.13:" + b.suffix
	podmanBuild(t, testdataDir(t, "baseimages/pyfn"), "Containerfile", base, img)
	serveAndInvoke(t, img, nil, `{"name":"python"}`, `"message": "Hello, python!", "tls": "OpenSSL"`)
	// The same image under a Runtime API served by lambdabox on the host:
	// the entrypoint must exec /var/runtime/bootstrap directly.
	serveOnHost(t, img, "hostapi-"+b.suffix, `{"name":"host"}`, `"message": "Hello, host!"`, "hello from python")
	if res := podmanRun(t, "run", "--rm", "--entrypoint", "/usr/bin/python3.13", base, "-c", "import os; print(os.environ['AWS_EXECUTION_ENV'])"); res.stdout != "AWS_Lambda_python3.13\n" {
		t.Errorf("AWS_EXECUTION_ENV: %q %s", res.stdout, res.stderr)
	}

	t.Run("reproducible", func(t *testing.T) {
		// Every layer built again from the same lock file in an empty layer
		// cache gives the same image, bytecode included.
		again, log := b.build(t, "python3.13", "--cache", b.freshCache(t), "--output", "oci:"+filepath.Join(t.TempDir(), "again.oci"))
		if again != digest {
			t.Fatalf("rebuild from an empty layer cache: digest %s, first %s", again, digest)
		}
		if strings.Contains(log, "layer: cached") {
			t.Fatalf("the rebuild used cached layers:\n%s", log)
		}
	})
	t.Run("update", func(t *testing.T) { testBaseUpdate(t, b, digest) })
	t.Run("max-concurrency", func(t *testing.T) { testMaxConcurrency(t, b, base) })
}

// testBaseUpdate writes a lock that pins an older version of one package
// of the python3.13 image (one the archive still serves: the stable
// suite's, before a security or point-release update), builds it, and
// checks that base update --check reports exactly that package and that
// base update rebuilds only its layer, giving back the current image.
func testBaseUpdate(t *testing.T, b *baseImages, digest string) {
	lock, err := base.ReadLock(filepath.Join(b.tmp, "python3.13.lock.json"))
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	a, err := debian.New(debian.Config{Dir: filepath.Join(b.cache, "apt-trixie-amd64"), Suite: "trixie"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var layer, pkg, older, current string
	for _, name := range []string{"os", "runtime", "ric"} {
		for i, p := range lock.Layers[name].Debs {
			vs, err := a.Versions(ctx, p.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				if v != p.Version && layer == "" {
					layer, pkg, older, current = name, p.Name, v, p.Version
					lock.Layers[name].Debs[i] = debian.Package{Name: p.Name, Version: v, Arch: p.Arch}
				}
			}
		}
	}
	if layer == "" {
		t.Skip("no package of the python3.13 image has an older version in trixie today: nothing to patch")
	}
	t.Logf("pinning %s %s (current %s) in the %s layer", pkg, older, current, layer)
	old := filepath.Join(t.TempDir(), "python3.13.lock.json")
	if err := lock.Write(old); err != nil {
		t.Fatal(err)
	}
	cache := b.freshCache(t)
	args := []string{"--cache", cache, "--lock", old, "--output", "oci:" + filepath.Join(t.TempDir(), "p.oci")}
	stdout, stderr, err := b.lambdabox(append([]string{"base", "build", "python3.13"}, args...)...)
	if err != nil {
		t.Fatalf("build from the old lock: %v\n%s", err, stderr)
	}
	before := strings.TrimSpace(stdout)
	beforeLayers := layerDigests(t, cache, before)

	data, _ := os.ReadFile(old)
	stdout, stderr, err = b.lambdabox(append([]string{"base", "update", "python3.13", "--check"}, args...)...)
	if !errors.Is(err, base.ErrUpdatesAvailable) {
		t.Fatalf("update --check: err = %v, want updates available\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], pkg+" "+older+" → "+current) || !strings.HasPrefix(lines[0], layer+" ") {
		t.Fatalf("update --check printed:\n%s\nwant one line: %s %s %s → %s", stdout, layer, pkg, older, current)
	}
	if after, _ := os.ReadFile(old); !bytes.Equal(after, data) {
		t.Fatal("update --check changed the lock file")
	}

	stdout, stderr, err = b.lambdabox(append([]string{"base", "update", "python3.13"}, args...)...)
	if err != nil {
		t.Fatalf("update: %v\n%s", err, stderr)
	}
	t.Logf("base update:\n%s%s", stdout, stderr)
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	after := lines[len(lines)-1]
	if after != digest {
		t.Errorf("updated image %s, want the current image %s", after, digest)
	}
	if !strings.Contains(stderr, layer+" layer: built") {
		t.Errorf("the %s layer was not rebuilt", layer)
	}
	afterLayers := layerDigests(t, cache, after)
	names := []string{"os", "runtime", "ric", "entrypoint"}
	for i := range beforeLayers {
		if changed := beforeLayers[i] != afterLayers[i]; changed != (names[i] == layer) {
			t.Errorf("%s layer: before %s, after %s (only %s should change)", names[i], beforeLayers[i], afterLayers[i], layer)
		}
		if names[i] != layer && strings.Contains(stderr, names[i]+" layer: built") {
			t.Errorf("base update rebuilt the unchanged %s layer", names[i])
		}
	}
	if _, _, err := b.lambdabox(append([]string{"base", "update", "python3.13", "--check"}, args...)...); err != nil {
		t.Errorf("update --check after update: %v", err)
	}
}

// layerDigests reads the layer digests of the image written to the OCI
// layout under the test's output: base build prints the manifest digest,
// whose blob is in the layout's blobs.
func layerDigests(t *testing.T, cache, digest string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(filepath.Dir(filepath.Dir(cache)), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) == strings.TrimPrefix(digest, "sha256:") && found == nil {
			data, _ := os.ReadFile(p)
			var m struct{ Layers []struct{ Digest string } }
			if json.Unmarshal(data, &m) == nil {
				for _, l := range m.Layers {
					found = append(found, l.Digest)
				}
			}
		}
		return nil
	})
	if len(found) != 4 {
		t.Fatalf("manifest %s: %d layers", digest, len(found))
	}
	return found
}

// testMaxConcurrency runs the python3.13 image with
// AWS_LAMBDA_MAX_CONCURRENCY=4: awslambdaric (in its multi-concurrency
// mode, since the image sets AWS_EXECUTION_ENV) must serve 4 invokes at
// once in the one environment. Each invoke waits, up to 20 s, until it
// sees all 4 in flight. It needs an emulator that serves Lambda Managed
// Instances' concurrent invokes; until one does, it waits.
func testMaxConcurrency(t *testing.T, b *baseImages, base string) {
	if !emulatorReads(t, "AWS_LAMBDA_MAX_CONCURRENCY") {
		t.Skip("waiting for the Managed Instances issue: no emulator code reads AWS_LAMBDA_MAX_CONCURRENCY yet, so the emulator serves one invoke at a time per environment")
	}
	img := "localhost/lambdabox-test/pyfn-mi:" + b.suffix
	podmanBuild(t, testdataDir(t, "baseimages/pyfn"), "Containerfile", base, img)
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	id := podman(t, "run", "-d", "-e", "AWS_LAMBDA_MAX_CONCURRENCY=4", "-p", "127.0.0.1:"+port+":8080", img, "app.together")
	t.Cleanup(func() { podman(t, "rm", "-f", id) })
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	results := make(chan string, 4)
	for i := 0; i < 4; i++ {
		go func() {
			var body string
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				resp, err := http.Post(url, "application/json", strings.NewReader(`{"want":4}`))
				if err != nil {
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = fmt.Sprintf("%d %s", resp.StatusCode, data)
				break
			}
			results <- body
		}()
	}
	for i := 0; i < 4; i++ {
		if got := <-results; !strings.Contains(got, `"together": 4`) {
			t.Errorf("invoke: %s, want 4 invokes in flight together\nlogs:\n%s", got, podmanRun(t, "logs", id).stderr)
		}
	}
}

// emulatorReads reports whether the emulator's non-test sources mention s.
func emulatorReads(t *testing.T, s string) bool {
	t.Helper()
	root, _ := filepath.Abs("../..")
	found := false
	for _, dir := range []string{"internal", "cmd"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || found || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(s)) {
				found = true
			}
			return nil
		})
	}
	return found
}

// testDotnet builds a .NET image with stand-ins for the user's inputs: a
// .NET runtime whose dotnet prints its arguments and environment and then
// runs the aws-lambda-go hello function (so the image serves invokes over
// HTTP as a .NET function would), and RuntimeSupport.
func testDotnet(t *testing.T, b *baseImages, runtime, version string) {
	rt, rs := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(rt, "shared", "Microsoft.NETCore.App", version), 0o755)
	os.WriteFile(filepath.Join(rt, "dotnet"), []byte("#!/bin/sh\necho \"dotnet $*\"\n"+
		"echo \"AWS_EXECUTION_ENV=$AWS_EXECUTION_ENV DOTNET_ROOT=$DOTNET_ROOT DOTNET_VERSION=$DOTNET_VERSION _HANDLER=$_HANDLER\"\n"+
		"[ \"$AWS_LAMBDA_RUNTIME_API\" = 127.0.0.1:9 ] && exit 0\nexec /var/lang/bin/hello\n"), 0o755)
	gobuild := exec.Command("go", "build", "-o", filepath.Join(rt, "hello"), "../../examples/hello-go")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(rs, "Amazon.Lambda.RuntimeSupport.dll"), []byte("stand-in"), 0o644)
	base, _ := b.load(t, runtime, "--input", "dotnet="+rt, "--input", "runtimesupport="+rs)

	const handler = "Fn::Fn.Function::Handler"
	direct := []string{"run", "--rm", "-e", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9"}
	if res := podmanRun(t, append(direct, base, handler)...); res.code != 102 || !strings.Contains(res.stderr, "missing or empty") {
		t.Fatalf("empty /var/task: exit %d, stderr %q; want 102", res.code, res.stderr)
	}
	res := podmanRun(t, append(direct, "--entrypoint", "/bin/sh", base, "-c",
		`echo {} > Fn.deps.json && echo {} > Fn.runtimeconfig.json && exec /lambda-entrypoint.sh "$0"`, handler)...)
	want := "dotnet exec --depsfile /var/task/Fn.deps.json --runtimeconfig /var/task/Fn.runtimeconfig.json /var/runtime/Amazon.Lambda.RuntimeSupport.dll " + handler + "\n" +
		"AWS_EXECUTION_ENV=AWS_Lambda_" + runtime + " DOTNET_ROOT=/var/lang/bin DOTNET_VERSION=" + version + " _HANDLER=" + handler + "\n"
	if res.code != 0 || res.stdout != want {
		t.Fatalf("class library: exit %d\nstdout %q\nwant   %q\nstderr %s", res.code, res.stdout, want, res.stderr)
	}

	// A class-library function image, invoked over HTTP through the
	// emulator, the bootstrap and the stand-in runtime.
	fn := t.TempDir()
	os.WriteFile(filepath.Join(fn, "Fn.deps.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(fn, "Fn.runtimeconfig.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(fn, "Containerfile"), []byte("FROM BASE\nCOPY Fn.deps.json Fn.runtimeconfig.json /var/task/\nCMD [\""+handler+"\"]\n"), 0o644)
	img := "localhost/lambdabox-test/dotnetfn-" + runtime + ":" + b.suffix
	podmanBuild(t, fn, "Containerfile", base, img)
	serveAndInvoke(t, img, nil, `{"name":"dotnet"}`, `"message":"Hello, dotnet!"`)
}

// serveOnHost runs img under lambdabox rie on the host: the runtime is
// podman running the image with --network host and AWS_LAMBDA_RUNTIME_API
// pointing at the host emulator. It invokes once and checks the body, the
// function's log line and the REPORT line.
func serveOnHost(t *testing.T, img, name, payload, want, logLine string) {
	t.Helper()
	t.Cleanup(func() { podmanRun(t, "rm", "-f", "--ignore", name) }) // after the emulator stops
	run := strings.Join(append([]string{"exec", "podman"}, podmanFlags...), " ") +
		" run --rm --name " + name + " --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024" +
		` -e AWS_LAMBDA_RUNTIME_API="$AWS_LAMBDA_RUNTIME_API" ` + img
	e := startRIE(t, rieOpts{flags: []string{"--timeout", "60s"}, command: []string{"/bin/sh", "-c", run}})
	resp, body := e.invoke(t, "function", payload)
	if resp.StatusCode != 200 || !strings.Contains(body, want) {
		t.Fatalf("invoke: %d %s, want %s\nstdout:\n%s\nstderr:\n%s", resp.StatusCode, body, want, e.Stdout, e.Stderr)
	}
	waitFor(t, "the log and REPORT lines", func() bool {
		out := e.Stdout.String() + e.Stderr.String()
		return strings.Contains(out, logLine) && strings.Contains(out, "REPORT RequestId: ")
	})
}

// Every podman command runs with runc and explicit ulimits: the defaults
// (crun, the host's limits) fail in this sandbox.
var podmanFlags = []string{"--runtime", "runc"}

type podmanResult struct {
	code           int
	stdout, stderr string
}

func podmanRun(t *testing.T, args ...string) podmanResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if args[0] == "run" || args[0] == "build" {
		args = append([]string{args[0], "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}, args[1:]...)
	}
	if args[0] == "run" {
		args = append([]string{"run", "--label", "lambdabox-test=base-images"}, args[1:]...)
	}
	cmd := exec.CommandContext(ctx, "podman", append(podmanFlags, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := podmanResult{stdout: stdout.String(), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		res.code = cmd.ProcessState.ExitCode()
	} else if err != nil {
		t.Fatalf("podman %q: %v", args, err)
	}
	return res
}

func podman(t *testing.T, args ...string) string {
	t.Helper()
	res := podmanRun(t, args...)
	if res.code != 0 {
		t.Fatalf("podman %s: exit %d\n%s", strings.Join(args, " "), res.code, res.stderr)
	}
	return strings.TrimSpace(res.stdout)
}

func podmanBuild(t *testing.T, dir, file, base, img string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.TempDir()
	copyDir(t, dir, ctx)
	os.WriteFile(filepath.Join(ctx, file), bytes.Replace(src, []byte("FROM BASE"), []byte("FROM "+base), 1), 0o644)
	podman(t, "build", "-q", "-f", filepath.Join(ctx, file), "-t", img, ctx)
	t.Cleanup(func() { podman(t, "rmi", "-f", img) })
}

// serveAndInvoke runs img with -p 127.0.0.1:PORT:8080, invokes it once and
// checks the body and the REPORT line.
func serveAndInvoke(t *testing.T, img string, args []string, payload, want string) {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	id := podman(t, append([]string{"run", "-d", "-p", "127.0.0.1:" + port + ":8080", img}, args...)...)
	t.Cleanup(func() { podman(t, "rm", "-f", id) })
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post(url, "application/json", strings.NewReader(payload))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoking %s: %v\nlogs:\n%s", img, err, podmanRun(t, "logs", id).stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, want) {
		t.Fatalf("body %s, want it to contain %s", body, want)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		logs := podmanRun(t, "logs", id)
		if strings.Contains(logs.stdout+logs.stderr, "REPORT RequestId: ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no REPORT line in logs:\n%s%s", logs.stdout, logs.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeWheel writes greeting-1.0-py3-none-any.whl, a pure-Python wheel,
// so that the function image installs from local files only.
func writeWheel(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	files := [][2]string{
		{"greeting/__init__.py", "def greet(name):\n    return 'Hello, ' + name + '!'\n"},
		{"greeting-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: greeting\nVersion: 1.0\n"},
		{"greeting-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: lambdabox-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	record.WriteString("greeting-1.0.dist-info/RECORD,,\n")
	files = append(files, [2]string{"greeting-1.0.dist-info/RECORD", record.String()})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, f[1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "greeting-1.0-py3-none-any.whl"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
