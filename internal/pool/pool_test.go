package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// goRuntimes is a sandbox driver whose "processes" are goroutines running
// a Runtime API client loop: next, handler, response.
type goRuntimes struct {
	handler   func(payload []byte) []byte
	stopDelay time.Duration // how long a runtime takes to stop
	started   atomic.Int32
	stopped   atomic.Int32 // runtimes asked to stop
}

func (d *goRuntimes) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	var api string
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_RUNTIME_API="); ok {
			api = "http://" + v + "/2018-06-01/runtime/invocation/"
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &goRuntime{done: make(chan struct{}), cancel: cancel, d: d}
	d.started.Add(1)
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"next", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			payload, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
			post, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+id+"/response", bytes.NewReader(d.handler(payload)))
			if resp, err := http.DefaultClient.Do(post); err == nil {
				resp.Body.Close()
			}
		}
	}()
	return r, nil
}

type goRuntime struct {
	done   chan struct{}
	cancel context.CancelFunc
	d      *goRuntimes
	once   sync.Once
}

func (r *goRuntime) Done() <-chan struct{} { return r.done }
func (r *goRuntime) Exit() sandbox.ExitStatus {
	return sandbox.ExitStatus{Code: -1, Signal: "terminated"}
}
func (r *goRuntime) Stop(ctx context.Context) error {
	r.once.Do(func() {
		r.d.stopped.Add(1)
		time.Sleep(r.d.stopDelay)
	})
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newTestPool(t *testing.T, d *goRuntimes, cfg Config) *Pool {
	t.Helper()
	fn := function.Config{Command: []string{"bootstrap"}, Dir: t.TempDir(), Timeout: 10 * time.Second}.WithDefaults()
	extDir := t.TempDir()
	cfg.New = func(int, bool) (*environment.Environment, error) {
		return environment.New(environment.Config{
			Function: fn, Driver: d, RuntimeAPIAddr: "127.0.0.1:0", ExtensionsDir: extDir, Output: io.Discard,
		})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

var requests atomic.Int64

func invoke(ctx context.Context, p *Pool, payload string) (string, error) {
	id := fmt.Sprintf("request-%d", requests.Add(1))
	res, err := p.Invoke(ctx, &environment.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: []byte(payload)}})
	if err != nil {
		return "", err
	}
	if res.Error {
		return "", errors.New(string(res.Payload))
	}
	return string(res.Payload), nil
}

func TestPoolRunsUpToMaxConcurrency(t *testing.T) {
	var running, most atomic.Int32
	d := &goRuntimes{handler: func(p []byte) []byte {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(100 * time.Millisecond)
		running.Add(-1)
		return p
	}}
	p := newTestPool(t, d, Config{MaxConcurrency: 2, Queue: true, QueueTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf(`{"n":%d}`, i)
			got, err := invoke(context.Background(), p, want)
			if err == nil && got != want {
				err = errors.New("answer " + got + ", want " + want)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if most.Load() != 2 || d.started.Load() != 2 {
		t.Errorf("%d invokes ran at once in %d environments; want 2 and 2", most.Load(), d.started.Load())
	}
}

func TestPoolThrottlesWithoutQueue(t *testing.T) {
	release := make(chan struct{})
	d := &goRuntimes{handler: func(p []byte) []byte { <-release; return p }}
	p := newTestPool(t, d, Config{MaxConcurrency: 1})
	first := make(chan error, 1)
	go func() { _, err := invoke(context.Background(), p, `{}`); first <- err }()
	for deadline := time.Now().Add(5 * time.Second); d.started.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first invoke never started a runtime")
		}
	}
	if _, err := invoke(context.Background(), p, `{}`); !errors.Is(err, ErrThrottled) {
		t.Errorf("second invoke: %v, want ErrThrottled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first invoke: %v", err)
	}
}

// An idle environment is spun down after the keep-alive and started again
// by the next invoke. Closing the pool while the reaper is spinning one
// down waits for it (go test -race saw both shut the environment down).
func TestPoolKeepAlive(t *testing.T) {
	d := &goRuntimes{handler: func(p []byte) []byte { return p }, stopDelay: 100 * time.Millisecond}
	p := newTestPool(t, d, Config{MaxConcurrency: 1, Queue: true, QueueTimeout: 10 * time.Second, KeepAlive: 50 * time.Millisecond})
	spunDown := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); d.stopped.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("environment not spun down (%d stops, want %d)", d.stopped.Load(), n)
			}
		}
	}
	if _, err := invoke(context.Background(), p, `{}`); err != nil {
		t.Fatal(err)
	}
	spunDown(1)
	if got, err := invoke(context.Background(), p, `{"again":1}`); err != nil || got != `{"again":1}` {
		t.Fatalf("invoke after spin-down: %q, %v", got, err)
	}
	if n := d.started.Load(); n != 2 {
		t.Errorf("runtime started %d times, want 2", n)
	}
	spunDown(2) // the cleanup's Close now runs while the runtime stops
}
