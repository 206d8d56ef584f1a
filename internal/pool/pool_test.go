package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

func newTestPool(t *testing.T, d *sandboxtest.Driver, cfg Config) *Pool {
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
	res, err := p.Invoke(ctx, &function.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: []byte(payload)}})
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
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(100 * time.Millisecond)
		running.Add(-1)
		return p, nil
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
	if most.Load() != 2 || d.Started() != 2 {
		t.Errorf("%d invokes ran at once in %d environments; want 2 and 2", most.Load(), d.Started())
	}
}

func TestPoolThrottlesWithoutQueue(t *testing.T) {
	release := make(chan struct{})
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) { <-release; return p, nil }}
	// The throttle is at once, however long a settling slot may be waited for.
	p := newTestPool(t, d, Config{MaxConcurrency: 1, QueueTimeout: time.Hour})
	first := make(chan error, 1)
	go func() { _, err := invoke(context.Background(), p, `{}`); first <- err }()
	for deadline := time.Now().Add(5 * time.Second); d.Started() == 0; time.Sleep(5 * time.Millisecond) {
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

// A client that invokes again as soon as it has its answer is not
// throttled at the limit: its last invoke's slot may still be settling
// (END, REPORT, the runtime's next), and that is not an invoke running.
func TestPoolDoesNotThrottleASettlingSlot(t *testing.T) {
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) { return p, nil }}
	p := newTestPool(t, d, Config{MaxConcurrency: 1, QueueTimeout: 10 * time.Second})
	for i := range 300 {
		if _, err := invoke(context.Background(), p, `{}`); err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
	}
}

// An idle environment is spun down after the keep-alive and started again
// by the next invoke. Closing the pool while the reaper is spinning one
// down waits for it (go test -race saw both shut the environment down).
func TestPoolKeepAlive(t *testing.T) {
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) { return p, nil }, StopDelay: 100 * time.Millisecond}
	p := newTestPool(t, d, Config{MaxConcurrency: 1, Queue: true, QueueTimeout: 10 * time.Second, KeepAlive: 50 * time.Millisecond})
	spunDown := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); d.Stopped() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("environment not spun down (%d stops, want %d)", d.Stopped(), n)
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
	if n := d.Started(); n != 2 {
		t.Errorf("runtime started %d times, want 2", n)
	}
	spunDown(2) // the cleanup's Close now runs while the runtime stops
}

// Close with a context that an earlier shutdown stage has used up, while
// an invoke is in flight: the environment is not closed under the invoke
// and its settle (go test -race saw Close and Settle both run on it, and
// the invoke failed with the runtime stopped under it). The invoke
// completes, and its environment is closed once, after it has settled.
func TestPoolCloseWhileInvokeInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) {
		close(entered)
		<-release
		return p, nil
	}}
	p := newTestPool(t, d, Config{MaxConcurrency: 2})
	got := make(chan error, 1)
	go func() {
		answer, err := invoke(context.Background(), p, `{"in":"flight"}`)
		if err == nil && answer != `{"in":"flight"}` {
			err = errors.New("answer " + answer)
		}
		got <- err
	}()
	<-entered
	usedUp, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(usedUp) }()
	if err := <-closed; err == nil || !strings.Contains(err.Error(), "still busy") {
		t.Errorf("Close: %v, want the busy environment reported", err)
	}
	if d.Stopped() != 0 {
		t.Errorf("the busy environment was stopped under its invoke")
	}
	close(release)
	if err := <-got; err != nil {
		t.Errorf("the invoke in flight: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); d.Stopped() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("environment stopped %d times after its settle, want 1", d.Stopped())
		}
	}
	if _, err := invoke(context.Background(), p, `{}`); err == nil {
		t.Error("invoke after Close succeeded")
	}
}

// Close with time to spare waits for the settle of an invoke in flight,
// then closes every environment.
func TestPoolCloseWaitsForSettles(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) {
		close(entered)
		<-release
		return p, nil
	}}
	p := newTestPool(t, d, Config{MaxConcurrency: 1})
	got := make(chan error, 1)
	go func() { _, err := invoke(context.Background(), p, `{}`); got <- err }()
	<-entered
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- p.Close(ctx)
	}()
	close(release)
	if err := <-got; err != nil {
		t.Errorf("the invoke in flight: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if d.Stopped() != 1 {
		t.Errorf("environment stopped %d times, want 1", d.Stopped())
	}
}

func invokeAs(ctx context.Context, p *Pool, tenant string) error {
	id := fmt.Sprintf("request-%d", requests.Add(1))
	res, err := p.Invoke(ctx, &function.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: []byte(`{}`), TenantID: tenant}})
	if err == nil && res.Error {
		err = errors.New(string(res.Payload))
	}
	return err
}

// An environment serves one tenant: each tenant gets its own while the
// limit allows, warm invokes go back to the tenant's own, and past the
// limit an idle environment is shut down before another tenant's invoke
// starts it afresh.
func TestPoolKeepsTenantsApart(t *testing.T) {
	for _, c := range []struct {
		name            string
		max             int
		tenants         []string
		started, stoped int
	}{
		{"one each", 2, []string{"a", "b", "a", "b", "a"}, 2, 0},
		{"no tenants", 2, []string{"", "", ""}, 1, 0},
		{"reassigned past the limit", 1, []string{"a", "a", "b", "a"}, 3, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &sandboxtest.Driver{Handler: sandboxtest.FakeHandler}
			p := newTestPool(t, d, Config{MaxConcurrency: c.max})
			for _, tenant := range c.tenants {
				if err := invokeAs(context.Background(), p, tenant); err != nil {
					t.Fatalf("tenant %q: %v", tenant, err)
				}
				waitSettled(t, p)
			}
			if got := d.Started(); got != c.started {
				t.Errorf("environments started = %d, want %d", got, c.started)
			}
			if got := d.Stopped(); got != c.stoped {
				t.Errorf("environments stopped = %d, want %d", got, c.stoped)
			}
		})
	}
}

// A pre-warmed environment that has run no invoke goes to the first
// tenant that needs one, without a restart.
func TestPoolGivesAPreWarmedEnvironmentToATenant(t *testing.T) {
	d := &sandboxtest.Driver{Handler: sandboxtest.FakeHandler}
	p := newTestPool(t, d, Config{MaxConcurrency: 1})
	if err := p.Init(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := invokeAs(context.Background(), p, "a"); err != nil {
		t.Fatal(err)
	}
	if got := d.Started(); got != 1 {
		t.Errorf("environments started = %d, want the pre-warmed one only", got)
	}
}

// waitSettled waits until no environment is busy: an invoke settles after
// its answer.
func waitSettled(t *testing.T, p *Pool) {
	t.Helper()
	for range 1000 {
		p.mu.Lock()
		busy := p.busy
		p.mu.Unlock()
		if busy == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("an invoke did not settle")
}
