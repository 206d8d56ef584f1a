package controlplane_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/controlplane"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/invoke"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/store"
)

// serviceRunner is the tests' controlplane.Runner: Zip functions of the
// python and provided runtimes on the function service, with the process
// driver (python3 -m awslambdaric <handler>, PYTHONPATH=code; provided:
// code/bootstrap). lambdabox serve's own adapter replaces it.
type serviceRunner struct {
	svc    *service.Service
	python string // an interpreter with awslambdaric

	mu       sync.Mutex
	deployed map[string]bool // service keys
}

func (r *serviceRunner) spec(fn controlplane.Function) (service.FunctionSpec, error) {
	cfg := function.Config{
		Name: fn.Name, Version: fn.Version, Region: fn.Region, AccountID: fn.AccountID, Handler: fn.Handler,
		Timeout: fn.Timeout, MemoryMB: fn.MemoryMB, Dir: fn.CodeDir, TaskRoot: fn.CodeDir,
		TenantIsolation: fn.TenantIsolation,
	}
	for k, v := range fn.Env {
		cfg.Env = append(cfg.Env, k+"="+v)
	}
	switch rt := fn.Runtime; {
	case fn.PackageType == "Image":
		return service.FunctionSpec{}, errors.New("image functions need the container driver")
	case strings.HasPrefix(rt, "python"):
		module, _, _ := strings.Cut(fn.Handler, ".")
		if _, err := os.Stat(filepath.Join(fn.CodeDir, strings.ReplaceAll(module, "/", string(filepath.Separator))+".py")); err != nil {
			return service.FunctionSpec{}, fmt.Errorf("Runtime.ImportModuleError: Unable to import module '%s': no %s.py in the code", module, module)
		}
		cfg.Command = []string{r.python, "-m", "awslambdaric", fn.Handler}
		cfg.Env = append(cfg.Env, "PYTHONPATH="+fn.CodeDir)
		cfg.ExecutionEnv = "AWS_Lambda_" + rt
	case strings.HasPrefix(rt, "provided"):
		boot := filepath.Join(fn.CodeDir, "bootstrap")
		if fi, err := os.Stat(boot); err != nil || fi.Mode()&0o111 == 0 {
			return service.FunctionSpec{}, errors.New("Runtime.InvalidEntrypoint: no executable bootstrap in the code")
		}
		cfg.Command = []string{boot}
	default:
		return service.FunctionSpec{}, fmt.Errorf("runtime %s: not run by these tests", rt)
	}
	spec := service.FunctionSpec{Function: cfg, MaxConcurrency: 2, Queue: true, ExtensionsDir: "/nonexistent"}
	if fn.URL != nil {
		spec.FunctionURL, spec.URLStreaming = "127.0.0.1:0", fn.URL.InvokeMode == "RESPONSE_STREAM"
	}
	if n := fn.ReservedConcurrency; n != nil && *n > 0 {
		spec.MaxConcurrency = *n
	}
	return spec, nil
}

func (r *serviceRunner) Deploy(ctx context.Context, fn controlplane.Function) error {
	spec, err := r.spec(fn)
	if err != nil {
		return err
	}
	key := service.Key(spec.Function)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deployed[key] {
		return r.svc.Replace(ctx, spec)
	}
	if err := r.svc.Add(ctx, spec); err != nil {
		return err
	}
	r.deployed[key] = true
	return nil
}

func (r *serviceRunner) Undeploy(ctx context.Context, name, version string) error {
	key := service.Key(function.Config{Name: name, Version: version})
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.deployed[key] {
		return nil
	}
	delete(r.deployed, key)
	return r.svc.Remove(ctx, key)
}

func (r *serviceRunner) Route(name, alias string, to *controlplane.Routing) error {
	if to == nil {
		r.svc.RemoveAlias(name, alias)
		return nil
	}
	r.svc.SetAlias(name, alias, invoke.Alias{Version: to.Version, Weights: to.Weights})
	return nil
}

// FunctionURL implements controlplane.URLer.
func (r *serviceRunner) FunctionURL(name string) string {
	if addr := r.svc.FunctionURLAddr(name); addr != "" {
		return "http://" + addr + "/"
	}
	return ""
}

var (
	_ controlplane.Runner = (*serviceRunner)(nil)
	_ controlplane.URLer  = (*serviceRunner)(nil)
)

// local is a running local Lambda service with its control plane, on a
// loopback port, keeping its state in dir.
type local struct {
	URL    string
	dir    string
	out    *bytes.Buffer
	st     *store.Store
	cp     *controlplane.Server
	cancel context.CancelFunc
	done   chan error
	drv    *process.Driver
}

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// requirePython returns an interpreter that imports awslambdaric, as a
// real path (a pyenv shim needs a PATH the functions do not get).
func requirePython(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		out, err := exec.Command("python3", "-c", "import sys, awslambdaric; print(sys.executable)").CombinedOutput()
		pythonPath, pythonErr = strings.TrimSpace(string(out)), err
	})
	if pythonErr != nil {
		t.Fatalf("python3 cannot import awslambdaric: %v %s\ninstall it with: python3 -m pip install awslambdaric (.ci/run does this)", pythonErr, pythonPath)
	}
	return pythonPath
}

// startLocal starts the service on the state in dir ("": a new one); the
// test's cleanup stops it.
func startLocal(t testing.TB, dir string) *local {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	drv, err := process.New(process.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l := &local{dir: dir, st: st, drv: drv, done: make(chan error, 1), out: &bytes.Buffer{}}
	runner := &serviceRunner{python: requirePython(t), deployed: map[string]bool{}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l.cp, err = controlplane.New(controlplane.Config{Store: st, Runner: runner, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	runner.svc, err = service.New(service.Config{InvokeAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: drv, Control: l.cp, Output: syncWriter{w: l.out}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- runner.svc.Run(ctx) }()
	select {
	case <-runner.svc.Ready():
	case err := <-l.done:
		t.Fatalf("Run: %v", err)
	}
	l.URL = "http://" + runner.svc.InvokeAddr()
	t.Cleanup(func() { l.stop(t) })
	return l
}

// stop shuts the service down and closes its state; later calls do
// nothing.
func (l *local) stop(t testing.TB) {
	t.Helper()
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	select {
	case err := <-l.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the service did not stop within 20s")
	}
	if err := l.cp.Close(); err != nil {
		t.Error(err)
	}
	if err := l.st.Close(); err != nil {
		t.Error(err)
	}
	if err := l.drv.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

var outMu sync.Mutex

type syncWriter struct{ w *bytes.Buffer }

func (s syncWriter) Write(p []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return s.w.Write(p)
}

// zipFiles zips files (name → content; a name ending in "*" is
// executable, the star dropped) into path.
func zipFiles(t testing.TB, path string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		h := &zip.FileHeader{Name: strings.TrimSuffix(name, "*"), Method: zip.Deflate}
		h.SetMode(0o644)
		if strings.HasSuffix(name, "*") {
			h.SetMode(0o755)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if path != "" {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// pyApp is a Python handler answering with its code mark, the version
// that ran and the ARN it was invoked by.
func pyApp(mark string) map[string]string {
	return map[string]string{"app.py": `import os

def handler(event, context):
    return {"code": "` + mark + `", "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "arn": context.invoked_function_arn, "event": event}
`}
}

var (
	goOnce sync.Once
	goBin  []byte
	goErr  error
)

// goBootstrap builds testdata/gofn (aws-lambda-go) once.
func goBootstrap(t testing.TB) []byte {
	t.Helper()
	goOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gofn-")
		if err != nil {
			goErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/gofn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			goErr = fmt.Errorf("building testdata/gofn: %v\n%s", err, b)
			return
		}
		goBin, goErr = os.ReadFile(out)
	})
	if goErr != nil {
		t.Fatal(goErr)
	}
	return goBin
}

// cmdEnv is the environment of the AWS CLI and boto3: dummy credentials,
// a region, no config files of the user's.
func cmdEnv(t testing.TB) []string {
	home := t.TempDir()
	env := []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}
