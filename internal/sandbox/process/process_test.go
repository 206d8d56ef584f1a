package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

func TestStartStopKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	// The runtime starts a child that ignores SIGTERM; Stop must still end both.
	env, err := Driver{}.Start(context.Background(), sandbox.Spec{
		Path: "/bin/sh",
		Args: []string{"-c", `sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; while :; do sleep 1; done' & wait`},
	})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("child did not start")
		}
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if m, ok := env.(sandbox.MemoryReporter); !ok {
		t.Error("no MemoryReporter")
	} else if b, err := m.MaxMemory(); err != nil || b == 0 {
		t.Errorf("MaxMemory = %d, %v", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := env.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-env.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(child, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d survived Stop", child)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for args, want := range map[string]string{"exit 3": "exit status 3", "kill -9 $$": "signal: killed", "true": "exit status 0"} {
		env, err := Driver{}.Start(context.Background(), sandbox.Spec{Path: "/bin/sh", Args: []string{"-c", args}})
		if err != nil {
			t.Fatal(err)
		}
		<-env.Done()
		if got := env.Exit().String(); got != want {
			t.Errorf("%s: %s, want %s", args, got, want)
		}
	}
}

func TestInvalidEntrypoint(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/nonexistent/bootstrap": "no such file or directory",
		notExec:                  "permission denied",
		t.TempDir():              "permission denied",
	} {
		_, err := Driver{}.Start(context.Background(), sandbox.Spec{Path: path})
		var ee *sandbox.EntrypointError
		if !errors.Is(err, sandbox.ErrInvalidEntrypoint) || !errors.As(err, &ee) || !strings.Contains(ee.Error(), want) {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// A runtime that grew and then crashed still has its peak measured: the
// figure comes from its resource usage once /proc no longer has it.
func TestMaxMemoryAfterExit(t *testing.T) {
	env, err := Driver{}.Start(context.Background(), sandbox.Spec{
		Path: "/bin/sh",
		Args: []string{"-c", `x=$(head -c 52428800 /dev/zero | tr '\0' a); exit 3`},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-env.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the runtime did not exit")
	}
	b, err := env.(sandbox.MemoryReporter).MaxMemory()
	if err != nil || b < 50<<20 {
		t.Errorf("MaxMemory after exit = %d, %v; want at least 50 MiB", b, err)
	}
}
