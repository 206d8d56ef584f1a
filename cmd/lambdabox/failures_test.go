package main

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// reportLine waits for the REPORT line of request id and returns it.
func reportLine(t *testing.T, e *emulator, id string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^REPORT RequestId: ` + regexp.QuoteMeta(id) + `\t.*$`)
	var line string
	waitFor(t, "the REPORT line of "+id, func() bool {
		line = re.FindString(e.Stdout.String())
		return line != ""
	})
	return line
}

// alive fails the test if lambdabox has exited (it must survive every
// misbehaving runtime).
func (e *emulator) alive(t *testing.T) {
	t.Helper()
	select {
	case <-e.done:
		t.Fatalf("lambdabox exited\nstderr:\n%s", e.Stderr)
	default:
	}
	if strings.Contains(e.Stderr.String(), "panic:") {
		t.Fatalf("lambdabox panicked\nstderr:\n%s", e.Stderr)
	}
}

// A runtime that answers a buffered invoke with a stream and then stalls
// past the timeout gets Sandbox.Timedout, through the Invoke API and a
// buffered function URL, and lambdabox lives on (it used to panic in
// environment.waitStream).
func TestStreamedAnswerThenTimeout(t *testing.T) {
	url := freeAddr(t)
	e := fakeRIE(t, "streamslow", "--timeout", "1s", "--function-url", url)
	for i := range 2 {
		resp, body := e.invoke(t, "function", `{}`)
		wantFunctionError(t, resp, body, "Sandbox.Timedout", "Task timed out after 1.00 seconds")
		line := reportLine(t, e, resp.Header.Get("X-Amzn-Requestid"))
		if !strings.HasSuffix(line, "\tStatus: timeout") {
			t.Errorf("invoke %d: REPORT without Status: timeout: %q", i, line)
		}
		e.alive(t)
	}
	for range 2 {
		resp, b := httpDo(t, http.MethodGet, "http://"+url+"/", "", nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("function URL: %d %s, want 502", resp.StatusCode, b)
		}
		reportLine(t, e, resp.Header.Get("X-Amzn-Requestid"))
		e.alive(t)
	}
}

// A buffered invoke of a function that streams 20 MiB ends in
// Function.ResponseSizeTooLarge, not in a timeout, and the environment
// settles cleanly.
func TestStreamedTooLargeForBufferedInvoke(t *testing.T) {
	e := fakeRIE(t, "stream20m", "--timeout", "3s")
	for i := range 2 {
		resp, body := e.invoke(t, "function", `{}`)
		wantFunctionError(t, resp, body, "Function.ResponseSizeTooLarge", "exceeded maximum allowed payload size (6291556 bytes)")
		line := reportLine(t, e, resp.Header.Get("X-Amzn-Requestid"))
		if strings.Contains(line, "Status:") {
			t.Errorf("invoke %d: %q, want a clean REPORT", i, line)
		}
	}
	if strings.Contains(e.Stdout.String(), "Task timed out") {
		t.Errorf("a timeout was logged:\n%s", e.Stdout)
	}
	e.alive(t)
}

// Max Memory Used is measured before a timeout or a crash resets the
// environment: cold or warm, a runtime that touched 50 MiB reports at
// least that, with Lambda's Status.
func TestMaxMemoryAfterFailures(t *testing.T) {
	e := fakeRIE(t, "alloc", "--timeout", "2s")
	used := regexp.MustCompile(`\tMax Memory Used: (\d+) MB`)
	for _, c := range []struct {
		name, payload, errorType, status string
	}{
		{"cold timeout", `"slow"`, "Sandbox.Timedout", "\tStatus: timeout"},
		{"warm-up", `"ok"`, "", ""},
		{"warm timeout", `"slow"`, "Sandbox.Timedout", "\tStatus: timeout"},
		{"crash", `"crash"`, "Runtime.ExitError", "\tStatus: error\tError Type: Runtime.ExitError"},
	} {
		resp, body := e.invoke(t, "function", c.payload)
		if c.errorType != "" {
			wantFunctionError(t, resp, body, c.errorType, "")
		}
		line := reportLine(t, e, resp.Header.Get("X-Amzn-Requestid"))
		m := used.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: no Max Memory Used in %q", c.name, line)
		}
		if mb, _ := strconv.Atoi(m[1]); c.errorType != "" && mb < 50 {
			t.Errorf("%s: Max Memory Used %d MB, want at least 50: %q", c.name, mb, line)
		}
		if c.status != "" && !strings.Contains(line, c.status) {
			t.Errorf("%s: REPORT lacks %q: %q", c.name, c.status, line)
		}
		if c.status == "" && strings.Contains(line, "Status:") {
			t.Errorf("%s: unexpected Status: %q", c.name, line)
		}
	}
	e.alive(t)
}

// A function allocating past --memory-size is killed, as Lambda kills it:
// the caller gets Runtime.OutOfMemory, REPORT says so with Max Memory
// Used at most the memory size, and the next invoke runs on a fresh
// runtime. Where no memory cgroup can be made, lambdabox says so at start
// and this test skips with that reason.
func TestOutOfMemory(t *testing.T) {
	e := fakeRIE(t, "oom", "--memory-size", "128", "--timeout", "30s")
	resp, body := e.invoke(t, "function", `"small"`)
	if body != `"ok"` {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	if i := strings.Index(e.Stderr.String(), "memory NOT limited"); i >= 0 {
		line, _, _ := strings.Cut(e.Stderr.String()[i:], "\n")
		t.Skip("no memory cgroup on this machine: lambdabox said " + line)
	}
	resp, body = e.invoke(t, "function", `"big"`)
	wantFunctionError(t, resp, body, "Runtime.OutOfMemory", "")
	if !strings.Contains(body, "Runtime exited with error: signal: killed") {
		t.Errorf("body %s lacks Lambda's message", body)
	}
	line := reportLine(t, e, resp.Header.Get("X-Amzn-Requestid"))
	if !strings.Contains(line, "\tStatus: error\tError Type: Runtime.OutOfMemory") {
		t.Errorf("REPORT lacks the OOM status: %q", line)
	}
	m := regexp.MustCompile(`\tMax Memory Used: (\d+) MB`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no Max Memory Used in %q", line)
	}
	if mb, _ := strconv.Atoi(m[1]); mb > 128 || mb < 100 {
		t.Errorf("Max Memory Used %d MB, want up to the 128 MB memory size: %q", mb, line)
	}
	resp, body = e.invoke(t, "function", `"small"`)
	if resp.StatusCode != 200 || body != `"ok"` || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Errorf("the invoke after the OOM kill: %d %s", resp.StatusCode, body)
	}
	e.alive(t)
}
