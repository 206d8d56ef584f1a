package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// markedProcesses lists the live processes whose environment holds
// every one of markers.
func markedProcesses(markers ...string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !hasAll(append([]byte{0}, env...), markers) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue // a zombie is gone, if not yet reaped
			}
		}
		out = append(out, pid)
	}
	return out
}

// hasAll reports whether the NUL-separated environment env, which starts
// with a NUL, holds every one of markers.
func hasAll(env []byte, markers []string) bool {
	for _, m := range markers {
		if !bytes.Contains(env, []byte("\x00"+m+"\x00")) {
			return false
		}
	}
	return true
}

// A runtime's children that call setsid end with it: at a timeout reset
// and when lambdabox exits.
func TestSetsidChildrenDoNotSurvive(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	marker := "LAMBDABOX_TEST_MARKER=" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		for _, pid := range markedProcesses(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	e := startRIE(t, rieOpts{
		flags:   []string{"--timeout", "1s"},
		command: []string{self},
		env:     []string{"LAMBDABOX_TEST_RUNTIME=setsid", marker},
	})
	if !strings.Contains(e.Stderr.String()+e.Stdout.String(), "containing runtimes with ") {
		t.Errorf("no word at start of how runtimes are contained\nstderr:\n%s", e.Stderr)
	}
	resp, body := e.invoke(t, "function", `"hang"`)
	if resp.Header.Get("X-Amz-Function-Error") == "" || !strings.Contains(body, "Sandbox.Timedout") {
		t.Fatalf("want a timeout: %d %s", resp.StatusCode, body)
	}
	// The reset is over once the next invoke runs in a new runtime.
	if resp, body := e.invoke(t, "function", `"ok"`); resp.StatusCode != 200 || body != `"ok"` {
		t.Fatalf("invoke after the reset: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the second setsid child", func() bool { return strings.Count(e.Stdout.String(), "FAKE setsid child") == 2 })
	if left := markedProcesses(marker, "LAMBDABOX_TEST_RUNTIME=setsidchild"); len(left) != 1 {
		t.Errorf("after the reset, %d setsid children run (%v), want the new runtime's only", len(left), left)
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("lambdabox did not exit after SIGTERM\nstderr:\n%s", e.Stderr)
	}
	var left []int
	waitFor(t, "no marked process", func() bool { left = markedProcesses(marker); return len(left) == 0 })
}
