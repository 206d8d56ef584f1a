// Package pool keeps the warm execution environments of one function and
// caps how many run at once, as Lambda's reserved concurrency does.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
)

// ErrThrottled is returned by Invoke when no environment can take the
// request: the concurrency limit is reached and queueing is off or the
// wait ran out.
var ErrThrottled = errors.New("concurrency limit reached")

// Config configures a Pool.
type Config struct {
	// MaxConcurrency caps the environments, and so the invokes running at
	// once; default 10.
	MaxConcurrency int
	// Queue makes a request that finds every environment busy wait for
	// one, up to QueueTimeout, instead of failing at once.
	Queue bool
	// QueueTimeout bounds the wait of a queued request; usually the
	// function's timeout.
	QueueTimeout time.Duration
	// New creates the environment with the given index (0, 1, ...).
	New func(index int) (*environment.Environment, error)
}

// Pool runs invocations on a bounded set of environments.
type Pool struct {
	cfg   Config
	slots chan struct{} // one token per invoke that may run now

	mu     sync.Mutex
	idle   []*environment.Environment
	all    []*environment.Environment
	closed bool
}

// New returns an empty pool; environments start on demand.
func New(cfg Config) (*Pool, error) {
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = 10
	}
	if cfg.MaxConcurrency < 0 {
		return nil, fmt.Errorf("max concurrency %d: must be positive", cfg.MaxConcurrency)
	}
	if cfg.New == nil {
		return nil, errors.New("pool: no environment constructor")
	}
	return &Pool{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrency)}, nil
}

// Invoke runs req on an idle environment, or a new one while the limit
// allows; otherwise it waits (Queue) or returns ErrThrottled.
func (p *Pool) Invoke(ctx context.Context, req *environment.Request) (*environment.Result, error) {
	if err := p.acquireSlot(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.slots }()
	env, err := p.take()
	if err != nil {
		return nil, err
	}
	defer p.put(env)
	return env.Invoke(ctx, req), nil
}

// Init starts n environments and waits for their Init, as provisioned
// concurrency does. Failures are returned; the environments are kept and
// retry Init on their first invoke.
func (p *Pool) Init(ctx context.Context, n int) error {
	var errs []error
	envs := make([]*environment.Environment, 0, n)
	for range min(n, p.cfg.MaxConcurrency) {
		env, err := p.take()
		if err != nil {
			errs = append(errs, err)
			break
		}
		envs = append(envs, env)
		if err := env.Init(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, env := range envs {
		p.put(env)
	}
	return errors.Join(errs...)
}

func (p *Pool) acquireSlot(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if !p.cfg.Queue {
		return ErrThrottled
	}
	timer := time.NewTimer(p.cfg.QueueTimeout)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return ErrThrottled
	case <-ctx.Done():
		return ctx.Err()
	}
}

// take returns an idle environment, or creates one; the caller holds a slot.
func (p *Pool) take() (*environment.Environment, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("pool is shut down")
	}
	if n := len(p.idle); n > 0 {
		env := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return env, nil
	}
	env, err := p.cfg.New(len(p.all))
	if err != nil {
		return nil, fmt.Errorf("creating an execution environment: %w", err)
	}
	p.all = append(p.all, env)
	return env, nil
}

func (p *Pool) put(env *environment.Environment) {
	p.mu.Lock()
	p.idle = append(p.idle, env)
	p.mu.Unlock()
}

// Close shuts every environment down. In-flight invokes finish first, up to
// ctx's deadline.
func (p *Pool) Close(ctx context.Context) error {
	// Take every slot, so no invoke is running.
	for range p.cfg.MaxConcurrency {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	p.closed = true
	all := p.all
	p.mu.Unlock()
	var errs []error
	for _, env := range all {
		if err := env.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
