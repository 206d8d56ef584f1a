package pool

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

// In Managed Instances mode the pool counts slots: one environment of two
// slots takes two invokes, and a third is throttled rather than starting
// a second environment.
func TestPoolCountsSlots(t *testing.T) {
	release := make(chan struct{})
	d := &sandboxtest.Driver{Handler: func(p []byte) ([]byte, error) { <-release; return p, nil }}
	fn := function.Config{Command: []string{"bootstrap"}, Dir: t.TempDir(), Timeout: 10 * time.Second, PerEnvironmentConcurrency: 2}.WithDefaults()
	extDir := t.TempDir()
	p, err := New(Config{MaxConcurrency: 1, PerEnvironment: 2, New: func(int, bool) (*environment.Environment, error) {
		return environment.New(environment.Config{Function: fn, Driver: d, RuntimeAPIAddr: "127.0.0.1:0", ExtensionsDir: extDir, Output: io.Discard})
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	done := make(chan error, 2)
	for range 2 {
		go func() { _, err := invoke(context.Background(), p, `{}`); done <- err }()
	}
	for deadline := time.Now().Add(5 * time.Second); d.Started() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no runtime started")
		}
	}
	time.Sleep(100 * time.Millisecond) // both invokes hold their slots
	if _, err := invoke(context.Background(), p, `{}`); !errors.Is(err, ErrThrottled) {
		t.Errorf("third invoke on 2 slots: %v, want ErrThrottled", err)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("invoke: %v", err)
		}
	}
	if n := d.Started(); n != 1 {
		t.Errorf("%d environments started for 2 slots of one; want 1", n)
	}
}

func TestPoolPerEnvironmentValidation(t *testing.T) {
	_, err := New(Config{PerEnvironment: -1, New: func(int, bool) (*environment.Environment, error) { return nil, nil }})
	if err == nil {
		t.Error("negative PerEnvironment accepted")
	}
}
