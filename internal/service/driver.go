package service

import (
	"context"
	"errors"
	"sync"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// errStopped refuses a start after stopAll.
var errStopped = errors.New("lambdabox is shutting down")

// tracker keeps the execution environments every function's driver
// started, so that a shutdown past its grace can stop those still running
// an invoke (their environments see a crash, and settle at once), and
// starts none after that.
type tracker struct {
	mu      sync.Mutex
	live    map[int]sandbox.Env
	next    int
	stopped bool
}

// tracked is a function's driver, reporting to the service's tracker.
type tracked struct {
	sandbox.Driver
	t *tracker
}

// trackedNetwork is a tracked driver that keeps its sandbox.Network.
type trackedNetwork struct {
	*tracked
	sandbox.Network
}

var (
	_ sandbox.Driver  = (*tracked)(nil)
	_ sandbox.Driver  = (*trackedNetwork)(nil)
	_ sandbox.Network = (*trackedNetwork)(nil)
)

// track wraps d so that t knows the environments it starts. The optional
// interfaces of a driver (sandbox.Network) stay visible through it.
func track(d sandbox.Driver, t *tracker) sandbox.Driver {
	td := &tracked{Driver: d, t: t}
	if n, ok := d.(sandbox.Network); ok {
		return &trackedNetwork{tracked: td, Network: n}
	}
	return td
}

// Start implements sandbox.Driver.
func (d *tracked) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	r := d.t
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		return nil, errStopped
	}
	env, err := d.Driver.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.stopped { // stopAll ran during the start
		r.mu.Unlock()
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_ = env.Stop(cancelled)
		return nil, errStopped
	}
	id := r.next
	r.next++
	r.live[id] = env
	r.mu.Unlock()
	go func() {
		<-env.Done()
		r.mu.Lock()
		delete(r.live, id)
		r.mu.Unlock()
	}()
	return env, nil
}

// stopAll stops every environment still running, hard once ctx ends, and
// refuses to start more.
func (r *tracker) stopAll(ctx context.Context) {
	r.mu.Lock()
	r.stopped = true
	envs := make([]sandbox.Env, 0, len(r.live))
	for _, env := range r.live {
		envs = append(envs, env)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Go(func() { _ = env.Stop(ctx) })
	}
	wg.Wait()
}
