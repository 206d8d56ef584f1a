package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// eventInvoke sends an Event invoke and returns its status and request id.
func eventInvoke(t *testing.T, e *emulator, payload string) (int, string) {
	t.Helper()
	resp, _ := e.invoke(t, "function", payload, "X-Amz-Invocation-Type", "Event")
	return resp.StatusCode, resp.Header.Get("X-Amzn-Requestid")
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// waitExit waits up to d for lambdabox to exit, then kills it, as docker
// stop does 10 s after its SIGTERM.
func (e *emulator) waitExit(d time.Duration) (killed bool) {
	select {
	case <-e.done:
		return false
	case <-time.After(d):
		_ = e.cmd.Process.Kill()
		<-e.done
		return true
	}
}

// Events accepted with --async-dir and a 300 s timeout, then docker stop:
// SIGTERM, SIGKILL 10 s later. Every event, the one in flight included,
// runs at the next start on the same directory. A second signal ends the
// grace at once, and loses nothing either.
func TestAsyncEventsSurviveDockerStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second bool
	}{
		{"SIGTERM then SIGKILL after 10s", false},
		{"second SIGTERM", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := fakeRIE(t, "slow", "--async-dir", dir, "--timeout", "300s")
			var ids []string
			for i := range 8 {
				st, id := eventInvoke(t, e, `{"n":`+strconv.Itoa(i)+`}`)
				if st != http.StatusAccepted || id == "" {
					t.Fatalf("Event invoke %d: %d", i, st)
				}
				ids = append(ids, id)
			}
			waitFor(t, "the first event to start", func() bool { return strings.Contains(e.Stdout.String(), "START RequestId: "+ids[0]) })
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
			if tc.second {
				waitFor(t, "the shutdown to begin", func() bool { return strings.Contains(e.Stderr.String(), "shutting down") })
				_ = e.cmd.Process.Signal(syscall.SIGTERM)
			}
			if e.waitExit(10 * time.Second) {
				t.Logf("lambdabox was still running 10 s after SIGTERM; killed\nstderr:\n%s", e.Stderr)
			}
			if tc.second && !strings.Contains(e.Stderr.String(), "a second signal ended the shutdown grace") {
				t.Errorf("the second signal was not acted on\nstderr:\n%s", e.Stderr)
			}
			if n := len(dirEntries(t, filepath.Join(dir, "pending"))); n != 8 {
				t.Errorf("%d events on disk after the stop, want 8\nstderr:\n%s", n, e.Stderr)
			}
			e2 := fakeRIE(t, "echo", "--async-dir", dir)
			for _, id := range ids {
				waitFor(t, "event "+id+" to run at the next start", func() bool { return strings.Contains(e2.Stdout.String(), "END RequestId: "+id) })
			}
			out := e2.Stdout.String()
			for _, id := range ids {
				if n := strings.Count(out, "START RequestId: "+id); n != 1 {
					t.Errorf("event %s ran %d times at the next start", id, n)
				}
			}
			waitFor(t, "the pending directory to empty", func() bool { return len(dirEntries(t, filepath.Join(dir, "pending"))) == 0 })
			if f := dirEntries(t, filepath.Join(dir, "failed")); len(f) != 0 {
				t.Errorf("events recorded as failed: %v", f)
			}
		})
	}
}

// peakRSS is the peak resident memory of a process, from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// 200 Event invokes of 1 MiB on a busy function keep lambdabox's memory
// bounded: with --async-dir they all wait on disk; without, those past
// the limit get 429 TooManyRequestsException. None is accepted and lost.
func TestAsyncBacklogMemoryIsBounded(t *testing.T) {
	const (
		events  = 200
		clients = 4
		bound   = 120 << 20
	)
	payload := `"` + strings.Repeat("x", 1<<20-2) + `"` // 1 MiB, the async limit
	for _, withDir := range []bool{true, false} {
		t.Run("async-dir="+strconv.FormatBool(withDir), func(t *testing.T) {
			dir := t.TempDir()
			flags := []string{"--timeout", "300s", "--shutdown-timeout", "1s"}
			if withDir {
				flags = append(flags, "--async-dir", dir)
			}
			e := fakeRIE(t, "slow", flags...)
			statuses := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := c; i < events; i += clients {
						resp, body := e.invoke(t, "function", payload, "X-Amz-Invocation-Type", "Event")
						if resp.StatusCode == http.StatusTooManyRequests {
							var b map[string]string
							_ = json.Unmarshal([]byte(body), &b)
							if resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" || b["Reason"] == "" {
								t.Errorf("429 without Lambda's shape: %v %s", resp.Header, body)
							}
						}
						mu.Lock()
						statuses[resp.StatusCode]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			// The race detector's shadow memory multiplies every
			// allocation: the bound speaks of the real binary.
			if rss := peakRSS(t, e.cmd.Process.Pid); rss > bound && !raceBuild() {
				t.Errorf("peak RSS %d MB after %d events of 1 MiB, want at most %d MB", rss>>20, events, bound>>20)
			}
			accepted := statuses[http.StatusAccepted]
			if withDir && accepted != events {
				t.Errorf("statuses %v, want %d × 202", statuses, events)
			}
			if !withDir && (statuses[http.StatusTooManyRequests] == 0 || accepted+statuses[http.StatusTooManyRequests] != events) {
				t.Errorf("statuses %v, want 202 up to the limit and 429 past it", statuses)
			}
			e.stop(t)
			if withDir {
				// The one in flight and the queued ones all wait on disk.
				if n := len(dirEntries(t, filepath.Join(dir, "pending"))); n != events {
					t.Errorf("%d events on disk after the stop, want %d", n, events)
				}
			} else if want := "count=" + strconv.Itoa(accepted); !strings.Contains(e.Stderr.String(), "asynchronous events dropped at shutdown") || !strings.Contains(e.Stderr.String(), want) {
				t.Errorf("the exit log does not count the %d dropped events\nstderr:\n%s", accepted, e.Stderr)
			}
		})
	}
}

// A corrupt file in the pending directory is moved aside with a warning;
// it neither blocks the start nor the events saved beside it.
func TestAsyncCorruptPendingFileDoesNotBlockStart(t *testing.T) {
	dir := t.TempDir()
	pending := filepath.Join(dir, "pending")
	if err := os.MkdirAll(pending, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"broken.event": "lambdabox-event 1\n{\"ID\":",
		"broken.json":  `{"ID": "x", "Payload": `,
		// An event saved by an earlier lambdabox, as one JSON document.
		"saved-before.json": `{"ID":"saved-before","Payload":"e30=","ContentType":"application/json"}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(pending, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := fakeRIE(t, "echo", "--async-dir", dir)
	waitFor(t, "the saved event to run", func() bool { return strings.Contains(e.Stdout.String(), "END RequestId: saved-before") })
	for _, name := range []string{"broken.event", "broken.json"} {
		if _, err := os.Stat(filepath.Join(dir, "corrupt", name)); err != nil {
			t.Errorf("%s not moved to corrupt/: %v", name, err)
		}
	}
	if !strings.Contains(e.Stderr.String(), "unreadable pending event moved aside") {
		t.Errorf("no warning for the corrupt files\nstderr:\n%s", e.Stderr)
	}
	if st, _ := eventInvoke(t, e, `{}`); st != http.StatusAccepted {
		t.Errorf("Event invoke after the start: %d", st)
	}
}
