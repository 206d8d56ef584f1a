package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"cobol85"}, "unknown runtime"},
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

// TestBaseImages builds the provided, python3.11, java17, dotnet8 and nodejs
// base images, loads them into Podman and serves a hello function from each
// (dotnet8 with a stand-in runtime), plus the seed 004 sample built with
// podman build and the Python image under a Runtime API on the host. It takes a few minutes on a cold cache;
// .ci/images.sh installs Podman and runc.
func TestBaseImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "runc", "bash .ci/images.sh")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	requirePython(t, "pip")
	cache := filepath.Join(t.TempDir(), "cache")
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "lambdabox-tests") // keeps downloads between runs
	}
	tmp := t.TempDir()
	suffix := fmt.Sprintf("it%d", os.Getpid())

	build := func(t *testing.T, runtime string, extra ...string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		cmd := newRootCmd()
		var out, errb bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		args := append([]string{"base", "build", runtime, "--cache", cache, "--lock", filepath.Join(tmp, runtime+".lock.json")}, extra...)
		cmd.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("lambdabox %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		t.Logf("%s", strings.TrimSpace(errb.String()))
		return strings.TrimSpace(out.String()), time.Since(start)
	}

	t.Run("provided", func(t *testing.T) {
		base := "localhost/lambdabox-test/provided:" + suffix
		digest, _ := build(t, "provided", "-t", base, "--load", "--engine", "podman", "--output", "oci:"+filepath.Join(tmp, "provided.oci"))
		t.Cleanup(func() { podman(t, "rmi", "-f", base) })
		again, took := build(t, "provided", "-t", base, "--output", "tar:"+filepath.Join(tmp, "provided.tar"))
		if again != digest {
			t.Fatalf("rebuild digest %s, first %s", again, digest)
		}
		if took > 5*time.Second {
			t.Errorf("cached rebuild took %s", took)
		}
		if _, err := os.Stat(filepath.Join(tmp, "provided.tar.spdx.json")); err != nil {
			t.Errorf("no SBOM: %v", err)
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
		img := "localhost/lambdabox-test/gofn:" + suffix
		podman(t, "build", "-q", "-t", img, fn)
		t.Cleanup(func() { podman(t, "rmi", "-f", img) })
		serveAndInvoke(t, img, []string{"hello.handler"}, `{"name":"provided"}`, `"message":"Hello, provided!"`)
	})

	t.Run("python3.11", func(t *testing.T) {
		base := "localhost/lambdabox-test/python3.11:" + suffix
		digest, _ := build(t, "python3.11", "-t", base, "--load", "--engine", "podman", "--output", "oci:"+filepath.Join(tmp, "python.oci"))
		t.Cleanup(func() { podman(t, "rmi", "-f", base) })

		// Reproducible: every layer built again from the same lock file in
		// an empty layer cache (sharing only the downloads) gives the same
		// image, bytecode included.
		fresh := filepath.Join(t.TempDir(), "cache")
		os.MkdirAll(fresh, 0o755)
		for _, d := range []string{"apt-amd64", "emulator"} {
			os.Symlink(filepath.Join(cache, d), filepath.Join(fresh, d))
		}
		if again, _ := build(t, "python3.11", "-t", base, "--cache", fresh, "--output", "oci:"+filepath.Join(tmp, "python-again.oci")); again != digest {
			t.Fatalf("rebuild from an empty layer cache: digest %s, first %s", again, digest)
		}

		// The standard library and the RIC come compiled: a read-only image
		// could never cache their bytecode at run time.
		check := `import sys, importlib.util as u, os; sys.path.insert(0, "/var/runtime")
import json.decoder, awslambdaric.bootstrap
for m in (json.decoder, awslambdaric.bootstrap):
    pyc = u.cache_from_source(m.__file__)
    print(m.__name__, os.path.exists(pyc) and open(pyc, "rb").read(8)[4:] == b"\1\0\0\0")`
		if res := podmanRun(t, "run", "--rm", "--entrypoint", "/usr/bin/python3.11", base, "-c", check); res.stdout != "json.decoder True\nawslambdaric.bootstrap True\n" {
			t.Fatalf("bytecode: exit %d, stdout %q, stderr %s", res.code, res.stdout, res.stderr)
		}

		img := "localhost/lambdabox-test/pyfn:" + suffix
		podmanBuild(t, testdataDir(t, "baseimages/pyfn"), "Containerfile", base, img)
		serveAndInvoke(t, img, nil, `{"name":"python"}`, `"message": "Hello, python!", "tls": "OpenSSL"`)

		// Seed 004: COPY, pip3 install -r requirements.txt --target, CMD.
		seed := "localhost/lambdabox-test/seed004:" + suffix
		ctx := t.TempDir()
		copyDir(t, testdataDir(t, "baseimages/seed004"), ctx)
		writeWheel(t, filepath.Join(ctx, "wheels"))
		podmanBuild(t, ctx, "Dockerfile", base, seed)
		serveAndInvoke(t, seed, nil, `{"name":"seed"}`, `{"body": "HELLO, SEED!"}`)

		// The same image under a Runtime API served by lambdabox on the
		// host: the entrypoint must exec /var/runtime/bootstrap directly.
		serveOnHost(t, img, "hostapi-"+suffix, `{"name":"host"}`, `"message": "Hello, host!"`, "hello from python")
	})

	t.Run("java17", func(t *testing.T) {
		requireTool(t, "mvn", "apt-get install -y maven")
		javac := requireTool(t, "javac", "apt-get install -y openjdk-17-jdk-headless")
		base := "localhost/lambdabox-test/java17:" + suffix
		build(t, "java17", "-t", base, "--load", "--engine", "podman")
		t.Cleanup(func() { podman(t, "rmi", "-f", base) })

		// A handler class compiled here; it also checks the trust store.
		src := testdataDir(t, "baseimages/javafn")
		ctx := t.TempDir()
		copyDir(t, src, ctx)
		if out, err := exec.Command(javac, "--release", "17", "-d", filepath.Join(ctx, "classes"), filepath.Join(ctx, "example", "Hello.java")).CombinedOutput(); err != nil {
			t.Fatalf("javac: %v\n%s", err, out)
		}
		img := "localhost/lambdabox-test/javafn:" + suffix
		podmanBuild(t, ctx, "Containerfile", base, img)
		serveAndInvoke(t, img, nil, `{"name":"java"}`, `"message":"Hello, java!","cacerts":"ok"`)
	})

	t.Run("dotnet8", func(t *testing.T) {
		// Stand-ins for the user's inputs: a .NET runtime whose dotnet
		// prints its arguments and environment, and RuntimeSupport.
		rt, rs := t.TempDir(), t.TempDir()
		os.MkdirAll(filepath.Join(rt, "shared", "Microsoft.NETCore.App", "8.0.11"), 0o755)
		os.WriteFile(filepath.Join(rt, "dotnet"), []byte("#!/bin/sh\necho \"dotnet $*\"\n"+
			"echo \"AWS_EXECUTION_ENV=$AWS_EXECUTION_ENV DOTNET_ROOT=$DOTNET_ROOT DOTNET_VERSION=$DOTNET_VERSION _HANDLER=$_HANDLER\"\n"), 0o755)
		os.WriteFile(filepath.Join(rs, "Amazon.Lambda.RuntimeSupport.dll"), []byte("stand-in"), 0o644)
		base := "localhost/lambdabox-test/dotnet8:" + suffix
		build(t, "dotnet8", "-t", base, "--load", "--engine", "podman", "--input", "dotnet="+rt, "--input", "runtimesupport="+rs)
		t.Cleanup(func() { podman(t, "rmi", "-f", base) })

		const handler = "Fn::Fn.Function::Handler"
		direct := []string{"run", "--rm", "-e", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9"}
		if res := podmanRun(t, append(direct, base, handler)...); res.code != 102 || !strings.Contains(res.stderr, "missing or empty") {
			t.Fatalf("empty /var/task: exit %d, stderr %q; want 102", res.code, res.stderr)
		}
		res := podmanRun(t, append(direct, "--entrypoint", "/bin/sh", base, "-c",
			`echo {} > Fn.deps.json && echo {} > Fn.runtimeconfig.json && exec /lambda-entrypoint.sh "$0"`, handler)...)
		want := "dotnet exec --depsfile /var/task/Fn.deps.json --runtimeconfig /var/task/Fn.runtimeconfig.json /var/runtime/Amazon.Lambda.RuntimeSupport.dll " + handler + "\n" +
			"AWS_EXECUTION_ENV=AWS_Lambda_dotnet8 DOTNET_ROOT=/var/lang/bin DOTNET_VERSION=8.0.11 _HANDLER=" + handler + "\n"
		if res.code != 0 || res.stdout != want {
			t.Fatalf("class library: exit %d\nstdout %q\nwant   %q\nstderr %s", res.code, res.stdout, want, res.stderr)
		}
	})

	t.Run("nodejs", func(t *testing.T) {
		// aws-lambda-ric's native addon is built in a chroot of Debian
		// packages against the image's Node 18, not the host's.
		if os.Geteuid() != 0 {
			t.Skip("the nodejs recipe builds its RIC in a chroot: run as root")
		}
		requireTool(t, "npm", "npm, any version (e.g. from NodeSource nodejs)")
		base := "localhost/lambdabox-test/nodejs:" + suffix
		build(t, "nodejs", "-t", base, "--load", "--engine", "podman")
		t.Cleanup(func() { podman(t, "rmi", "-f", base) })

		img := "localhost/lambdabox-test/nodefn:" + suffix
		podmanBuild(t, testdataDir(t, "baseimages/nodefn"), "Containerfile", base, img)
		serveAndInvoke(t, img, nil, `{"name":"node"}`,
			`{"message":"Hello, node!","node":"18","sha":"fa12280c","intl":"1.234,5","requestId":true}`)
	})
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
