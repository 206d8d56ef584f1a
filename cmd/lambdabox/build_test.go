package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lambdabox/lambdabox/internal/image"
)

// buildJSON is lambdabox build --json's output.
type buildJSON struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
		Role   string `json:"role"`
	} `json:"layers"`
}

// digests returns the layer digests of a role.
func (b buildJSON) digests(role string) []string {
	var out []string
	for _, l := range b.Layers {
		if l.Role == role {
			out = append(out, l.Digest)
		}
	}
	return out
}

// buildCache is the layer cache the image tests share (base layers and
// downloads survive between runs).
func buildCache(t *testing.T) string {
	t.Helper()
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "lambdabox-tests")
	}
	return filepath.Join(t.TempDir(), "cache")
}

// lambdaboxBuild runs lambdabox build with args and returns stdout and
// stderr.
func lambdaboxBuild(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(append([]string{"build"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func mustBuild(t *testing.T, args ...string) buildJSON {
	t.Helper()
	out, errs, err := lambdaboxBuild(t, append(args, "--json")...)
	if err != nil {
		t.Fatalf("lambdabox build %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	var res buildJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	return res
}

// fakeBase writes a small random image as an OCI layout: a base for the
// tests that never run the image.
func fakeBase(t *testing.T) string {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The config of a Lambda base image.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Env = []string{"LAMBDA_TASK_ROOT=/var/task", "LAMBDA_RUNTIME_DIR=/var/runtime"}
	cf.Config.WorkingDir = "/var/task"
	cf.Config.Entrypoint = []string{"/lambda-entrypoint.sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "base.oci")
	if err := image.WriteLayout(dir, img, name.MustParseReference("lambdabox-test/base:1")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for n, c := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBuildBadInput: each bad input is a clear error, found before any
// base image is built, and no output is left behind.
func TestBuildBadInput(t *testing.T) {
	out := t.TempDir()
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		want  []string
	}{
		{"missing handler file", map[string]string{"app.py": "def handler(e, c):\n    return 1\n"},
			[]string{"--handler", "nope.handler"}, []string{`"nope.handler"`, "no file nope.py"}},
		{"python function missing", map[string]string{"lambda_function.py": "import os\n\ndef other(e, c):\n    pass\n\nVALUE = 1\n"},
			nil, []string{"lambda_function.py defines no function handler", "found: VALUE, other"}},
		{"node export missing", map[string]string{"index.mjs": "export const other = async () => 1;\nexport function helper() {}\n"},
			nil, []string{"index.mjs exports no handler", "found: helper, other"}},
		{"commonjs export missing", map[string]string{"app.js": "exports.main = async () => 1;\n"},
			[]string{"--handler", "app.handler"}, []string{"app.js exports no handler (found: main)"}},
		{"go does not compile", map[string]string{"go.mod": "module fn\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() { nope() }\n"},
			nil, []string{"go build failed", "undefined: nope"}},
		{"unsupported RUN without an engine", map[string]string{"Dockerfile": "FROM public.ecr.aws/lambda/python:3.12\nCOPY app.py ${LAMBDA_TASK_ROOT}\nRUN yum install -y gcc && make\nCMD [\"app.handler\"]\n", "app.py": "def handler(e, c): pass\n"},
			[]string{"--engine", "none"}, []string{"needs a container engine", "line 3: RUN yum install -y gcc && make"}},
		{"multi-stage without an engine", map[string]string{"Dockerfile": "FROM golang AS build\nFROM public.ecr.aws/lambda/provided:al2023\nCOPY --from=build /x /x\n"},
			[]string{"--engine", "none"}, []string{"line 1: FROM golang AS build (multi-stage builds)", "COPY --from"}},
		{"no runtime", map[string]string{"README": "hi"}, nil, []string{"cannot tell the runtime", "--runtime"}},
		{"unknown runtime", map[string]string{"app.py": ""}, []string{"--runtime", "cobol85"}, []string{`unknown runtime "cobol85"`}},
		{"bad env", map[string]string{"app.py": ""}, []string{"--env", "NOVALUE"}, []string{"want KEY=VALUE"}},
		{"bad platform", map[string]string{"app.py": ""}, []string{"--platform", "linux/s390x"}, []string{"want linux/amd64 or linux/arm64"}},
		{"bad output", map[string]string{"app.py": ""}, []string{"--output", "zip:x"}, []string{"want oci:DIR or tar:FILE"}},
		{"missing layer", map[string]string{"app.py": "def handler(e, c): pass\n"}, []string{"--layer", "/nonexistent/layer.zip"}, []string{"layer:", "no such file"}},
		{"bad ignore file", map[string]string{"app.py": "def handler(e, c): pass\n", ".lambdaboxignore": "[abc\n"}, nil, []string{".lambdaboxignore: line 1", "unclosed ["}},
		{"malformed Dockerfile", map[string]string{"Dockerfile": "FROM\n"}, []string{"--engine", "none"}, []string{"Dockerfile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), tt.files)
			args := append([]string{dir, "--cache", t.TempDir(), "--output", "oci:" + filepath.Join(out, "x.oci")}, tt.args...)
			_, _, err := lambdaboxBuild(t, args...)
			if err == nil {
				t.Fatalf("build succeeded, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed builds left %d files in %s", len(ents), out)
	}
}

// TestBuildNoWheel: a package that PyPI has only as an sdist is an error
// that names it (pip reaches PyPI; the base is a stand-in).
func TestBuildNoWheel(t *testing.T) {
	if testing.Short() {
		t.Skip("reaches PyPI: not in -short")
	}
	requirePython(t, "pip")
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"app.py":           "import pycrypto\n\ndef handler(e, c): pass\n",
		"requirements.txt": "pycrypto==2.6.1\n",
	})
	_, _, err := lambdaboxBuild(t, dir, "--cache", t.TempDir(), "--base", fakeBase(t), "--runtime", "python3.11", "--output", "oci:"+filepath.Join(t.TempDir(), "x.oci"))
	if err == nil || !strings.Contains(err.Error(), "no wheel of pycrypto==2.6.1 for CPython 3.11") || !strings.Contains(err.Error(), "--allow-sdist") {
		t.Fatalf("err = %v, want no wheel of pycrypto", err)
	}
}

// TestBuildLayers: the folder, its ignore file, --layer and --env end up
// where Lambda expects them, reproducibly; checked on a stand-in base
// without running anything.
func TestBuildLayers(t *testing.T) {
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"app.py":             "from helper import x\n\nasync def handler(event, context):\n    return x\n",
		"helper.py":          "x = 1\n",
		"secret.env":         "TOKEN=1\n",
		"tests/test_app.py":  "",
		".lambdaboxignore":   "*.env\ntests/\n",
		"__pycache__/a.pyc":  "",
		"layer/bin/tool":     "#!/bin/sh\n",
		"layer/python/m.py":  "",
		"layer/extensions/x": "#!/bin/sh\n",
	})
	layerDir := filepath.Join(dir, "layer")
	os.Chmod(filepath.Join(layerDir, "extensions", "x"), 0o755)
	zipFile := filepath.Join(t.TempDir(), "ext.zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("extensions/zipped")
	w.Write([]byte("#!/bin/sh\n"))
	zw.Close()
	os.WriteFile(zipFile, buf.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, ".lambdaboxignore"), []byte("*.env\ntests/\nlayer/\n"), 0o644)

	base := fakeBase(t)
	cache := t.TempDir()
	oci := filepath.Join(t.TempDir(), "fn.oci")
	args := []string{dir, "--base", base, "--runtime", "python3.12", "--cache", cache, "--layer", layerDir, "--layer", zipFile, "--env", "STAGE=test", "--output", "oci:" + oci}
	res := mustBuild(t, args...)
	roles := []string{}
	for _, l := range res.Layers {
		roles = append(roles, l.Role)
	}
	if got := strings.Join(roles, ","); got != "base,layer,layer,code" {
		t.Fatalf("roles %s, want base,layer,layer,code", got)
	}
	img, err := image.Read(context.Background(), oci, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if got := strings.Join(cf.Config.Cmd, " "); got != "app.handler" {
		t.Errorf("CMD %q, want app.handler", got)
	}
	if image.Getenv(cf.Config.Env, "STAGE") != "test" {
		t.Errorf("env %q has no STAGE=test", cf.Config.Env)
	}
	ls, _ := img.Layers()
	files := func(i int) string {
		rc, err := ls[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		tr := image.NewTree()
		if err := tr.AddTar(rc); err != nil {
			t.Fatal(err)
		}
		return strings.Join(tr.Files(""), " ")
	}
	if got, want := files(1), "opt/bin/tool opt/extensions/x opt/python/m.py"; got != want {
		t.Errorf("--layer DIR: %s, want %s", got, want)
	}
	if got, want := files(2), "opt/extensions/zipped"; got != want {
		t.Errorf("--layer ZIP: %s, want %s", got, want)
	}
	if got, want := files(3), "var/task/app.py var/task/helper.py"; got != want {
		t.Errorf("code layer: %s, want %s", got, want)
	}
	if again := mustBuild(t, args...); again.Digest != res.Digest {
		t.Errorf("rebuild: digest %s, first %s", again.Digest, res.Digest)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if other := mustBuild(t, args...); other.Digest == res.Digest {
		t.Errorf("SOURCE_DATE_EPOCH did not change the digest")
	}
}

// curlInvoke invokes the function served on addr with curl.
func curlInvoke(t *testing.T, addr, payload string) string {
	t.Helper()
	curl := requireTool(t, "curl", "apt-get install -y curl")
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(curl, "-sS", "--fail-with-body", "-m", "30", "-d", payload, url).CombinedOutput()
		if err == nil {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runImage runs img with -p 127.0.0.1:PORT:8080 and returns the address;
// the container is removed when the test ends.
func runImage(t *testing.T, img string) string {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	id := podman(t, "run", "-d", "--label", "lambdabox-test=build", "-p", "127.0.0.1:"+port+":8080", img)
	t.Cleanup(func() { podmanRun(t, "rm", "-f", id) })
	return addr
}

// TestBuildExamples builds each example function of examples/ without an
// engine, loads it into Podman, runs it and invokes it with curl.
func TestBuildExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "runc", "bash .ci/images.sh")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	requirePython(t, "pip")
	cache := buildCache(t)
	suffix := fmt.Sprintf("b%d", os.Getpid())
	examples, _ := filepath.Abs("../../examples")

	run := func(t *testing.T, dir, payload, want string, extra ...string) buildJSON {
		t.Helper()
		img := "localhost/lambdabox-test/" + filepath.Base(dir) + ":" + suffix
		res := mustBuild(t, append([]string{dir, "--cache", cache, "-t", img, "--load", "--engine", "podman"}, extra...)...)
		t.Cleanup(func() { podmanRun(t, "rmi", "-f", img) })
		addr := runImage(t, img)
		if body := curlInvoke(t, addr, payload); !strings.Contains(body, want) {
			t.Fatalf("invoke: %s, want %s", body, want)
		}
		for _, l := range res.Layers {
			if l.Role == "code" {
				t.Logf("%s: code layer %d bytes, image %.1f MiB", filepath.Base(dir), l.Size, float64(res.Size)/(1<<20))
			}
		}
		return res
	}
	t.Run("python", func(t *testing.T) {
		run(t, filepath.Join(examples, "hello-python"), `{"name":"python"}`, `"message": "Hello, python!", "six": "1.16.0"`)
	})
	t.Run("go", func(t *testing.T) {
		run(t, filepath.Join(examples, "hello-go"), `{"name":"go"}`, `"message":"Hello, go!"`)
	})
	t.Run("node", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the nodejs base builds its RIC in a chroot: run as root")
		}
		requireTool(t, "npm", "npm, any version")
		run(t, filepath.Join(examples, "hello-node"), `{"name":"node"}`, `"message":"Hello, node!","timeout":"30s"`)
	})
	t.Run("java", func(t *testing.T) {
		javac := requireTool(t, "javac", "apt-get install -y openjdk-17-jdk-headless")
		jar := requireTool(t, "jar", "apt-get install -y openjdk-17-jdk-headless")
		requireTool(t, "mvn", "apt-get install -y maven")
		dir := filepath.Join(t.TempDir(), "hello-java")
		copyDir(t, filepath.Join(examples, "hello-java"), dir)
		classes := filepath.Join(dir, "target", "classes")
		if out, err := exec.Command(javac, "--release", "17", "-d", classes, filepath.Join(dir, "src/main/java/example/HelloHandler.java")).CombinedOutput(); err != nil {
			t.Fatalf("javac: %v\n%s", err, out)
		}
		if out, err := exec.Command(jar, "cf", filepath.Join(dir, "target", "hello-1.0.jar"), "-C", classes, ".").CombinedOutput(); err != nil {
			t.Fatalf("jar: %v\n%s", err, out)
		}
		// A dependency as mvn dependency:copy-dependencies leaves it.
		depDir := filepath.Join(dir, "target", "dependency")
		os.MkdirAll(depDir, 0o755)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("META-INF/maven/example/greeting/pom.properties")
		w.Write([]byte("groupId=example\nartifactId=greeting\nversion=2.0\n"))
		zw.Close()
		os.WriteFile(filepath.Join(depDir, "greeting-2.0.jar"), buf.Bytes(), 0o644)
		out := filepath.Join(t.TempDir(), "java.oci")
		res := run(t, dir, `{"name":"java"}`, `"message":"Hello, java!","java":"17"`, "--output", "oci:"+out)
		if len(res.digests("dependencies")) != 1 {
			t.Errorf("layers %+v: want one dependencies layer", res.Layers)
		}
		sbom, _ := os.ReadFile(out + ".spdx.json")
		if !bytes.Contains(sbom, []byte("pkg:maven/example/greeting@2.0")) {
			t.Errorf("SBOM has no greeting 2.0:\n%s", sbom)
		}
	})
	t.Run("dotnet", func(t *testing.T) {
		// The stand-in runtime of the dotnet8 tests: a dotnet that serves
		// the Runtime API and answers with its command line.
		rt, rs := t.TempDir(), t.TempDir()
		os.MkdirAll(filepath.Join(rt, "shared", "Microsoft.NETCore.App", "8.0.11"), 0o755)
		gobuild := exec.Command("go", "build", "-o", filepath.Join(rt, "dotnet"), "./testdata/dotnetstandin")
		gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := gobuild.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		os.WriteFile(filepath.Join(rs, "Amazon.Lambda.RuntimeSupport.dll"), []byte("stand-in"), 0o644)
		// A publish folder as dotnet publish leaves it.
		pub := writeFiles(t, t.TempDir(), map[string]string{
			"HelloDotnet.dll":                "stand-in",
			"HelloDotnet.runtimeconfig.json": `{"runtimeOptions":{"tfm":"net8.0"}}`,
			"HelloDotnet.deps.json":          `{"libraries":{"HelloDotnet/1.0.0":{"type":"project"},"Newtonsoft.Json/13.0.3":{"type":"package"}}}`,
			"Newtonsoft.Json.dll":            "stand-in",
		})
		res := run(t, pub, `{"name":"dotnet"}`, `"dotnet":"exec /var/task/HelloDotnet.dll","handler":"HelloDotnet","name":"dotnet"`,
			"--input", "dotnet="+rt, "--input", "runtimesupport="+rs)
		if len(res.digests("dependencies")) != 1 {
			t.Errorf("layers %+v: want one dependencies layer", res.Layers)
		}
	})
}

// TestBuildSeed004 builds seed 004's folder, its Dockerfile unchanged (FROM
// public.ecr.aws/lambda/python:3.9, pip3 install -r requirements.txt
// --target, a real PyPI package), without an engine, and serves it.
func TestBuildSeed004(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requirePython(t, "pip")
	img := fmt.Sprintf("localhost/lambdabox-test/seed004:b%d", os.Getpid())
	dir := testdataDir(t, "build/seed004")
	out, errs, err := lambdaboxBuild(t, dir, "--cache", buildCache(t), "-t", img, "--load", "--engine", "none")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, errs)
	}
	t.Cleanup(func() { podmanRun(t, "rmi", "-f", img) })
	if !strings.Contains(errs, "lambdabox python3.11 (nearest to python3.9) for FROM public.ecr.aws/lambda/python:3.9") {
		t.Errorf("stderr does not say which base it used:\n%s", errs)
	}
	t.Logf("%s%s", out, errs)
	addr := runImage(t, img)
	if body := curlInvoke(t, addr, `{"name":"seed"}`); !strings.Contains(body, `{"body": "HELLO, SEED!", "six": "1.16.0"}`) {
		t.Fatalf("invoke: %s", body)
	}
}

// TestBuildIncremental: a one-line code change changes only the code
// layer; a requirements change changes the dependency layer too; the same
// inputs give the same digest.
func TestBuildIncremental(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requirePython(t, "pip")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	dir := filepath.Join(t.TempDir(), "fn")
	copyDir(t, "../../examples/hello-python", dir)
	cache := buildCache(t)
	oci := filepath.Join(t.TempDir(), "fn.oci")
	args := []string{dir, "--cache", cache, "--output", "oci:" + oci}
	first := mustBuild(t, args...)
	if again := mustBuild(t, args...); again.Digest != first.Digest {
		t.Fatalf("unchanged rebuild: digest %s, first %s", again.Digest, first.Digest)
	}
	src := filepath.Join(dir, "lambda_function.py")
	code, _ := os.ReadFile(src)
	os.WriteFile(src, bytes.Replace(code, []byte(`print("hello from python")`), []byte(`print("hello again")`), 1), 0o644)
	edited := mustBuild(t, args...)
	same := func(role string, a, b buildJSON) bool {
		return strings.Join(a.digests(role), ",") == strings.Join(b.digests(role), ",")
	}
	if !same("base", first, edited) || !same("dependencies", first, edited) || same("code", first, edited) || edited.Digest == first.Digest {
		t.Fatalf("one-line change: want only the code layer changed\nfirst  %+v\nedited %+v", first.Layers, edited.Layers)
	}
	os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("six==1.15.0\n"), 0o644)
	reqs := mustBuild(t, args...)
	if !same("base", first, reqs) || same("dependencies", edited, reqs) {
		t.Fatalf("requirements change: want the dependency layer changed\nbefore %+v\nafter  %+v", edited.Layers, reqs.Layers)
	}
	sbom, _ := os.ReadFile(oci + ".spdx.json")
	if !bytes.Contains(sbom, []byte("pkg:pypi/six@1.15.0")) {
		t.Errorf("SBOM has no six 1.15.0:\n%s", sbom)
	}
}

// startRegistry starts Debian's docker-registry (the CNCF distribution
// server) on 127.0.0.1, read-only when readonly is set.
func startRegistry(t *testing.T, readonly bool) string {
	t.Helper()
	bin := requireTool(t, "docker-registry", "apt-get install -y docker-registry")
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  maintenance:\n    readonly:\n      enabled: %v\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), readonly, addr)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644)
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBuildPush pushes a built image to a real registry on 127.0.0.1,
// pulls it back by digest with Podman and runs it; a read-only registry
// refuses the push, and no tag is left.
func TestBuildPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requirePython(t, "pip")
	dockerConfig := t.TempDir() // no credentials: the registry is anonymous
	os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte("{}"), 0o644)
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	cache := buildCache(t)
	examples, _ := filepath.Abs("../../examples")
	reg := startRegistry(t, false)
	ref := reg + "/lambdabox-test/hello-go:1"
	res := mustBuild(t, filepath.Join(examples, "hello-go"), "--cache", cache, "--push", ref)
	pulled := reg + "/lambdabox-test/hello-go@" + res.Digest
	podman(t, "pull", "-q", "--tls-verify=false", pulled)
	t.Cleanup(func() { podmanRun(t, "rmi", "-f", pulled) })
	addr := runImage(t, pulled)
	if body := curlInvoke(t, addr, `{"name":"registry"}`); !strings.Contains(body, `"message":"Hello, registry!"`) {
		t.Fatalf("invoke: %s", body)
	}

	ro := startRegistry(t, true)
	_, _, err := lambdaboxBuild(t, filepath.Join(examples, "hello-go"), "--cache", cache, "--push", ro+"/lambdabox-test/hello-go:1")
	if err == nil || !strings.Contains(err.Error(), "pushing "+ro+"/lambdabox-test/hello-go:1") {
		t.Fatalf("push to a read-only registry: err = %v", err)
	}
	t.Logf("refused: %v", err)
	resp, err := http.Get("http://" + ro + "/v2/lambdabox-test/hello-go/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after a refused push the tag answers %d, want 404", resp.StatusCode)
	}
}

// TestBuildEngine: a Dockerfile with a RUN line build cannot run natively
// is handed to the engine on the machine (Podman here), which says so; its
// FROM of an AWS Lambda image nobody can pull gets lambdabox's base.
func TestBuildEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "runc", "bash .ci/images.sh")
	if exec.Command("docker", "info").Run() == nil {
		t.Skip("a Docker daemon answers: the engine found would be docker")
	}
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"Dockerfile": "FROM public.ecr.aws/lambda/python:3.12\nCOPY app.py ${LAMBDA_TASK_ROOT}/\nRUN echo \"built by an engine\" > /var/task/marker.txt\nCMD [\"app.handler\"]\n",
		"app.py":     "def handler(event, context):\n    return {\"marker\": open(\"/var/task/marker.txt\").read().strip()}\n",
	})
	img := fmt.Sprintf("localhost/lambdabox-test/engine:b%d", os.Getpid())
	t.Cleanup(func() {
		podmanRun(t, "rmi", "-f", img)
		if ids := podman(t, "images", "-q", "--filter", "reference=localhost/lambdabox-base/*"); ids != "" {
			podmanRun(t, append([]string{"rmi", "-f"}, strings.Fields(ids)...)...)
		}
	})
	_, errs, err := lambdaboxBuild(t, dir, "--cache", buildCache(t), "-t", img, "--load",
		"--engine-flag=--runtime=runc", "--engine-flag=--ulimit=nofile=1024:1024", "--engine-flag=--ulimit=nproc=1024:1024")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, errs)
	}
	if !strings.Contains(errs, "built with podman") {
		t.Errorf("stderr does not say which engine built it:\n%s", errs)
	}
	addr := runImage(t, img)
	if body := curlInvoke(t, addr, `{}`); !strings.Contains(body, `{"marker": "built by an engine"}`) {
		t.Fatalf("invoke: %s", body)
	}
}

// TestBuildWheelsForPlatform: pip installs the image's platform's wheels
// (aarch64 for --platform linux/arm64), whatever the host is.
func TestBuildWheelsForPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("reaches PyPI: not in -short")
	}
	requirePython(t, "pip")
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"app.py":           "import yaml\n\ndef handler(e, c): pass\n",
		"requirements.txt": "PyYAML==6.0.2\n",
	})
	for _, arch := range []string{"amd64", "arm64"} {
		oci := filepath.Join(t.TempDir(), "fn.oci")
		res := mustBuild(t, dir, "--cache", t.TempDir(), "--base", fakeBase(t), "--runtime", "python3.11", "--platform", "linux/"+arch, "--output", "oci:"+oci)
		img, err := image.Read(context.Background(), oci, arch)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		if len(ls) != 3 || res.Layers[1].Role != "dependencies" {
			t.Fatalf("%s: layers %+v", arch, res.Layers)
		}
		rc, _ := ls[1].Uncompressed()
		tree := image.NewTree()
		if err := tree.AddTar(rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		want := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
		if files := strings.Join(tree.Files("var/task/yaml"), " "); !strings.Contains(files, "_yaml.cpython-311-"+want+"-linux-gnu.so") {
			t.Errorf("%s: no %s extension module in %s", arch, want, files)
		}
	}
}

// TestBuildDockerfileNpm: a Lambda Node Dockerfile's npm ci runs natively
// as its own cached dependency layer (npm reaches the registry; the base
// is a stand-in).
func TestBuildDockerfileNpm(t *testing.T) {
	if testing.Short() {
		t.Skip("reaches the npm registry: not in -short")
	}
	requireTool(t, "npm", "npm, any version")
	dir := t.TempDir()
	copyDir(t, "../../examples/hello-node", dir)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM public.ecr.aws/lambda/nodejs:20\n"+
		"COPY package.json package-lock.json ${LAMBDA_TASK_ROOT}/\nRUN npm ci --omit=dev\nCOPY index.mjs ${LAMBDA_TASK_ROOT}/\nCMD [\"index.handler\"]\n"), 0o644)
	oci := filepath.Join(t.TempDir(), "fn.oci")
	args := []string{dir, "--cache", t.TempDir(), "--base", fakeBase(t), "--engine", "none", "--output", "oci:" + oci}
	res := mustBuild(t, args...)
	if got := len(res.digests("dependencies")); got != 1 {
		t.Fatalf("layers %+v: want one dependencies layer", res.Layers)
	}
	sbom, _ := os.ReadFile(oci + ".spdx.json")
	if !bytes.Contains(sbom, []byte("pkg:npm/ms@2.1.3")) {
		t.Errorf("SBOM has no ms 2.1.3:\n%s", sbom)
	}
	os.WriteFile(filepath.Join(dir, "index.mjs"), []byte("export const handler = async () => 2;\n"), 0o644)
	again := mustBuild(t, args...)
	if again.digests("dependencies")[0] != res.digests("dependencies")[0] || again.digests("code")[0] == res.digests("code")[0] {
		t.Errorf("after a code edit: want the same dependencies and a new code layer\nbefore %+v\nafter  %+v", res.Layers, again.Layers)
	}
	os.WriteFile(filepath.Join(dir, "index.mjs"), []byte("export const other = 1;\n"), 0o644)
	if _, _, err := lambdaboxBuild(t, args...); err == nil || !strings.Contains(err.Error(), "index.mjs exports no handler (found: other)") {
		t.Errorf("CMD naming a missing export: err = %v", err)
	}
}

// TestBuildDockerfileDnf: a dnf install of a Lambda Dockerfile is built
// natively from Debian bookworm's packages (jq and its libraries) on
// lambdabox's base, and the program runs in the image.
func TestBuildDockerfileDnf(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	requirePython(t, "pip")
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"Dockerfile": "FROM public.ecr.aws/lambda/python:3.12\nRUN dnf install -y jq && dnf clean all && rm -rf /var/cache/dnf\nCOPY app.py ${LAMBDA_TASK_ROOT}/\nCMD [\"app.handler\"]\n",
		"app.py":     "def handler(event, context):\n    return 1\n",
	})
	img := fmt.Sprintf("localhost/lambdabox-test/dnf:b%d", os.Getpid())
	oci := filepath.Join(t.TempDir(), "fn.oci")
	res := mustBuild(t, dir, "--cache", buildCache(t), "--base-map", "--engine", "none", "-t", img, "--load", "--output", "oci:"+oci)
	t.Cleanup(func() { podmanRun(t, "rmi", "-f", img) })
	if len(res.digests("dependencies")) != 1 {
		t.Fatalf("layers %+v: want one dependencies layer", res.Layers)
	}
	if got := podman(t, "run", "--rm", "--entrypoint", "/usr/bin/jq", img, "--version"); !strings.HasPrefix(got, "jq-1.") {
		t.Fatalf("jq --version: %q", got)
	}
	sbom, _ := os.ReadFile(oci + ".spdx.json")
	if !bytes.Contains(sbom, []byte(`"name": "jq"`)) {
		t.Errorf("SBOM has no jq:\n%s", sbom)
	}
}
