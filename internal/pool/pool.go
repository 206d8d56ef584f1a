// Package pool keeps the warm execution environments of one function and
// caps how many run at once, as Lambda's reserved concurrency does. The
// pool counts slots: an environment has one, or, in Lambda Managed
// Instances mode, PerEnvironment of them, and takes that many invokes at
// once.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
)

// ErrThrottled is returned by Invoke when no environment can take the
// request: the concurrency limit is reached and queueing is off or the
// wait ran out. It is function.ErrThrottled.
var ErrThrottled = function.ErrThrottled

// DefaultMaxConcurrency is Config.MaxConcurrency's default.
const DefaultMaxConcurrency = 10

// Config configures a Pool.
type Config struct {
	// MaxConcurrency caps the environments; default DefaultMaxConcurrency. The invokes
	// running at once are capped at MaxConcurrency × PerEnvironment.
	MaxConcurrency int
	// PerEnvironment is how many invokes one environment takes at once
	// (Lambda Managed Instances); default 1. The pool fills an
	// environment's slots before it starts another; a managed environment
	// runs its invokes with Environment.InvokeShared.
	PerEnvironment int
	// Queue makes a request that finds every environment busy wait for
	// one, up to QueueTimeout, instead of failing at once. Without it, a
	// request fails with ErrThrottled only when as many invokes as there
	// are slots are running: a slot that is settling is waited for.
	Queue bool
	// QueueTimeout bounds the wait of a queued request, and without
	// Queue the wait for a slot whose invoke has answered and is settling
	// (END, REPORT, the runtime's next); usually the function's timeout.
	QueueTimeout time.Duration
	// KeepAlive is how long an environment may stay idle before it is shut
	// down (SHUTDOWN with reason spindown, SIGTERM, SIGKILL); it starts
	// again on demand. Zero keeps environments forever. Pre-warmed
	// environments are never shut down.
	KeepAlive time.Duration
	// Limit, when set, counts this pool's invokes with those of the
	// other pools that share it: the function's versions, whose reserved
	// concurrency Lambda counts as one. Default: the pool's own, of
	// MaxConcurrency × PerEnvironment.
	Limit *Limit
	// New creates the environment with the given index (0, 1, ...);
	// provisioned is set for the environments Init pre-warms.
	New func(index int, provisioned bool) (*environment.Environment, error)
	// Log receives the pool's diagnostics; default: discarded.
	Log *slog.Logger
}

// Limit is the number of invokes that may run at once, in one pool or
// in several that share it (Config.Limit).
type Limit struct {
	slots chan struct{} // one token per invoke that may run now
	// running counts the slots whose invoke has not answered yet (or
	// streams); the other taken slots are settling.
	running atomic.Int64

	mu   sync.Mutex // guards next and debt
	next *Limit     // the limit that succeeded this one (Succeed)
	debt int        // this limit's slots still taken, counted by next too
}

// NewLimit returns a limit of n invokes at once; n is at least 1.
func NewLimit(n int) *Limit { return &Limit{slots: make(chan struct{}, max(n, 1))} }

// Size is the number of invokes the limit lets run at once.
func (l *Limit) Size() int { return cap(l.slots) }

// Succeed returns a limit of n invokes that replaces l (a new reserved
// concurrency): the invokes l still runs count against it too, until
// they end, so lowering the limit lets no new invoke in until fewer than
// n run in all.
func (l *Limit) Succeed(n int) *Limit {
	next := NewLimit(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next, l.debt = next, len(l.slots)
	held := min(l.debt, next.Size())
	for range held {
		next.slots <- struct{}{}
	}
	next.running.Add(int64(held))
	return next
}

// release gives back a slot of l, and the one its successor holds for it
// once fewer of l's are taken than the successor has.
func (l *Limit) release() {
	<-l.slots
	l.mu.Lock()
	if l.next == nil || l.debt == 0 {
		l.mu.Unlock()
		return
	}
	l.debt--
	next, pass := l.next, l.debt < l.next.Size()
	l.mu.Unlock()
	if pass {
		next.running.Add(-1)
		next.release()
	}
}

// Pool runs invocations on a bounded set of environments.
type Pool struct {
	cfg    Config
	limit  *Limit    // cfg.Limit, or the pool's own
	timers sync.Pool // *time.Timer, stopped: acquireSlot's waits
	// settle hands an invoke's settling (END, REPORT, the slot back) to a
	// settler goroutine waiting for one; settlers counts them.
	settle   chan func()
	settlers sync.WaitGroup

	mu      sync.Mutex
	idle    []*idleEnv
	all     []*environment.Environment
	busy    int  // environments taken and not yet put back (invoking or settling)
	gaveUp  bool // Close stopped waiting for the busy ones: put closes them
	closed  bool
	done    chan struct{} // closed by Close; stops the reaper
	reaped  chan struct{} // closed when the reaper has stopped; nil without one
	settled chan struct{} // closed once the pool is closed and no environment is busy
}

type idleEnv struct {
	env    *environment.Environment
	since  time.Time // when its last slot was given back
	pinned bool      // pre-warmed: never spun down
	asleep bool      // spun down; starts again on its next invoke
	inUse  int       // slots taken
	listed bool      // in Pool.idle: it has a free slot
	// tenant is the tenant (X-Amz-Tenant-Id) whose invokes the
	// environment runs; "" for functions without tenant isolation. An
	// environment serves one tenant only: to run another's invoke, it is
	// shut down first (its runtime and extensions end) and starts afresh.
	tenant string
	used   bool // has run an invoke; a pre-warmed one that has not may take any tenant
}

// New returns an empty pool; environments start on demand.
func New(cfg Config) (*Pool, error) {
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	if cfg.MaxConcurrency < 0 {
		return nil, fmt.Errorf("max concurrency %d: must be positive", cfg.MaxConcurrency)
	}
	if cfg.PerEnvironment == 0 {
		cfg.PerEnvironment = 1
	}
	if cfg.PerEnvironment < 0 {
		return nil, fmt.Errorf("per-environment concurrency %d: must be positive", cfg.PerEnvironment)
	}
	if cfg.New == nil {
		return nil, errors.New("pool: no environment constructor")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{cfg: cfg, limit: cfg.Limit, done: make(chan struct{}), settled: make(chan struct{}), settle: make(chan func())}
	if p.limit == nil {
		p.limit = NewLimit(cfg.MaxConcurrency * cfg.PerEnvironment)
	}
	if cfg.KeepAlive > 0 {
		p.reaped = make(chan struct{})
		go p.reap()
	}
	return p, nil
}

// Invoke runs req on an idle environment, or a new one while the limit
// allows; otherwise it waits (Queue) or returns ErrThrottled.
func (p *Pool) Invoke(ctx context.Context, req *function.Request) (*function.Result, error) {
	if err := p.acquireSlot(ctx); err != nil {
		return nil, err
	}
	p.limit.running.Add(1)
	ie, reassigned, err := p.take(false, req.TenantID)
	if err != nil {
		p.limit.running.Add(-1)
		p.limit.release()
		return nil, err
	}
	if reassigned {
		// It served another tenant: nothing of that runs on.
		ie.env.Shutdown(ctx, environment.ReasonSpindown)
	}
	var res *function.Result
	var settle func() // a managed environment's, for this invoke
	if ie.env.Managed() {
		res, settle = ie.env.InvokeShared(ctx, req)
	} else {
		res = ie.env.Invoke(ctx, req)
	}
	// The caller answers while the environment settles (END, REPORT); the
	// slot takes its next invoke only after that. A streamed answer runs
	// on until the settle has it whole.
	streams := res.Stream != nil
	if !streams {
		p.limit.running.Add(-1)
	}
	job := func() {
		if settle != nil {
			settle()
		} else {
			ie.env.Settle()
		}
		if streams {
			p.limit.running.Add(-1)
		}
		p.put(ie)
		p.limit.release()
	}
	select {
	case p.settle <- job: // a settler was waiting
	default:
		p.settlers.Add(1)
		go p.settler(job)
	}
	return res, nil
}

// settler runs job, then the jobs handed to it, until the pool closes.
// Settlers outlive their first job because a new goroutine per invoke
// grows its stack on every settle (REPORT's formatting is deep): about 12k
// instructions an invoke. There are at most as many as invokes settled at
// once, bounded by the pool's slots.
func (p *Pool) settler(job func()) {
	defer p.settlers.Done()
	for {
		job()
		select {
		case job = <-p.settle:
		case <-p.done:
			return
		}
	}
}

// Init pre-warms n environments, as provisioned concurrency does: they
// start with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency, run
// Init now, and are never spun down. Init failures are returned; those
// environments retry Init on their first invoke.
func (p *Pool) Init(ctx context.Context, n int) error {
	var errs []error
	var envs []*idleEnv
	for range min(n, p.cfg.MaxConcurrency) {
		ie, _, err := p.take(true, "")
		if err != nil {
			errs = append(errs, err)
			break
		}
		envs = append(envs, ie)
		if err := ie.env.Init(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ie := range envs {
		p.put(ie)
	}
	return errors.Join(errs...)
}

// acquireSlot takes a slot token: at once when one is free, else as
// Config.Queue says.
func (p *Pool) acquireSlot(ctx context.Context) error {
	select {
	case p.limit.slots <- struct{}{}:
		return nil
	default:
	}
	// A client that invokes again as soon as it is answered often finds
	// its slot still settling: the wait's timer is reused (a stopped
	// timer sends nothing stale after Reset, since Go 1.23).
	timer, _ := p.timers.Get().(*time.Timer)
	if timer == nil {
		timer = time.NewTimer(p.cfg.QueueTimeout)
	} else {
		timer.Reset(p.cfg.QueueTimeout)
	}
	defer func() {
		timer.Stop()
		p.timers.Put(timer)
	}()
	if p.cfg.Queue {
		select {
		case p.limit.slots <- struct{}{}:
			return nil
		case <-timer.C:
			return ErrThrottled
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Only running invokes count against the limit, as on Lambda: a
	// request that finds some slot settling (its invoke answered; END,
	// REPORT, the runtime's next to come), e.g. a client's next invoke,
	// waits for it, and is throttled once every slot runs an invoke.
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for p.limit.running.Load() < int64(cap(p.limit.slots)) {
		select {
		case p.limit.slots <- struct{}{}:
			return nil
		case <-tick.C:
		case <-timer.C:
			return ErrThrottled
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ErrThrottled
}

// settlePoll is how often a request waiting for a settling slot checks
// whether every slot now runs an invoke, when another request took the
// slot it waited for.
const settlePoll = time.Millisecond

// take returns a slot of an environment of tenant with one free, or of a
// new environment (pre-warmed when provisioned); the caller holds a slot
// token or is Init. When every environment the limit allows exists and
// none with a free slot is the tenant's, the least recently used one that
// runs nothing is given to the tenant: reassigned is then set, and the
// caller shuts it down before it runs the invoke.
func (p *Pool) take(provisioned bool, tenant string) (ie *idleEnv, reassigned bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, errors.New("pool is shut down")
	}
	if !provisioned {
		// The most recently used environment of the tenant is the
		// warmest; a pre-warmed one no tenant has used yet will do.
		pick := -1
		for i := len(p.idle) - 1; i >= 0; i-- {
			if p.idle[i].tenant == tenant {
				pick = i
				break
			}
			if pick < 0 && !p.idle[i].used {
				pick = i
			}
		}
		// Every environment exists: the coldest one that runs nothing
		// changes tenant.
		if pick < 0 && len(p.all) >= p.cfg.MaxConcurrency {
			for i, c := range p.idle {
				if c.inUse == 0 {
					pick, reassigned = i, true
					break
				}
			}
		}
		if pick >= 0 {
			ie = p.idle[pick]
			if reassigned {
				p.cfg.Log.Info("an idle execution environment changes tenant: it is shut down first", "runtime_api", ie.env.RuntimeAPI())
			}
			ie.tenant, ie.used = tenant, true
			ie.inUse++
			ie.asleep = false
			if ie.inUse == p.cfg.PerEnvironment { // full: off the list
				p.idle = append(p.idle[:pick], p.idle[pick+1:]...)
				ie.listed = false
			}
			p.busy++
			return ie, reassigned, nil
		}
	}
	env, err := p.cfg.New(len(p.all), provisioned)
	if err != nil {
		return nil, false, fmt.Errorf("creating an execution environment: %w", err)
	}
	p.all = append(p.all, env)
	p.busy++
	ie = &idleEnv{env: env, pinned: provisioned, inUse: 1, tenant: tenant, used: !provisioned}
	if p.cfg.PerEnvironment > 1 && !provisioned {
		p.idle = append(p.idle, ie) // its other slots are free
		ie.listed = true
	}
	return ie, false, nil
}

// put gives back a slot that take returned, once its invoke has settled.
// If Close has stopped waiting for the environment, put closes it instead
// once its last slot is back.
func (p *Pool) put(ie *idleEnv) {
	p.mu.Lock()
	ie.inUse--
	if ie.inUse == 0 {
		ie.since = time.Now()
	}
	p.busy--
	abandoned := p.gaveUp && ie.inUse == 0
	switch {
	case p.gaveUp:
		if ie.listed { // Close left it for its last slot to close
			p.idle = slices.DeleteFunc(p.idle, func(x *idleEnv) bool { return x == ie })
			ie.listed = false
		}
	case !ie.listed:
		p.idle = append(p.idle, ie)
		ie.listed = true
	}
	if p.closed && p.busy == 0 {
		close(p.settled)
	}
	p.mu.Unlock()
	if abandoned {
		if err := ie.env.Close(context.Background()); err != nil {
			p.cfg.Log.Error("closing an execution environment after its last invoke", "error", err)
		}
	}
}

// reap spins down environments idle for longer than the keep-alive.
func (p *Pool) reap() {
	defer close(p.reaped)
	tick := time.NewTicker(min(p.cfg.KeepAlive/4+time.Millisecond, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		var sleepy []*idleEnv
		kept := p.idle[:0]
		for _, ie := range p.idle {
			if ie.inUse == 0 && !ie.pinned && !ie.asleep && time.Since(ie.since) >= p.cfg.KeepAlive {
				sleepy = append(sleepy, ie)
				ie.listed = false
			} else {
				kept = append(kept, ie)
			}
		}
		p.idle = kept
		p.mu.Unlock()
		for _, ie := range sleepy {
			p.cfg.Log.Info("spinning down an idle execution environment", "runtime_api", ie.env.RuntimeAPI(), "idle_for", time.Since(ie.since).Round(time.Millisecond))
			ie.env.Shutdown(context.Background(), environment.ReasonSpindown)
			p.mu.Lock()
			ie.asleep = true
			// Back at the cold end: warm environments are taken first.
			p.idle = append([]*idleEnv{ie}, p.idle...)
			ie.listed = true
			p.mu.Unlock()
		}
	}
}

// Close shuts the pool down, in this order: no new invoke starts; an
// environment the reaper is spinning down finishes that; every invoke in
// flight finishes and settles; then the environments are closed, never
// one that is still invoking or settling. ctx bounds the wait for the
// settles and the environments' shutdown: if it ends first, the
// environments still busy are closed by their own settle, after it, and
// Close says how many.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		if p.busy == 0 {
			close(p.settled)
		}
	}
	p.mu.Unlock()
	// An environment the reaper is spinning down is closed only after
	// that, which its own shutdown deadlines bound.
	if p.reaped != nil {
		<-p.reaped
	}
	select {
	case <-p.settled:
		p.settlers.Wait() // each has seen done and is ending
	case <-ctx.Done():
	}
	p.mu.Lock()
	var idle []*idleEnv
	kept := p.idle[:0]
	for _, ie := range p.idle {
		if ie.inUse == 0 {
			idle = append(idle, ie)
			ie.listed = false
		} else { // closed by put, when its last slot is back
			kept = append(kept, ie)
		}
	}
	p.idle = kept
	busy := p.busy
	p.gaveUp = busy > 0
	p.mu.Unlock()
	var errs []error
	for _, ie := range idle {
		if err := ie.env.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if busy > 0 {
		errs = append(errs, fmt.Errorf("%d execution environments still busy at shutdown; each closes once its invoke settles", busy))
	}
	return errors.Join(errs...)
}
