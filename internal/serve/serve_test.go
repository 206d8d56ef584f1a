package serve

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// TestRunControlPlaneOnly serves no template: the control plane answers on
// the Invoke API's address, and cancelling the context ends Run cleanly.
func TestRunControlPlaneOnly(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // no template.yaml here
	var stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Addr: "127.0.0.1:0", URLBasePort: 1, Driver: launch.Process, NoWatch: true,
			StateDir: filepath.Join(dir, "state"), ShutdownTimeout: time.Second, Stderr: &stderr,
		})
	}()
	addr := regexp.MustCompile(`Invoke API http://([0-9.:]+)/`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = addr.FindStringSubmatch(stderr.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no Invoke API address in %q", stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended at start: %v", err)
		default:
		}
	}
	if !strings.Contains(stderr.String(), "lambdabox serve: 0 functions") {
		t.Errorf("table: %q", stderr.String())
	}
	resp, err := http.Get("http://" + m[1] + "/2015-03-31/functions/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Functions":[]`) {
		t.Errorf("ListFunctions: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after its context was cancelled")
	}
}

// TestRunErrors: what Run refuses before it serves anything.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("Resources: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no port", Config{Addr: "127.0.0.1", Driver: launch.Process}, "--addr"},
		{"port 0 without a URL base", Config{Addr: "127.0.0.1:0", Driver: launch.Process}, "--function-url-base-port"},
		{"missing template", Config{Addr: "127.0.0.1:0", URLBasePort: 1, Driver: launch.Process, Template: filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{"malformed template", Config{Addr: "127.0.0.1:0", URLBasePort: 1, Driver: launch.Process, Template: bad}, "bad.yaml"},
		{"missing env vars", Config{Addr: "127.0.0.1:0", URLBasePort: 1, Driver: launch.Process, EnvVars: filepath.Join(dir, "env.json"), StateDir: dir}, "--env-vars"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
