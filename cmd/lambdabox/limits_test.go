package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// startLimitedRIE starts lambdabox rie with the gofn function under
// prlimit, with at most nofile open files; it is stopped when the test
// ends.
func startLimitedRIE(t *testing.T, nofile string) *emulator {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	addr := freeAddr(t)
	e := &emulator{URL: "http://" + addr, Stdout: &syncbuf.Buffer{}, Stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(prlimit, "--nofile="+nofile+":"+nofile, lambdaboxBin, "rie",
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t), goFnBin)
	e.cmd.Env = os.Environ()
	e.cmd.Stdout, e.cmd.Stderr = e.Stdout, e.Stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() { e.stop(t) })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return e
		}
		select {
		case <-e.done:
			t.Fatalf("lambdabox exited early\nstderr:\n%s", e.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdabox did not start serving on %s\nstderr:\n%s", addr, e.Stderr)
		}
	}
}

// TestIdleConnectionsDoNotLockOut holds 115 idle connections to the Invoke
// API of a lambdabox limited to 128 open files: a new client's invokes
// still succeed.
func TestIdleConnectionsDoNotLockOut(t *testing.T) {
	e := startLimitedRIE(t, "128")
	addr := strings.TrimPrefix(e.URL, "http://")
	for i := range 115 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if i%2 == 0 {
			// Idle after a request; the others never send one.
			_, _ = io.WriteString(c, "GET /lambdabox/functions/function/failed-events HTTP/1.1\r\nHost: x\r\n\r\n")
		}
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Post(e.URL+"/2015-03-31/functions/function/invocations", "application/json",
			strings.NewReader(`{"op":"echo","data":"new client"}`))
		if err != nil {
			t.Fatalf("invoke %d by a new client: %v\nstderr:\n%s", i, err, e.Stderr)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != `"new client"` {
			t.Fatalf("invoke %d by a new client: %d %s\nstderr:\n%s", i, resp.StatusCode, b, e.Stderr)
		}
		client.CloseIdleConnections() // a new connection each time
	}
}

// TestInvokeAPIRejectsContentLengthWithTransferEncoding sends a request
// with both framings and a smuggled request behind it: 400, the connection
// closes, and the function never runs.
func TestInvokeAPIRejectsContentLengthWithTransferEncoding(t *testing.T) {
	e := startRIE(t, rieOpts{command: []string{goFnBin}})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	smuggled := "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n" + `{"op":"echo","data":"smuggled"}` + "\n"
	_, err = io.WriteString(c, "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\n"+
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Errorf("%d, Connection: close %v; want 400 and close", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the 400: %v, want EOF", err)
	}
	if strings.Contains(e.Stdout.String(), "smuggled") {
		t.Errorf("the smuggled request reached the function:\n%s", e.Stdout)
	}
}
