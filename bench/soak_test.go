package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakDuration is how long TestSoak runs; LAMBDABOX_SOAK overrides it
// (e.g. "5s" while developing). CI runs the full minute.
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("LAMBDABOX_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LAMBDABOX_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 60 * time.Second
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// childProcesses counts this process's children.
func childProcesses(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	n := len(strings.Fields(string(b)))
	// Children of the other threads too.
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, tk := range tasks {
		if tk.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		c, _ := os.ReadFile("/proc/self/task/" + tk.Name() + "/children")
		n += len(strings.Fields(string(c)))
	}
	return n
}

// TestSoak drives a pool of 8 environments with 8 clients for a minute: no
// request may be lost or fail, and once the pool is shut down no process,
// file descriptor or goroutine may be left over.
func TestSoak(t *testing.T) {
	helloBootstrap(t)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	fds0, gor0, kids0 := openFDs(t), runtime.NumGoroutine(), childProcesses(t)

	url, stop := startLambdabox(t, 8)
	client := NewClient(8)
	stats, err := Run(context.Background(), Config{
		URL: url, Payload: []byte(helloPayload), Concurrency: 8,
		Duration: soakDuration(t), Client: client,
		Check: func(resp *http.Response, body []byte) error {
			if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || !bytes.Contains(body, []byte(helloAnswer)) {
				return fmt.Errorf("status %d, body %s", resp.StatusCode, body)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: %s", stats)
	if stats.Errors > 0 || stats.Requests == 0 {
		t.Fatalf("%d of %d requests failed; first: %v", stats.Errors, stats.Requests, stats.FirstError)
	}
	if kids := childProcesses(t); kids > 8 {
		t.Errorf("%d runtime processes for a pool of 8", kids)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds, gor, kids := openFDs(t), runtime.NumGoroutine(), childProcesses(t)
		// The process driver (closed by the test's cleanup) may still hold
		// a file or two.
		if fds <= fds0+2 && gor <= gor0+3 && kids <= kids0 {
			t.Logf("after: %d fds (was %d), %d goroutines (was %d), %d children (was %d)", fds, fds0, gor, gor0, kids, kids0)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("leak: %d fds (was %d), %d goroutines (was %d), %d children (was %d)\n%s", fds, fds0, gor, gor0, kids, kids0, buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
