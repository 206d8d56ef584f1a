package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// Tests of lambdabox serve, through the binary, on testdata/serve/template.yaml:
// a Python (awslambdaric), a Node.js (aws-lambda-ric) and a Go function
// (examples/hello-go, built from source) on the process driver.

// server is a running "lambdabox serve" with its addresses.
type server struct {
	*emulator
	api, urlBase string
}

// startServe runs lambdabox serve with args on free loopback ports, in
// dir, and waits until it has printed its table (everything listens).
func startServe(t testing.TB, dir string, args ...string) *server {
	t.Helper()
	return startServeTimeout(t, 60*time.Second, dir, args...)
}

// startServeTimeout is startServe waiting up to wait for the table.
func startServeTimeout(t testing.TB, wait time.Duration, dir string, args ...string) *server {
	t.Helper()
	addr, api := freeAddr(t), freeAddr(t)
	urlPort := freeURLPorts(t)
	args = append([]string{"serve", "--addr", addr, "--api-address", api,
		"--function-url-base-port", strconv.Itoa(urlPort), "--cache", t.TempDir(), "--state-dir", t.TempDir()}, args...)
	e := &emulator{URL: "http://" + addr, Stdout: &syncbuf.Buffer{}, Stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(lambdaboxBin, args...)
	e.cmd.Dir = dir
	if raceBuild() {
		e.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	}
	e.cmd.Stdout, e.cmd.Stderr = e.Stdout, e.Stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		e.stop(t)
		e.checkRace(t)
	})
	for deadline := time.Now().Add(wait); !strings.Contains(e.Stderr.String(), "FUNCTION "); time.Sleep(20 * time.Millisecond) {
		select {
		case <-e.done:
			t.Fatalf("lambdabox serve exited early\nstdout:\n%s\nstderr:\n%s", e.Stdout, e.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdabox serve did not start\nstderr:\n%s", e.Stderr)
		}
	}
	return &server{emulator: e, api: "http://" + api, urlBase: "http://127.0.0.1:" + strconv.Itoa(urlPort)}
}

// freeURLPorts returns a port that is free, with the next two.
func freeURLPorts(t testing.TB) int {
	t.Helper()
	for range 100 {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		port, _ := strconv.Atoi(p)
		ok := true
		for i := 1; i < 3 && ok; i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+i)))
			if ok = err == nil; ok {
				ln.Close()
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no three free ports in a row")
	return 0
}

func serveTemplate(t testing.TB) string {
	t.Helper()
	requirePython(t, "awslambdaric")
	requireTool(t, "node", nodeInstallHint)
	if _, err := os.Stat(filepath.Join(testdataDir(t, "node"), "node_modules", ".bin", "aws-lambda-ric")); err != nil {
		t.Fatalf("aws-lambda-ric is not installed in testdata/node: %s", nodeInstallHint)
	}
	return filepath.Join(testdataDir(t, "serve"), "template.yaml")
}

func TestServeTemplate(t *testing.T) {
	tpl := serveTemplate(t)
	envFile := filepath.Join(t.TempDir(), "env.json")
	os.WriteFile(envFile, []byte(`{"Parameters": {"FROM_FILE": "all", "UNDECLARED": "x"}, "PyFn": {"REGION": "mine"}}`), 0o644)
	s := startServe(t, t.TempDir(), "-t", tpl, "--env-vars", envFile, "--parameter-overrides", "Greeting=hi", "--region", "eu-west-1")

	// The table names each function and its URLs; !GetAtt is a warning.
	stderr := s.Stderr.String()
	for _, want := range []string{
		"PyFn: Environment.Variables.TABLE: !GetAtt Table.Arn cannot be resolved locally; left empty",
		"3 functions on the process driver",
		"GoFn ", s.urlBase + "/ (function URL)", "POST " + s.api + "/py (HttpApi)", "node-fn ", "python3.12",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, c := range []struct{ name, payload, want string }{
		{"PyFn", `{"data":{"n":1}}`, `{"n": 1}`},
		{"node-fn", `{"data":{"n":2}}`, `{"n":2}`},
		{"GoFn", `{"name":"serve"}`, `"message":"Hello, serve!"`},
		// Parameter override, env-vars (global and per function), undeclared ignored, region.
		{"PyFn", `{"op":"env","name":"GREETING"}`, `{"value": "hi", "set": true}`},
		{"PyFn", `{"op":"env","name":"FROM_FILE"}`, `{"value": "all", "set": true}`},
		{"PyFn", `{"op":"env","name":"REGION"}`, `{"value": "mine", "set": true}`},
		{"PyFn", `{"op":"env","name":"UNDECLARED"}`, `{"value": null, "set": false}`},
		{"PyFn", `{"op":"env","name":"TABLE"}`, `{"value": "", "set": true}`},
		{"PyFn", `{"op":"env","name":"AWS_REGION"}`, `{"value": "eu-west-1", "set": true}`},
	} {
		resp, body := s.invoke(t, c.name, c.payload)
		if resp.StatusCode != 200 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want %s\nstderr:\n%s", c.name, c.payload, resp.StatusCode, body, c.want, s.Stderr)
		}
	}
	// The function URL and the API route.
	u := &emulator{URL: s.urlBase}
	if resp, body := u.do(t, "POST", "/", strings.NewReader(`{"name":"url"}`)); resp.StatusCode != 200 || !strings.Contains(body, "Hello, world!") {
		// A function URL passes the HTTP request as the event: no "name".
		t.Errorf("function URL: %d %s", resp.StatusCode, body)
	}
	a := &emulator{URL: s.api}
	if resp, body := a.do(t, "POST", "/py", strings.NewReader(`{}`)); resp.StatusCode != 200 {
		t.Errorf("API route: %d %s", resp.StatusCode, body)
	}
	// The AWS CLI, with dummy credentials.
	cli := newAWSCLI(t)
	meta, payload := cli.invoke(t, s.emulator, "node-fn", `{"data":"cli"}`)
	if meta["StatusCode"] != float64(200) || payload != `"cli"` {
		t.Errorf("aws lambda invoke node-fn: %v %s", meta, payload)
	}
	// Every line is prefixed by its function's name.
	waitFor(t, "the functions' log lines", func() bool {
		out := s.Stdout.String()
		return strings.Contains(out, "node-fn | ") && strings.Contains(out, "GoFn    | greeting serve") && strings.Contains(out, "PyFn    | START RequestId:")
	})
	for _, line := range strings.Split(strings.TrimSpace(s.Stdout.String()), "\n") {
		if !strings.HasPrefix(line, "PyFn    | ") && !strings.HasPrefix(line, "node-fn | ") && !strings.HasPrefix(line, "GoFn    | ") {
			t.Errorf("line without a function prefix: %q", line)
		}
	}
}

func TestServeJSONLogs(t *testing.T) {
	s := startServe(t, t.TempDir(), "-t", serveTemplate(t), "--log-format", "json", "--no-watch")
	if resp, body := s.invoke(t, "PyFn", `{"op":"print","text":"json"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	waitFor(t, "the REPORT line", func() bool { return strings.Contains(s.Stdout.String(), "REPORT RequestId") })
	var sawPrint, sawReport bool
	for _, line := range strings.Split(strings.TrimSpace(s.Stdout.String()), "\n") {
		var l struct{ Time, Function, Stream, Message string }
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Time == "" || l.Function != "PyFn" {
			t.Errorf("line %q: %+v %v", line, l, err)
		}
		sawPrint = sawPrint || l.Message == "python says json" && l.Stream == "function"
		sawReport = sawReport || strings.HasPrefix(l.Message, "REPORT") && l.Stream == "platform"
	}
	if !sawPrint || !sawReport {
		t.Errorf("print %v report %v in\n%s", sawPrint, sawReport, s.Stdout)
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "template.yaml"), []byte("Resources:\n  J:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: .\n      Handler: a::b\n      Runtime: java21\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		// (a -race lambdabox is refused before: the containers' helper must be static)
		{[]string{"--driver", "container"}, "--driver container: "},
		{nil, "function J: runtime java21 needs --driver container"},
		{[]string{"-t", "nope.yaml"}, "no such file"},
		{[]string{"--parameter-overrides", "novalue"}, "want KEY=VALUE"},
		{[]string{"--log-format", "xml"}, "log format"},
	} {
		// No engine answers, so that J needs one.
		env := append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(dir, "no-engine.sock"))
		r := runTool(t, 30*time.Second, dir, env, lambdaboxBin, append([]string{"serve", "--addr", freeAddr(t), "--state-dir", t.TempDir()}, c.args...)...)
		if r.err == nil || !strings.Contains(r.stderr, c.want) {
			t.Errorf("serve %q: %v, stderr %q, want %q", c.args, r.err, r.stderr, c.want)
		}
	}
}

// TestServeHotReload edits a Python handler while 4 clients invoke in a
// loop: every request succeeds, and the responses switch to the new code.
func TestServeHotReload(t *testing.T) {
	requirePython(t, "awslambdaric")
	dir := t.TempDir()
	code := filepath.Join(dir, "fn")
	os.Mkdir(code, 0o755)
	handler := func(v string) []byte {
		return []byte("def handler(event, context):\n    return {\"version\": \"" + v + "\"}\n")
	}
	os.WriteFile(filepath.Join(code, "app.py"), handler("v1"), 0o644)
	os.WriteFile(filepath.Join(dir, "template.yaml"), []byte("Resources:\n  Reload:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn\n      Handler: app.handler\n      Runtime: python3.12\n      ReservedConcurrentExecutions: 4\n"), 0o644)
	s := startServe(t, dir)

	var (
		stop          atomic.Bool
		total, failed atomic.Int64
		sawV2         atomic.Int64
		mu            sync.Mutex
		errs          []string
		wg            sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for n := 0; n < 2000 && !stop.Load(); n++ {
				resp, body := s.invoke(t, "Reload", `{}`)
				total.Add(1)
				switch {
				case resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "":
					failed.Add(1)
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%d %s", resp.StatusCode, body))
					mu.Unlock()
				case strings.Contains(body, `"v2"`):
					sawV2.Add(1)
				case sawV2.Load() > 0 && strings.Contains(body, `"v1"`):
					// Old code may answer only invokes that started before the swap.
				}
			}
		})
	}
	waitFor(t, "the first answers", func() bool { return total.Load() >= 20 })
	os.WriteFile(filepath.Join(code, "app.py"), handler("v2"), 0o644)
	// Environments the old code's pool starts after the edit read the new
	// file too: only the reload's log line says the swap is done.
	waitFor(t, "the reload's log line", func() bool { return strings.Contains(s.Stderr.String(), "msg=reloaded function=Reload") })
	deadline := time.Now().Add(15 * time.Second)
	for sawV2.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the reload: %q", failed.Load(), total.Load(), errs[:min(len(errs), 5)])
	}
	if sawV2.Load() < 20 {
		t.Fatalf("responses did not switch to the new code (%d of %d)\nstderr:\n%s", sawV2.Load(), total.Load(), s.Stderr)
	}
	// After the switch, new requests get the new code only.
	for range 5 {
		if _, body := s.invoke(t, "Reload", `{}`); !strings.Contains(body, `"v2"`) {
			t.Errorf("after the reload: %s", body)
		}
	}
	t.Logf("%d requests, %d answered by the new code", total.Load(), sawV2.Load())
}

// goRuntimeSource is a custom runtime with the standard library only: it
// answers every event with its version.
const goRuntimeSource = `package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewBufferString("\"VERSION\""))
		if err != nil {
			os.Exit(1)
		}
		r.Body.Close()
	}
}
`

// TestServeHotReloadGo edits a Go function's source: serve rebuilds it
// with go build and the responses switch to the new code; a change that
// does not build keeps the old code serving.
func TestServeHotReloadGo(t *testing.T) {
	dir := t.TempDir()
	code := filepath.Join(dir, "gofn")
	os.Mkdir(code, 0o755)
	write := func(version string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(code, "main.go"), []byte(strings.Replace(goRuntimeSource, "VERSION", version, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(code, "go.mod"), []byte("module example.com/gofn\n\ngo 1.22\n"), 0o644)
	write("v1")
	os.WriteFile(filepath.Join(dir, "template.yaml"), []byte("Resources:\n  GoReload:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: gofn\n      Handler: bootstrap\n      Runtime: provided.al2023\n"), 0o644)
	s := startServe(t, dir)
	if _, body := s.invoke(t, "GoReload", `{}`); body != `"v1"` {
		t.Fatalf("first answer %s\nstderr:\n%s", body, s.Stderr)
	}
	os.WriteFile(filepath.Join(code, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644)
	waitFor(t, "the failed build's log line", func() bool {
		return strings.Contains(s.Stderr.String(), "reload failed; the previous code keeps serving")
	})
	if resp, body := s.invoke(t, "GoReload", `{}`); resp.StatusCode != 200 || body != `"v1"` {
		t.Errorf("after a failed build: %d %s", resp.StatusCode, body)
	}
	write("v2")
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := s.invoke(t, "GoReload", `{}`)
		if resp.StatusCode != 200 {
			t.Fatalf("during the reload: %d %s", resp.StatusCode, body)
		}
		if body == `"v2"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rebuilt code never answered\nstderr:\n%s", s.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeControlPlane drives lambdabox serve's control plane with the AWS
// CLI: create a Zip function, wait, invoke, publish a version, alias it,
// update the code, invoke by alias and unqualified; then restart serve on
// the same state directory, where all of it still answers, and delete.
func TestServeControlPlane(t *testing.T) {
	requirePython(t, "awslambdaric")
	awsPath := requireTool(t, "aws", "python3 -m pip install awscli")
	dir, state := t.TempDir(), t.TempDir()
	zipOf := func(name, version string) string {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("app.py")
		fmt.Fprintf(w, "def handler(event, context):\n    return {'version': %q, 'event': event}\n", version)
		zw.Close()
		p := filepath.Join(dir, name)
		os.WriteFile(p, buf.Bytes(), 0o644)
		return "fileb://" + p
	}
	v1, v2 := zipOf("v1.zip", "one"), zipOf("v2.zip", "two")
	var s *server
	aws := func(args ...string) string {
		t.Helper()
		env := append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=")
		r := runTool(t, 90*time.Second, dir, env, awsPath, append([]string{"--endpoint-url", s.URL, "--output", "json", "lambda"}, args...)...)
		if r.err != nil {
			t.Fatalf("aws lambda %s: %v\n%s%s\nserve's stderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr, s.Stderr)
		}
		return r.stdout
	}
	invoke := func(qualifier string) string {
		t.Helper()
		args := []string{"invoke", "--function-name", "cp", "--payload", `{"n":1}`, "out.json"}
		if qualifier != "" {
			args = append(args, "--qualifier", qualifier)
		}
		aws(args...)
		b, _ := os.ReadFile(filepath.Join(dir, "out.json"))
		return string(b)
	}

	s = startServe(t, dir, "--state-dir", state, "--no-watch")
	aws("create-function", "--function-name", "cp", "--runtime", "python3.12", "--handler", "app.handler",
		"--role", "arn:aws:iam::123456789012:role/lambda", "--zip-file", v1)
	aws("wait", "function-active-v2", "--function-name", "cp")
	if got := invoke(""); !strings.Contains(got, `"version": "one"`) || !strings.Contains(got, `"n": 1`) {
		t.Fatalf("invoke: %s", got)
	}
	if out := aws("publish-version", "--function-name", "cp"); !strings.Contains(out, `"Version": "1"`) {
		t.Fatalf("publish-version: %s", out)
	}
	aws("create-alias", "--function-name", "cp", "--name", "live", "--function-version", "1")
	aws("update-function-code", "--function-name", "cp", "--zip-file", v2)
	aws("wait", "function-updated-v2", "--function-name", "cp")
	if got := invoke(""); !strings.Contains(got, `"version": "two"`) {
		t.Errorf("invoke after update: %s", got)
	}
	if got := invoke("live"); !strings.Contains(got, `"version": "one"`) {
		t.Errorf("invoke --qualifier live: %s", got)
	}

	s.stop(t)
	s = startServe(t, dir, "--state-dir", state, "--no-watch")
	aws("wait", "function-active-v2", "--function-name", "cp")
	if got := invoke("live"); !strings.Contains(got, `"version": "one"`) {
		t.Errorf("after a restart, invoke --qualifier live: %s", got)
	}
	if got := invoke(""); !strings.Contains(got, `"version": "two"`) {
		t.Errorf("after a restart, invoke: %s", got)
	}
	aws("delete-function", "--function-name", "cp")
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1")
	if r := runTool(t, 90*time.Second, dir, env, awsPath, "--endpoint-url", s.URL, "lambda", "get-function", "--function-name", "cp"); r.err == nil || !strings.Contains(r.stderr, "ResourceNotFoundException") {
		t.Errorf("get-function after delete: %v %s", r.err, r.stderr)
	}
}

// TestServeContainer serves a Go function (built from source) and a Python
// function on the container driver, in lambdabox's provided and
// python3.13 base images (from the base image tests' layer cache), through
// Podman's Docker-compatible API at DOCKER_HOST; at exit no container is
// left.
func TestServeContainer(t *testing.T) {
	if raceBuild() {
		t.Skip("the container driver binds lambdabox into its containers, which needs a static build; the -race build is not one (the normal run tests it)")
	}
	podman := requireTool(t, "podman", "apt-get install -y podman runc (.ci/images.sh)")
	if os.Getenv("DOCKER_HOST") == "" {
		t.Skip("no DOCKER_HOST: start Podman's API with podman system service --time=0 unix:///run/lambdabox-podman.sock and export DOCKER_HOST (.ci/run does)")
	}
	cache := filepath.Join(t.TempDir(), "cache")
	if d, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(d, "lambdabox-tests") // the base image tests' layers
	}
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "py"), 0o755)
	os.WriteFile(filepath.Join(dir, "py", "app.py"), []byte("import os\ndef handler(event, context):\n    return {'user': os.getuid(), 'task': os.environ['LAMBDA_TASK_ROOT'], 'event': event}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(`Resources:
  GoFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: `+filepath.Join(root, "examples", "hello-go")+`
      Handler: bootstrap
      Runtime: provided.al2023
  PyFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: py
      Handler: app.handler
      Runtime: python3.13
      MemorySize: 256
`), 0o644)
	s := startServeTimeout(t, 15*time.Minute, dir, "--driver", "container", "--cache", cache, "--emulator", rieBin, "--no-watch")
	if resp, body := s.invoke(t, "GoFn", `{"name":"box"}`); resp.StatusCode != 200 || !strings.Contains(body, "Hello, box!") {
		t.Errorf("GoFn: %d %s\nstdout:\n%s", resp.StatusCode, body, s.Stdout)
	}
	if resp, body := s.invoke(t, "PyFn", `{"k":1}`); resp.StatusCode != 200 || !strings.Contains(body, `"user": 993`) || !strings.Contains(body, `"task": "/var/task"`) {
		t.Errorf("PyFn: %d %s\nstdout:\n%s", resp.StatusCode, body, s.Stdout)
	}
	waitFor(t, "the REPORT of PyFn's 256 MB", func() bool { return strings.Contains(s.Stdout.String(), "Memory Size: 256 MB") })
	s.stop(t)
	checkNoContainers(t, podman, s)

	// The process driver runs Zip functions as host processes, and an
	// Image function (built by lambdabox build from its Dockerfile) in a
	// container beside them.
	img := filepath.Join(dir, "img")
	os.Mkdir(img, 0o755)
	os.WriteFile(filepath.Join(img, "app.py"), []byte("import os\ndef handler(event, context):\n    return {'image': True, 'user': os.getuid()}\n"), 0o644)
	os.WriteFile(filepath.Join(img, "Dockerfile"), []byte("FROM lambdabox/python3.13\nCOPY app.py ${LAMBDA_TASK_ROOT}/\nCMD [\"app.handler\"]\n"), 0o644)
	mixed := filepath.Join(dir, "mixed.yaml")
	os.WriteFile(mixed, []byte(`Resources:
  PyFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: py
      Handler: app.handler
      Runtime: python3.13
  ImgFn:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
    Metadata:
      DockerContext: img
      Dockerfile: Dockerfile
`), 0o644)
	s = startServeTimeout(t, 15*time.Minute, dir, "-t", mixed, "--cache", cache, "--emulator", rieBin, "--no-watch")
	if resp, body := s.invoke(t, "ImgFn", `{}`); resp.StatusCode != 200 || !strings.Contains(body, `"image": true`) || !strings.Contains(body, `"user": 993`) {
		t.Errorf("ImgFn: %d %s\nstdout:\n%s", resp.StatusCode, body, s.Stdout)
	}
	if resp, body := s.invoke(t, "PyFn", `{}`); resp.StatusCode != 200 || strings.Contains(body, `"user": 993`) || !strings.Contains(body, `"task": "`+filepath.Join(dir, "py")) {
		t.Errorf("PyFn on the process driver: %d %s", resp.StatusCode, body)
	}
	table := s.Stderr.String()
	if !regexp.MustCompile(`ImgFn\s+Image\s+container`).MatchString(table) || !regexp.MustCompile(`PyFn\s+python3.13\s+process`).MatchString(table) {
		t.Errorf("the table does not say which driver runs what:\n%s", table)
	}
	s.stop(t)
	checkNoContainers(t, podman, s)
}

// checkNoContainers fails t if the engine lists containers of the exited
// lambdabox s.
func checkNoContainers(t *testing.T, podman string, s *server) {
	t.Helper()
	out, err := exec.Command(podman, "ps", "-a", "--filter", "label=dev.lambdabox.owner", "--format", "{{.ID}} {{.Labels}}").Output()
	if err != nil {
		t.Fatalf("podman ps: %v", err)
	}
	if left := strings.TrimSpace(string(out)); left != "" {
		// Containers of other lambdabox processes (tests running beside
		// this one) may be listed; this serve's own carry its pid.
		if strings.Contains(left, "/"+strconv.Itoa(s.cmd.Process.Pid)+"/") {
			t.Errorf("containers left after serve exited:\n%s", left)
		}
	}
}
