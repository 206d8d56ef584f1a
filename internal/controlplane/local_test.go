package controlplane_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/controlplane"
	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/store"
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
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// lambdabox serve's own wiring: the service sends what the Invoke API
	// does not route to the control plane, whose functions launch.Runner
	// runs on the service.
	svc, err := service.New(service.Config{InvokeAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: drv,
		Control: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l.cp.ServeHTTP(w, r) }),
		Output:  syncWriter{w: l.out}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	lch, err := launch.New(launch.Config{Python: requirePython(t), BaseEnv: os.Environ(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l.cp, err = controlplane.New(controlplane.Config{Store: st, Runner: launch.NewRunner(lch, svc, nil), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-l.done:
		t.Fatalf("Run: %v", err)
	}
	l.URL = "http://" + svc.InvokeAddr()
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
