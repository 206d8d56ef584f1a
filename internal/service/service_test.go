package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeRuntimeEnv) == "1" { // the process driver started us
		runFakeRuntime()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeSpec is a function run by the fake runtime, answering with version.
func fakeSpec(name, version string) FunctionSpec {
	return FunctionSpec{
		Function: function.Config{
			Name:    name,
			Timeout: 10 * time.Second,
			Command: []string{os.Args[0]},
			Dir:     os.TempDir(),
			Env:     []string{fakeRuntimeEnv + "=1", "FAKE_VERSION=" + version},
		},
		MaxConcurrency: 1,
		Queue:          true,
		ExtensionsDir:  "/nonexistent",
	}
}

// running is a service under test.
type running struct {
	*Service
	out, log *syncbuf.Buffer
	cancel   context.CancelFunc
	done     chan error
}

// startService adds specs to a new service on loopback ports and runs it;
// the test's cleanup stops it and checks that Run returned wantErr (a
// substring; "" for none).
func startService(t *testing.T, cfg Config, specs ...FunctionSpec) *running {
	t.Helper()
	drv, err := process.New(process.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close(context.Background()) })
	r := &running{out: &syncbuf.Buffer{}, log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cfg.Driver = drv
	if cfg.InvokeAddr == "" {
		cfg.InvokeAddr = "127.0.0.1:0"
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:0"
	}
	cfg.Output = r.out
	cfg.Log = slog.New(slog.NewTextHandler(r.log, nil))
	if r.Service, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := r.Add(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		r.stop(t)
		waitFor(t, "every runtime to end after Run", func() bool { return len(runtimes(t)) == 0 })
	})
	return r
}

// stop ends Run and returns its error; later calls return nil.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// invoke calls the Invoke API for name with payload and headers h.
func (r *running) invoke(t testing.TB, name, payload string, h ...string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodPost, "http://"+r.InvokeAddr()+"/2015-03-31/functions/"+name+"/invocations", payload, h...)
}

func do(t testing.TB, method, url, body string, h ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return &http.Response{StatusCode: -1, Header: http.Header{}}, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// version is the FAKE_VERSION an answer came from.
func version(t testing.TB, body string) string { t.Helper(); return answerOf(t, body).Version }

// pid is the process id of the fake runtime an answer came from.
func pid(t testing.TB, body string) int { t.Helper(); return answerOf(t, body).PID }

// answerOf decodes a fake runtime's answer.
func answerOf(t testing.TB, body string) fakeAnswer {
	t.Helper()
	var a fakeAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Errorf("answer %q: %v", body, err)
	}
	return a
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// invokeAll runs n invokes of payload at once.
func invokeAll(t *testing.T, r *running, name string, n int, payload string) ([]*http.Response, []string) {
	resps := make([]*http.Response, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { resps[i], bodies[i] = r.invoke(t, name, payload) })
	}
	wg.Wait()
	return resps, bodies
}

// Moved from cmd/lambdabox TestPoolThrottles: past the concurrency limit,
// without queueing, Lambda's 429 with Reason and Retry-After; with
// queueing, every invoke waits its turn.
func TestThrottles(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.MaxConcurrency, spec.Queue = 5, false
	r := startService(t, Config{}, spec)
	resps, bodies := invokeAll(t, r, "f", 10, `{"op":"sleep","ms":700}`)
	ok, throttled := 0, 0
	for i, resp := range resps {
		switch resp.StatusCode {
		case 200:
			ok++
		case 429:
			throttled++
			var m map[string]any
			_ = json.Unmarshal([]byte(bodies[i]), &m)
			if resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" || m["Reason"] != "ReservedFunctionConcurrentInvocationLimitExceeded" || resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 not in Lambda's shape: %v %s", resp.Header, bodies[i])
			}
		default:
			t.Errorf("status %d: %s", resp.StatusCode, bodies[i])
		}
	}
	if ok != 5 || throttled != 5 {
		t.Errorf("%d succeeded and %d were throttled, want 5 and 5", ok, throttled)
	}

	if err := r.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	waitFor(t, "every runtime to end after Run", func() bool { return len(runtimes(t)) == 0 })
	spec = fakeSpec("q", "v1")
	spec.MaxConcurrency = 5
	q := startService(t, Config{}, spec)
	resps, _ = invokeAll(t, q, "q", 10, `{"op":"sleep","ms":300}`)
	for i, resp := range resps {
		if resp.StatusCode != 200 {
			t.Errorf("queued invoke %d: %d", i, resp.StatusCode)
		}
	}
}

// Moved from cmd/lambdabox TestAsyncRetriesThenRecordsFailure: a failing
// Event runs three times, then is listed as an on-failure record; a good
// one runs once and is not.
func TestAsyncRetriesThenRecordsFailure(t *testing.T) {
	spec := fakeSpec("asyncfn", "v1")
	spec.Async.RetryDelay = 100 * time.Millisecond
	r := startService(t, Config{}, spec)
	resp, _ := r.invoke(t, "asyncfn", `{"op":"error"}`, "X-Amz-Invocation-Type", "Event")
	if resp.StatusCode != 202 {
		t.Fatalf("Event: %d", resp.StatusCode)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	var failed []map[string]any
	waitFor(t, "the failed event to be recorded", func() bool {
		_, body := do(t, http.MethodGet, "http://"+r.InvokeAddr()+"/lambdabox/functions/asyncfn/failed-events", "")
		failed = nil
		_ = json.Unmarshal([]byte(body), &failed)
		return len(failed) == 1
	})
	rc, _ := failed[0]["requestContext"].(map[string]any)
	if rc["requestId"] != id || rc["approximateInvokeCount"].(float64) != 3 || rc["condition"] != "RetriesExhausted" {
		t.Errorf("failure record %v", failed[0])
	}
	if n := strings.Count(r.out.String(), "START RequestId: "+id); n != 3 {
		t.Errorf("the event ran %d times, want 3 (1 + 2 retries)", n)
	}
	resp, _ = r.invoke(t, "asyncfn", `{"data":"async-ok"}`, "X-Amz-Invocation-Type", "Event")
	okID := resp.Header.Get("X-Amzn-Requestid")
	waitFor(t, "the good event", func() bool { return strings.Contains(r.out.String(), "END RequestId: "+okID) })
	if n := strings.Count(r.out.String(), "START RequestId: "+okID); n != 1 {
		t.Errorf("good event ran %d times", n)
	}
}

// Many functions on one Invoke API, with their function URLs and API
// routes on the shared API Gateway front; the first added answers to
// "function".
func TestManyFunctionsAndFronts(t *testing.T) {
	a, b := fakeSpec("a", "a1"), fakeSpec("b", "b1")
	a.FunctionURL = "127.0.0.1:0"
	a.Routes = []httpfront.Route{{Method: "GET", Path: "/a/{id}", Version: "2.0"}}
	b.Routes = []httpfront.Route{{Path: "/b/{proxy+}", Version: "2.0"}}
	r := startService(t, Config{}, a, b)
	for name, want := range map[string]string{"a": "a1", "b": "b1", "function": "a1", "arn:aws:lambda:us-east-1:012345678912:function:b": "b1"} {
		resp, body := r.invoke(t, name, `{}`)
		if resp.StatusCode != 200 || version(t, body) != want {
			t.Errorf("%s: %d %s, want version %s", name, resp.StatusCode, body, want)
		}
	}
	if resp, _ := r.invoke(t, "c", `{}`); resp.StatusCode != 404 {
		t.Errorf("unknown function: %d", resp.StatusCode)
	}
	if got := r.Functions(); strings.Join(got, ",") != "a,b" {
		t.Errorf("Functions() = %v", got)
	}
	// The function URL answers with the function's JSON as the body.
	resp, body := do(t, http.MethodGet, "http://"+r.FunctionURLAddr("a")+"/any/path", "")
	if resp.StatusCode != 200 || version(t, body) != "a1" {
		t.Errorf("function URL: %d %s", resp.StatusCode, body)
	}
	if r.FunctionURLAddr("b") != "" {
		t.Error("b has a function URL")
	}
	api := "http://" + r.APIAddr()
	for path, want := range map[string]string{"/a/1": "a1", "/b/x/y": "b1"} {
		resp, body := do(t, http.MethodGet, api+path, "")
		if resp.StatusCode != 200 || version(t, body) != want {
			t.Errorf("API %s: %d %s, want %s", path, resp.StatusCode, body, want)
		}
	}
	if resp, _ := do(t, http.MethodGet, api+"/nope", ""); resp.StatusCode != 404 {
		t.Errorf("API /nope: %d", resp.StatusCode)
	}
	if !strings.Contains(r.log.String(), "serving the Invoke API") || !strings.Contains(r.log.String(), "serving the API Gateway emulation") {
		t.Errorf("log: %s", r.log.String())
	}
}

// Replace while four clients invoke in a loop: no request fails, and the
// answers switch to the new code and stay there.
func TestReplaceUnderLoad(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.MaxConcurrency = 4
	r := startService(t, Config{}, spec)
	var (
		stop     atomic.Bool
		failures atomic.Int32
		mu       sync.Mutex
		seen     [4][]string
		wg       sync.WaitGroup
	)
	for c := range 4 {
		wg.Go(func() {
			for i := 0; i < 2000 && !stop.Load(); i++ {
				resp, body := r.invoke(t, "f", `{"op":"sleep","ms":20}`)
				if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
					failures.Add(1)
					t.Errorf("client %d: %d %s", c, resp.StatusCode, body)
					return
				}
				v := version(t, body)
				mu.Lock()
				if n := len(seen[c]); n == 0 || seen[c][n-1] != v {
					seen[c] = append(seen[c], v)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	next := fakeSpec("f", "v2")
	next.MaxConcurrency = 4
	if err := r.Replace(context.Background(), next); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed during the swap", failures.Load())
	}
	for c, vs := range seen {
		if strings.Join(vs, ",") != "v1,v2" {
			t.Errorf("client %d saw versions %v, want v1 then v2", c, vs)
		}
	}
	if _, body := r.invoke(t, "function", `{}`); version(t, body) != "v2" {
		t.Errorf("after Replace: %s", body)
	}
}

// Remove lets the invoke in flight finish, then the function is gone; the
// others stay. Add of a served name and Replace or Remove of an unknown
// one are refused.
func TestAddRemove(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("a", "a1"), fakeSpec("b", "b1"))
	if err := r.Add(context.Background(), fakeSpec("a", "x")); !errors.Is(err, ErrExists) {
		t.Errorf("Add of a served name: %v", err)
	}
	if err := r.Replace(context.Background(), fakeSpec("nope", "x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replace of an unknown name: %v", err)
	}
	if err := r.Remove(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove of an unknown name: %v", err)
	}
	done := make(chan string, 1)
	go func() {
		resp, body := r.invoke(t, "a", `{"op":"sleep","ms":500,"data":"inflight"}`)
		done <- strings.Join([]string{http.StatusText(resp.StatusCode), body}, " ")
	}()
	waitFor(t, "the invoke to start", func() bool { return strings.Contains(r.out.String(), "fake runtime a1: sleep") })
	if err := r.Remove(context.Background(), "a"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if got := <-done; !strings.HasPrefix(got, "OK ") || !strings.Contains(got, "inflight") {
		t.Errorf("the invoke in flight at Remove: %s", got)
	}
	if resp, _ := r.invoke(t, "a", `{}`); resp.StatusCode != 404 {
		t.Errorf("a after Remove: %d", resp.StatusCode)
	}
	if resp, body := r.invoke(t, "b", `{}`); resp.StatusCode != 200 || version(t, body) != "b1" {
		t.Errorf("b after Remove of a: %d %s", resp.StatusCode, body)
	}
	// Added while running: its function URL starts at once.
	c := fakeSpec("c", "c1")
	c.FunctionURL = "127.0.0.1:0"
	if err := r.Add(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, http.MethodPost, "http://"+r.FunctionURLAddr("c")+"/", "{}"); resp.StatusCode != 200 || version(t, body) != "c1" {
		t.Errorf("function URL of a function added while running: %d %s", resp.StatusCode, body)
	}
}

// Routes that clash with another function's are refused, and change
// nothing.
func TestConflictingRoutes(t *testing.T) {
	a := fakeSpec("a", "a1")
	a.Routes = []httpfront.Route{{Method: "GET", Path: "/items/{id}", Version: "2.0"}}
	r := startService(t, Config{}, a)
	b := fakeSpec("b", "b1")
	b.Routes = []httpfront.Route{{Method: "GET", Path: "/items/{id}", Version: "2.0"}}
	if err := r.Add(context.Background(), b); err == nil {
		t.Fatal("clashing routes accepted")
	}
	if resp, _ := r.invoke(t, "b", `{}`); resp.StatusCode != 404 {
		t.Errorf("b served after its Add failed: %d", resp.StatusCode)
	}
	if resp, body := do(t, http.MethodGet, "http://"+r.APIAddr()+"/items/1", ""); resp.StatusCode != 200 || version(t, body) != "a1" {
		t.Errorf("a's route: %d %s", resp.StatusCode, body)
	}
}

// A taken address fails the start, and names the front.
func TestTakenAddressFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	drv, err := process.New(process.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close(context.Background())
	s, err := New(Config{InvokeAddr: ln.Addr().String(), Driver: drv, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(context.Background(), fakeSpec("f", "v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listening for the Invoke API") {
		t.Errorf("Run on a taken address: %v", err)
	}
}

// The shutdown order: an invoke in flight finishes within the grace; past
// the grace (or when EndGrace ends it) its runtime is stopped and Run
// returns.
func TestShutdownGrace(t *testing.T) {
	t.Run("in flight finishes", func(t *testing.T) {
		r := startService(t, Config{ShutdownTimeout: 5 * time.Second}, fakeSpec("f", "v1"))
		got := make(chan int, 1)
		go func() {
			resp, _ := r.invoke(t, "f", `{"op":"sleep","ms":400}`)
			got <- resp.StatusCode
		}()
		waitFor(t, "the invoke to start", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: sleep") })
		if err := r.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
		if code := <-got; code != 200 {
			t.Errorf("invoke in flight at shutdown: %d", code)
		}
	})
	for _, tc := range []struct {
		name   string
		grace  time.Duration
		end    bool
		reason string
	}{
		{"grace over", 300 * time.Millisecond, false, "the shutdown grace is over"},
		{"grace ended", time.Minute, true, "a second signal ended the shutdown grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := make(chan struct{})
			r := startService(t, Config{ShutdownTimeout: tc.grace, EndGrace: end}, fakeSpec("f", "v1"))
			go func() { // cut short by the shutdown: its error is expected
				resp, err := http.Post("http://"+r.InvokeAddr()+"/2015-03-31/functions/f/invocations", "application/json", strings.NewReader(`{"op":"sleep","ms":60000}`))
				if err == nil {
					resp.Body.Close()
				}
			}()
			waitFor(t, "the invoke to start", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: sleep") })
			r.cancel()
			if tc.end {
				waitFor(t, "the shutdown to begin", func() bool { return strings.Contains(r.log.String(), "shutting down") })
				close(end)
			}
			start := time.Now()
			_ = r.stop(t)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("shutdown took %v", d)
			}
			if !strings.Contains(r.log.String(), tc.reason) {
				t.Errorf("log lacks %q:\n%s", tc.reason, r.log.String())
			}
		})
	}
}

// After Run, the service refuses changes; Close before Run releases the
// functions added.
func TestClosed(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("f", "v1"))
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ctx := context.Background()
	if err := r.Add(ctx, fakeSpec("g", "v1")); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Run: %v", err)
	}
	if err := r.Replace(ctx, fakeSpec("f", "v2")); !errors.Is(err, ErrClosed) {
		t.Errorf("Replace after Run: %v", err)
	}
	if err := r.Remove(ctx, "f"); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Run: %v", err)
	}
	if err := r.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run: %v", err)
	}

	drv, err := process.New(process.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close(ctx)
	s, err := New(Config{Driver: drv, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	spec := fakeSpec("p", "v1")
	spec.RuntimeAPIAddr = "127.0.0.1:0"
	if err := s.Add(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close before Run: %v", err)
	}
	if err := s.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

// Bad input gets a clear error, never a crash.
func TestBadInput(t *testing.T) {
	if _, err := New(Config{InvokeAddr: "no-port"}); err == nil {
		t.Error("New accepted an address without a port")
	}
	s, err := New(Config{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer s.Close(ctx)
	for name, spec := range map[string]FunctionSpec{
		"no driver":      fakeSpec("a", "v1"),
		"no command":     {Function: function.Config{Name: "b"}},
		"bad name":       {Function: function.Config{Name: "a/b", Command: []string{"x"}}},
		"negative limit": {Function: function.Config{Name: "c", Command: []string{"x"}}, MaxConcurrency: -1},
	} {
		if name != "no driver" {
			spec.Driver = &process.Driver{}
		}
		err := s.Add(ctx, spec)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	if got := s.Functions(); len(got) != 0 {
		t.Errorf("functions after failed Adds: %v", got)
	}
}

// Replaces of one function, Adds and Removes of another, and invokes of
// the first, all at once: every invoke of the first succeeds, and the
// race detector sees no race.
func TestConcurrentChanges(t *testing.T) {
	a := fakeSpec("a", "v0")
	a.FunctionURL = "127.0.0.1:0"
	a.Routes = []httpfront.Route{{Method: "GET", Path: "/a", Version: "2.0"}}
	r := startService(t, Config{}, a)
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; i < 500 && !stop.Load(); i++ {
				if resp, body := r.invoke(t, "a", `{}`); resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
					t.Errorf("invoke of a: %d %s", resp.StatusCode, body)
					return
				}
				_ = r.InvokeAddr() + r.APIAddr() + r.FunctionURLAddr("a")
				_ = r.Functions()
			}
		})
	}
	wg.Go(func() {
		for i := range 5 {
			b := fakeSpec("b", "b")
			b.Routes = []httpfront.Route{{Method: "GET", Path: "/b", Version: "2.0"}}
			if err := r.Add(ctx, b); err != nil {
				t.Errorf("Add b #%d: %v", i, err)
				return
			}
			if err := r.Remove(ctx, "b"); err != nil {
				t.Errorf("Remove b #%d: %v", i, err)
				return
			}
		}
	})
	for i := range 5 {
		next := fakeSpec("a", "v"+strconv.Itoa(i+1))
		next.FunctionURL, next.Routes = a.FunctionURL, a.Routes
		if err := r.Replace(ctx, next); err != nil {
			t.Errorf("Replace #%d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if _, body := r.invoke(t, "a", `{}`); version(t, body) != "v5" {
		t.Errorf("after five Replaces: %s", body)
	}
	if resp, body := do(t, http.MethodGet, "http://"+r.FunctionURLAddr("a")+"/", ""); version(t, body) != "v5" {
		t.Errorf("function URL after five Replaces: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodGet, "http://"+r.APIAddr()+"/a", ""); version(t, body) != "v5" {
		t.Errorf("route after five Replaces: %d %s", resp.StatusCode, body)
	}
}

// closingDriver is a process driver that counts its Close calls.
type closingDriver struct {
	*process.Driver
	closed atomic.Int32
}

func (d *closingDriver) Close(context.Context) error { d.closed.Add(1); return nil }

// TestOwnedDriversCloseWithTheirInstance: a spec that hands its driver to
// the service (a container driver per function) has it closed once, when
// its instance retires; a failed Add closes it at once.
func TestOwnedDriversCloseWithTheirInstance(t *testing.T) {
	drv, err := process.New(process.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close(context.Background()) })
	owned := func(d *closingDriver, version string) FunctionSpec {
		s := fakeSpec("owned", version)
		s.Driver, s.OwnsDriver = d, true
		return s
	}
	d1, d2, d3 := &closingDriver{Driver: drv}, &closingDriver{Driver: drv}, &closingDriver{Driver: drv}
	r := startService(t, Config{}, owned(d1, "v1"))
	ctx := context.Background()
	if resp, body := r.invoke(t, "owned", `{}`); resp.StatusCode != 200 {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	if err := r.Replace(ctx, owned(d2, "v2")); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, owned(d3, "v3")); !errors.Is(err, ErrExists) {
		t.Fatalf("Add of an existing name: %v", err)
	}
	// The replaced instance retires in the background.
	waitFor(t, "the replaced instance's driver to close", func() bool { return d1.closed.Load() > 0 })
	if got := [3]int32{d1.closed.Load(), d2.closed.Load(), d3.closed.Load()}; got != [3]int32{1, 0, 1} {
		t.Errorf("after Replace and a failed Add, Close calls = %v, want [1 0 1]", got)
	}
	if err := r.Remove(ctx, "owned"); err != nil {
		t.Fatal(err)
	}
	// So does the removed one.
	waitFor(t, "the removed instance's driver to close", func() bool { return d2.closed.Load() > 0 })
	if got := [3]int32{d1.closed.Load(), d2.closed.Load(), d3.closed.Load()}; got != [3]int32{1, 1, 1} {
		t.Errorf("after Remove, Close calls = %v, want [1 1 1]", got)
	}
}

// Replace returns once new invokes go to the new code: it does not wait
// for an invoke in flight on the old code, which still finishes there,
// nor cut it short when the caller's context ends.
func TestReplaceDoesNotWaitForInvokes(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("f", "v1"))
	done := make(chan string, 1)
	go func() {
		resp, body := r.invoke(t, "f", `{"op":"sleep","ms":3000,"data":"inflight"}`)
		done <- strings.Join([]string{http.StatusText(resp.StatusCode), body}, " ")
	}()
	waitFor(t, "the invoke to start", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: sleep") })
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Replace(ctx, fakeSpec("f", "v2")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case got := <-done:
		t.Fatalf("Replace returned after the invoke in flight ended (%s)", got)
	default:
	}
	if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != 200 || version(t, body) != "v2" {
		t.Errorf("after Replace: %d %s", resp.StatusCode, body)
	}
	if got := <-done; !strings.HasPrefix(got, "OK ") || !strings.Contains(got, "inflight") || !strings.Contains(got, `"v1"`) {
		t.Errorf("the invoke in flight at Replace: %s", got)
	}
}

// A runtime that works on after its answer is still on that invoke until
// it calls next, as on Lambda: the next invoke waits for it and is not
// charged its time. Past the invoke's deadline, that invoke times out (its
// REPORT says so) and the next runs on a new runtime.
func TestRuntimeWorkAfterTheAnswer(t *testing.T) {
	for _, queue := range []bool{true, false} {
		t.Run(fmt.Sprintf("queue=%v", queue), func(t *testing.T) {
			spec := fakeSpec("f", "v1")
			spec.Function.Timeout, spec.Queue = time.Second, queue
			r := startService(t, Config{}, spec)
			resp, body := r.invoke(t, "f", `{"op":"linger","ms":300}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Fatalf("lingering invoke: %d %s", resp.StatusCode, body)
			}
			first := pid(t, body)
			if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || pid(t, body) != first {
				t.Errorf("after 300 ms of work past the answer: %d %s, want an answer from pid %d", resp.StatusCode, body, first)
			}
			resp, body = r.invoke(t, "f", `{"op":"linger","ms":3000}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Fatalf("lingering invoke: %d %s", resp.StatusCode, body)
			}
			// The next invoke waits for the environment (up to the
			// function's timeout, then 429); it is never charged the
			// other's timeout.
			if resp, body := r.invoke(t, "f", `{}`); resp.Header.Get("X-Amz-Function-Error") != "" || resp.StatusCode == 200 && pid(t, body) == first ||
				resp.StatusCode != 200 && resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("during work past the answer and the deadline: %d %s, want an answer from a new runtime, or 429", resp.StatusCode, body)
			}
			waitFor(t, "the lingering invoke's timeout in its REPORT", func() bool { return strings.Contains(r.out.String(), "Status: timeout") })
			if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || pid(t, body) == first {
				t.Errorf("after it: %d %s, want an answer from a new runtime", resp.StatusCode, body)
			}
		})
	}
}

// A function URL that Replace takes away stops answering when Replace
// returns, on a kept-alive connection too, while its request in flight
// still gets its answer.
func TestReplaceDropsTheURLAtOnce(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.FunctionURL, spec.MaxConcurrency = "127.0.0.1:0", 2
	r := startService(t, Config{}, spec)
	url := "http://" + r.FunctionURLAddr("f") + "/"
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	get := func() (*http.Response, error) {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("function URL: %v %v", resp, err)
	}
	done := make(chan string, 1)
	go func() {
		resp, body := do(t, http.MethodPost, url, `{"op":"sleep","ms":1000,"data":"inflight"}`)
		done <- fmt.Sprint(resp.StatusCode, " ", body)
	}()
	waitFor(t, "the request to start", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: sleep") })
	next := fakeSpec("f", "v2")
	next.MaxConcurrency = 2
	if err := r.Replace(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if resp, err := get(); err == nil {
		t.Errorf("the function URL still answers once Replace dropped it: %d", resp.StatusCode)
	}
	if got := <-done; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "inflight") {
		t.Errorf("the request in flight at Replace: %s", got)
	}
}

// Code replaced or removed before any invoke also closes its first
// environment, made at the start for its Runtime API listener: nothing is
// left open however often a function changes.
func TestUninvokedCodeLeavesNothingOpen(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("f", "v0"))
	fds := func() int {
		e, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(e)
	}
	before := fds()
	ctx := context.Background()
	for i := range 20 {
		if err := r.Replace(ctx, fakeSpec("f", fmt.Sprint("v", i+1))); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(ctx, fakeSpec("g", "g")); err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the open files to come back to their count before", func() bool { return fds() <= before })
	if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != 200 || version(t, body) != "v20" {
		t.Errorf("after the changes: %d %s", resp.StatusCode, body)
	}
}

// Remove returns at once, as Lambda's DeleteFunction does: the function's
// URL refuses new requests when it returns, and a request in flight on it
// still gets its answer, even when Remove's caller has given up.
func TestRemoveDoesNotWaitForRequests(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.FunctionURL = "127.0.0.1:0"
	r := startService(t, Config{}, spec)
	addr := r.FunctionURLAddr("f")
	url := "http://" + addr + "/"
	done := make(chan string, 1)
	go func() {
		resp, body := do(t, http.MethodPost, url, `{"op":"sleep","ms":1500,"data":"inflight"}`)
		done <- fmt.Sprint(resp.StatusCode, " ", body)
	}()
	waitFor(t, "the request to start", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: sleep") })
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Remove(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case got := <-done:
		t.Fatalf("Remove returned after the request in flight ended (%s)", got)
	default:
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the removed function's URL accepts connections")
	}
	if got := <-done; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "inflight") {
		t.Errorf("the request in flight at Remove: %s", got)
	}
}

// A client that does not read its answer from a URL Replace dropped keeps
// no runtime alive, and the shutdown's grace bounds it: it is cut off when
// the grace ends, and Run returns.
func TestShutdownGraceBoundsRetiredURLs(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.FunctionURL = "127.0.0.1:0"
	r := startService(t, Config{ShutdownTimeout: 300 * time.Millisecond}, spec)
	c, err := net.Dial("tcp", r.FunctionURLAddr("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	// An answer of 4 MB: more than the sockets' buffers hold.
	body := `{"data":"` + strings.Repeat("x", 4<<20) + `"}`
	if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the function to answer", func() bool { return strings.Contains(r.out.String(), "fake runtime v1: \n") })
	if err := r.Replace(context.Background(), fakeSpec("f", "v2")); err != nil {
		t.Fatal(err)
	}
	// The client keeps no runtime alive: the old code's ends.
	waitFor(t, "the replaced code's runtime to end", func() bool { return len(runtimes(t)) == 0 })
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Run still waits for a client of a dropped URL 20 s past its 300 ms grace")
	}
}
