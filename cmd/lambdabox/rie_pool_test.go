package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
