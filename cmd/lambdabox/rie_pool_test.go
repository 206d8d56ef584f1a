package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pids lists the processes whose command line starts with path (so not
// lambdabox, which has it among its arguments).
func pids(t *testing.T, path string) []int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "^"+regexp.QuoteMeta(path)).Output()
	var ps []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil {
			ps = append(ps, n)
		}
	}
	return ps
}

// invokeAll runs n invokes of payload at once and returns the responses'
// statuses and bodies.
func invokeAll(t *testing.T, e *emulator, n int, payload string) ([]*http.Response, []string) {
	resps := make([]*http.Response, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], bodies[i] = e.invoke(t, "function", payload)
		}()
	}
	wg.Wait()
	return resps, bodies
}

func TestPoolRunsInParallel(t *testing.T) {
	e := goRIE(t, "--max-concurrency", "20")
	start := time.Now()
	resps, bodies := invokeAll(t, e, 20, `{"op":"sleep","ms":200}`)
	d := time.Since(start)
	for i, r := range resps {
		if r.StatusCode != 200 || bodies[i] != `"slept"` {
			t.Errorf("invoke %d: %d %s", i, r.StatusCode, bodies[i])
		}
	}
	// 20 cold starts and 20 × 200 ms of sleep in parallel: far below the
	// 4 s they would take in turn.
	if d > 2500*time.Millisecond {
		t.Errorf("20 parallel invokes took %v", d)
	}
	if n := len(pids(t, goFnBin)); n < 2 {
		t.Errorf("%d runtimes running, want several", n)
	}
}

func TestPoolThrottles(t *testing.T) {
	e := goRIE(t, "--max-concurrency", "5", "--queue=false")
	resps, bodies := invokeAll(t, e, 10, `{"op":"sleep","ms":700}`)
	ok, throttled := 0, 0
	for i, r := range resps {
		switch r.StatusCode {
		case 200:
			ok++
		case 429:
			throttled++
			wantAPIError(t, r, bodies[i], 429, "TooManyRequestsException")
			if decode(t, bodies[i])["Reason"] != "ReservedFunctionConcurrentInvocationLimitExceeded" || r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Reason or Retry-After: %v %s", r.Header, bodies[i])
			}
		default:
			t.Errorf("status %d: %s", r.StatusCode, bodies[i])
		}
	}
	if ok != 5 || throttled != 5 {
		t.Errorf("%d succeeded and %d were throttled, want 5 and 5", ok, throttled)
	}

	q := goRIE(t, "--max-concurrency", "5", "--queue")
	resps, _ = invokeAll(t, q, 10, `{"op":"sleep","ms":300}`)
	for i, r := range resps {
		if r.StatusCode != 200 {
			t.Errorf("queued invoke %d: %d", i, r.StatusCode)
		}
	}
}

// recorderDir makes an extensions directory holding the test extension,
// and the file it records to.
func recorderDir(t *testing.T) (dir, record string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Symlink(extBin, filepath.Join(dir, "recorder")); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(t.TempDir(), "record.jsonl")
}

// records reads what the extension recorded.
func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// has reports whether a record of kind matches the predicate.
func has(recs []map[string]any, kind string, match func(map[string]any) bool) bool {
	for _, r := range recs {
		if r["kind"] == kind && match(r) {
			return true
		}
	}
	return false
}

func eventOf(r map[string]any) map[string]any { m, _ := r["event"].(map[string]any); return m }

func TestExtensionLifecycleAndTelemetry(t *testing.T) {
	dir, record := recorderDir(t)
	e := startRIE(t, rieOpts{
		flags:   []string{"--extensions-dir", dir, "--function-name", "extfn"},
		command: []string{goFnBin, "ext.handler"},
		env:     []string{"EXT_RECORD=" + record},
	})
	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	resp, body := e.invoke(t, "extfn", `{"data":"telemetry-marker"}`, "X-Amzn-Trace-Id", trace)
	if resp.StatusCode != 200 || body != `"telemetry-marker"` {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	waitFor(t, "INVOKE, platform.start, platform.report and the function's log line at the extension", func() bool {
		recs := records(t, record)
		return has(recs, "register", func(r map[string]any) bool {
			info, _ := r["info"].(map[string]any)
			return info["functionName"] == "extfn" && info["handler"] == "ext.handler"
		}) &&
			has(recs, "event", func(r map[string]any) bool {
				ev := eventOf(r)
				tr, _ := ev["tracing"].(map[string]any)
				return ev["eventType"] == "INVOKE" && ev["requestId"] == id && tr["value"] == trace &&
					strings.HasSuffix(ev["invokedFunctionArn"].(string), ":function:extfn")
			}) &&
			has(recs, "telemetry", func(r map[string]any) bool {
				rec, _ := r["record"].(map[string]any)
				return r["type"] == "platform.start" && rec["requestId"] == id
			}) &&
			has(recs, "telemetry", func(r map[string]any) bool {
				rec, _ := r["record"].(map[string]any)
				m, _ := rec["metrics"].(map[string]any)
				return r["type"] == "platform.report" && rec["requestId"] == id && m["maxMemoryUsedMB"].(float64) > 0
			}) &&
			has(recs, "telemetry", func(r map[string]any) bool {
				s, _ := r["record"].(string)
				return r["type"] == "function" && strings.Contains(s, "echo: telemetry-marker")
			})
	})
	e.stop(t)
	recs := records(t, record)
	if !has(recs, "event", func(r map[string]any) bool {
		ev := eventOf(r)
		return ev["eventType"] == "SHUTDOWN" && ev["shutdownReason"] == "spindown"
	}) {
		t.Errorf("no SHUTDOWN spindown at the extension; records: %v", recs)
	}
	if ps := pids(t, filepath.Join(dir, "recorder")); len(ps) > 0 {
		t.Errorf("extension still running: %v", ps)
	}
}

func TestKeepAliveSpinsDown(t *testing.T) {
	dir, record := recorderDir(t)
	e := startRIE(t, rieOpts{
		flags:   []string{"--extensions-dir", dir, "--keep-alive", "300ms"},
		command: []string{goFnBin},
		env:     []string{"EXT_RECORD=" + record},
	})
	if resp, body := e.invoke(t, "function", `{"data":1}`); body != "1" {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the idle environment to spin down", func() bool {
		return len(pids(t, goFnBin)) == 0 && len(pids(t, filepath.Join(dir, "recorder"))) == 0
	})
	if !has(records(t, record), "event", func(r map[string]any) bool {
		ev := eventOf(r)
		return ev["eventType"] == "SHUTDOWN" && ev["shutdownReason"] == "spindown"
	}) {
		t.Error("no SHUTDOWN spindown delivered")
	}
	// It starts again on demand.
	if resp, body := e.invoke(t, "function", `{"data":2}`); body != "2" {
		t.Errorf("after spin-down: %d %s", resp.StatusCode, body)
	}
}

func TestProvisionedEnvironments(t *testing.T) {
	e := goRIE(t, "--max-concurrency", "3", "--provisioned", "2")
	waitFor(t, "two pre-warmed runtimes", func() bool { return len(pids(t, goFnBin)) == 2 })
	_, body := e.invoke(t, "function", `{"op":"env","name":"AWS_LAMBDA_INITIALIZATION_TYPE"}`)
	if v := decode(t, body)["value"]; v != "provisioned-concurrency" {
		t.Errorf("AWS_LAMBDA_INITIALIZATION_TYPE = %v", v)
	}
}

func TestAsyncRetriesThenRecordsFailure(t *testing.T) {
	e := goRIE(t, "--async-retry-delay", "100ms", "--function-name", "asyncfn")
	resp, _ := e.invoke(t, "asyncfn", `{"op":"error","name":"async"}`, "X-Amz-Invocation-Type", "Event")
	if resp.StatusCode != 202 {
		t.Fatalf("Event: %d", resp.StatusCode)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	var failed []map[string]any
	waitFor(t, "the failed event to be recorded", func() bool {
		_, body := e.do(t, http.MethodGet, "/lambdabox/functions/asyncfn/failed-events", nil)
		failed = nil
		_ = json.Unmarshal([]byte(body), &failed)
		return len(failed) == 1
	})
	rc, _ := failed[0]["requestContext"].(map[string]any)
	if rc["requestId"] != id || rc["approximateInvokeCount"].(float64) != 3 || rc["condition"] != "RetriesExhausted" {
		t.Errorf("failure record %v", failed[0])
	}
	if n := strings.Count(e.Stdout.String(), "START RequestId: "+id); n != 3 {
		t.Errorf("the event ran %d times, want 3 (1 + 2 retries)", n)
	}
	// A good event runs once and is not recorded.
	resp, _ = e.invoke(t, "asyncfn", `{"data":"async-ok"}`, "X-Amz-Invocation-Type", "Event")
	okID := resp.Header.Get("X-Amzn-Requestid")
	waitFor(t, "the good event", func() bool { return strings.Contains(e.Stdout.String(), "END RequestId: "+okID) })
	if n := strings.Count(e.Stdout.String(), "START RequestId: "+okID); n != 1 {
		t.Errorf("good event ran %d times", n)
	}
}

func TestAsyncPendingEventsSurviveShutdown(t *testing.T) {
	dir := t.TempDir()
	e := goRIE(t, "--async-dir", dir)
	// One long event occupies the only environment; the next waits.
	e.invoke(t, "function", `{"op":"sleep","ms":800}`, "X-Amz-Invocation-Type", "Event")
	resp, _ := e.invoke(t, "function", `{"data":"after-restart"}`, "X-Amz-Invocation-Type", "Event")
	id := resp.Header.Get("X-Amzn-Requestid")
	e.stop(t)
	out := e.Stdout.String()
	if !strings.Contains(out, "END RequestId: "+id) {
		// Not run before shutdown: it must be on disk, and run at the next start.
		if _, err := os.Stat(filepath.Join(dir, "pending", id+".event")); err != nil {
			t.Fatalf("event %s neither run nor saved: %v", id, err)
		}
		e2 := goRIE(t, "--async-dir", dir)
		waitFor(t, "the saved event to run", func() bool { return strings.Contains(e2.Stdout.String(), "END RequestId: "+id) })
	}
}

func TestFaultKilledRuntime(t *testing.T) {
	e := goRIE(t)
	e.invoke(t, "function", `{}`)
	ps := pids(t, goFnBin)
	if len(ps) != 1 {
		t.Fatalf("runtimes: %v", ps)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = syscall.Kill(ps[0], syscall.SIGKILL)
	}()
	resp, body := e.invoke(t, "function", `{"op":"sleep","ms":3000}`)
	wantFunctionError(t, resp, body, "Runtime.ExitError", "Runtime exited with error: signal: killed")
	if resp, body := e.invoke(t, "function", `{"data":"fresh"}`); body != `"fresh"` {
		t.Errorf("after kill: %d %s", resp.StatusCode, body)
	}
}

func TestFaultKilledExtension(t *testing.T) {
	dir, record := recorderDir(t)
	e := startRIE(t, rieOpts{
		flags:   []string{"--extensions-dir", dir},
		command: []string{goFnBin},
		env:     []string{"EXT_RECORD=" + record},
	})
	e.invoke(t, "function", `{}`)
	ps := pids(t, filepath.Join(dir, "recorder"))
	if len(ps) != 1 {
		t.Fatalf("extensions: %v", ps)
	}
	_ = syscall.Kill(ps[0], syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	resp, body := e.invoke(t, "function", `{}`)
	wantFunctionError(t, resp, body, "Extension.Crash", "recorder")
	if resp, body := e.invoke(t, "function", `{"data":"fresh"}`); body != `"fresh"` {
		t.Errorf("after the crash: %d %s", resp.StatusCode, body)
	}
	if len(pids(t, filepath.Join(dir, "recorder"))) != 1 {
		t.Errorf("the extension was not started again")
	}
}

func TestFaultInitHangs(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	counter := filepath.Join(t.TempDir(), "starts")
	e := startRIE(t, rieOpts{
		flags:   []string{"--timeout", "12s"},
		command: []string{self},
		env:     []string{"LAMBDABOX_TEST_RUNTIME=hanginit", "HANG_COUNTER=" + counter},
	})
	start := time.Now()
	resp, body := e.invoke(t, "function", `{}`)
	// Init gives up after 10 s, is retried inside the invoke's 12 s, and
	// hangs again: the invoke times out.
	wantFunctionError(t, resp, body, "Sandbox.Timedout", "Task timed out after 12.00 seconds")
	if d := time.Since(start); d < 11*time.Second || d > 15*time.Second {
		t.Errorf("answered after %v", d)
	}
	if b, _ := os.ReadFile(counter); len(b) != 2 {
		t.Errorf("runtime started %d times, want 2 (init and its retry)", len(b))
	}
	if resp, body := e.invoke(t, "function", `{}`); resp.StatusCode != 200 || body != `"ok"` || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Errorf("next invoke: %d %s", resp.StatusCode, body)
	}
}

// TestExtensionWithOfficialRICs runs the test extension beside the official
// Python and Node Runtime Interface Clients.
func TestExtensionWithOfficialRICs(t *testing.T) {
	for name, start := range map[string]func(*testing.T, ...string) *emulator{
		"python": func(t *testing.T, flags ...string) *emulator { return pythonRIE(t, "app.handler", flags...) },
		"node":   func(t *testing.T, flags ...string) *emulator { return nodeRIE(t, "index.handler", flags...) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, record := recorderDir(t)
			e := start(t, "--extensions-dir", dir, "--env", "EXT_RECORD="+record)
			resp, body := e.invoke(t, "function", `{"op":"echo","data":"with-extension"}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || !strings.Contains(body, "with-extension") {
				t.Fatalf("invoke: %d %s", resp.StatusCode, body)
			}
			id := resp.Header.Get("X-Amzn-Requestid")
			waitFor(t, "INVOKE and platform.report at the extension", func() bool {
				recs := records(t, record)
				return has(recs, "event", func(r map[string]any) bool {
					ev := eventOf(r)
					return ev["eventType"] == "INVOKE" && ev["requestId"] == id
				}) && has(recs, "telemetry", func(r map[string]any) bool {
					rec, _ := r["record"].(map[string]any)
					return r["type"] == "platform.report" && rec["requestId"] == id
				})
			})
			// A second invoke: the environment waited for the extension.
			if resp, _ := e.invoke(t, "function", `{"op":"echo","data":2}`); resp.StatusCode != 200 {
				t.Errorf("second invoke: %d", resp.StatusCode)
			}
		})
	}
}
