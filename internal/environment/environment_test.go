package environment

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// newTestEnv returns an environment whose runtimes are d's goroutines,
// with a 1 s timeout.
func newTestEnv(t *testing.T, d *sandboxtest.Driver) (*Environment, *syncbuf.Buffer) {
	t.Helper()
	return newTestEnvConfig(t, d, func(*Config) {})
}

// newTestEnvConfig is newTestEnv with the Config changed by set.
func newTestEnvConfig(t *testing.T, d *sandboxtest.Driver, set func(*Config)) (*Environment, *syncbuf.Buffer) {
	t.Helper()
	out := &syncbuf.Buffer{}
	cfg := Config{
		Function:       testFunction(t),
		Driver:         d,
		RuntimeAPIAddr: "127.0.0.1:0",
		ExtensionsDir:  t.TempDir(),
		Output:         out,
	}
	set(&cfg)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e, out
}

// testFunction is the function of the tests' environments: a 1 s timeout.
func testFunction(t *testing.T) function.Config {
	return function.Config{Command: []string{"bootstrap"}, Dir: t.TempDir(), Timeout: time.Second}.WithDefaults()
}

func invokeEnv(e *Environment, id, payload string) *function.Result {
	res := e.Invoke(context.Background(), &function.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: []byte(payload)}})
	e.Settle()
	return res
}

// behaviours answers by payload: "slow" outlives the 1 s timeout,
// "crash" exits the runtime, "fail" returns an error, others are echoed.
func behaviours(payload []byte) ([]byte, error) {
	switch string(payload) {
	case `"slow"`:
		time.Sleep(1500 * time.Millisecond)
	case `"crash"`:
		return nil, sandboxtest.Exit
	case `"fail"`:
		return nil, errors.New("it failed")
	}
	return payload, nil
}

func TestEnvironmentInvokes(t *testing.T) {
	d := &sandboxtest.Driver{Handler: behaviours}
	e, out := newTestEnv(t, d)

	res := invokeEnv(e, "id-1", `{"a":1}`)
	if res.Error || string(res.Payload) != `{"a":1}` {
		t.Fatalf("echo: %+v", res)
	}
	for _, line := range []string{"START RequestId: id-1 Version: $LATEST", "END RequestId: id-1", "REPORT RequestId: id-1"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	res = invokeEnv(e, "id-2", `"fail"`)
	if !res.Error || res.ErrorType != "Handler.Error" || !strings.Contains(string(res.Payload), "it failed") {
		t.Errorf("function error: %+v %s", res, res.Payload)
	}
	if d.Started() != 1 {
		t.Errorf("%d runtimes started, want 1 (a function error keeps the runtime)", d.Started())
	}
}

// A timeout and a crash each end the runtime; the next invoke starts a new
// one in the same environment.
func TestEnvironmentResets(t *testing.T) {
	for _, c := range []struct{ payload, errorType string }{
		{`"slow"`, "Sandbox.Timedout"},
		{`"crash"`, "Runtime.ExitError"},
	} {
		t.Run(c.errorType, func(t *testing.T) {
			d := &sandboxtest.Driver{Handler: behaviours}
			e, out := newTestEnv(t, d)
			res := invokeEnv(e, "bad", c.payload)
			if !res.Error || res.ErrorType != c.errorType || !strings.Contains(string(res.Payload), "RequestId: bad") {
				t.Fatalf("got %s %s, want %s", res.ErrorType, res.Payload, c.errorType)
			}
			if !strings.Contains(out.String(), "REPORT RequestId: bad") {
				t.Errorf("no REPORT line:\n%s", out)
			}
			if res := invokeEnv(e, "good", `"ok"`); res.Error || string(res.Payload) != `"ok"` {
				t.Fatalf("next invoke: %s %s", res.ErrorType, res.Payload)
			}
			if d.Started() != 2 {
				t.Errorf("%d runtimes started, want 2", d.Started())
			}
		})
	}
}

// A spun-down environment (Shutdown) starts its runtime again on demand.
func TestEnvironmentShutdownAndInitAgain(t *testing.T) {
	d := &sandboxtest.Driver{Handler: behaviours}
	e, _ := newTestEnv(t, d)
	if err := e.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Shutdown(context.Background(), ReasonSpindown)
	if d.Stopped() != 1 {
		t.Fatalf("%d runtimes stopped, want 1", d.Stopped())
	}
	if res := invokeEnv(e, "after", `"x"`); res.Error || string(res.Payload) != `"x"` {
		t.Fatalf("invoke after shutdown: %s %s", res.ErrorType, res.Payload)
	}
	if d.Started() != 2 {
		t.Errorf("%d runtimes started, want 2", d.Started())
	}
}
