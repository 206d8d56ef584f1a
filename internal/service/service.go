// Package service runs many Lambda functions behind one Invoke API: for
// each function a pool of execution environments on a sandbox driver, an
// asynchronous (Event) queue, and optionally a function URL and API
// Gateway routes. Functions can be added, replaced and removed while the
// service runs; Run serves until its context ends, then shuts everything
// down in one order (see Run).
//
// A function keeps its name across a Replace: the Invoke API, its function
// URL, its routes and its async queue hold a stable handle whose current
// instance (a pool built from one FunctionSpec) is swapped. Invokes that
// started on the old instance finish there; new invokes get the new one;
// the old instance is closed once the last of its invokes has returned.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/httpserver"
	"github.com/lambdabox/lambdabox/internal/invoke"
	"github.com/lambdabox/lambdabox/internal/pool"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// DefaultShutdownTimeout is the grace of a shutdown: within the 10 s that
// docker stop waits before SIGKILL, with room to close the environments.
const DefaultShutdownTimeout = 8 * time.Second

// Defaults of Config.
const (
	DefaultInvokeAddr = "127.0.0.1:9001"
	DefaultAPIAddr    = "127.0.0.1:3000"
)

// Config configures a Service. Zero values are the documented defaults.
type Config struct {
	// InvokeAddr is where the Invoke API listens; default DefaultInvokeAddr.
	InvokeAddr string
	// APIAddr is where the API Gateway emulation listens, once any function
	// has routes; default DefaultAPIAddr.
	APIAddr string
	// Driver starts the execution environments of every function whose
	// spec names no driver of its own. Required unless every spec has one.
	Driver sandbox.Driver
	// ShutdownTimeout is the grace of the invokes in flight at shutdown;
	// zero or less: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// EndGrace, when closed, ends the shutdown grace at once (lambdabox
	// closes it at a second SIGTERM or SIGINT). Nil: the grace runs out.
	EndGrace <-chan struct{}
	// Output receives the functions' log lines and the platform's START,
	// END and REPORT lines; default os.Stdout.
	Output io.Writer
	// Log receives the service's own diagnostics; default: discarded.
	Log *slog.Logger
	// Control answers the requests on the Invoke API's address that the
	// Invoke API does not route (the control-plane API); nil: Lambda's
	// UnknownOperationException.
	Control http.Handler
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	for _, a := range []string{c.InvokeAddr, c.APIAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("address %q: %w", a, err)
		}
	}
	return nil
}

// FunctionSpec is one function as the service runs it.
type FunctionSpec struct {
	// Function is the function: name, handler, limits, command (its
	// bootstrap and arguments) and environment. WithDefaults is applied.
	Function function.Config
	// Driver starts its execution environments; nil: Config.Driver.
	Driver sandbox.Driver
	// OwnsDriver hands Driver to the service: when Add or Replace of this
	// spec fails, or once the instance made from it retires (Replace,
	// Remove, shutdown) and its environments are closed, the service calls
	// Driver's Close(ctx) error if it has one (a container driver removes
	// the container it keeps ready).
	OwnsDriver bool
	// RuntimeAPIAddr is the Runtime API address of the first execution
	// environment, bound when the function is added so that a taken port
	// fails the Add; the others take free ports. Default "127.0.0.1:0".
	RuntimeAPIAddr string
	// MaxConcurrency caps the execution environments (reserved
	// concurrency); default 10, as pool's. The invokes running at once are
	// capped at MaxConcurrency × Function.Slots(): in Lambda Managed
	// Instances mode (Function.PerEnvironmentConcurrency) each environment
	// takes that many at once.
	MaxConcurrency int
	// Queue makes requests past MaxConcurrency wait for an environment, up
	// to the function's timeout; false answers them function.ErrThrottled
	// (429).
	Queue bool
	// Throttled answers every invoke function.ErrThrottled (429) and starts no
	// environment, as Lambda does for a function whose reserved
	// concurrency is 0; its async events wait until it is not.
	Throttled bool
	// KeepAlive spins environments down after this long idle; 0 keeps them.
	KeepAlive time.Duration
	// Provisioned pre-warms this many environments as provisioned
	// concurrency, when the service starts or the function is added.
	Provisioned int
	// InitAtStart runs Init of the first environment when the service
	// starts or the function is added, instead of at the first invoke.
	InitAtStart bool
	// ExtensionsDir holds external extensions; default
	// environment.DefaultExtensionsDir.
	ExtensionsDir string
	// StreamShaping slows streamed responses past 6 MiB as Lambda does.
	StreamShaping bool
	// Async configures the function's queue of Event invocations.
	Async AsyncSpec
	// FunctionURL, when set, serves the function as a function URL on this
	// address; URLStreaming makes it RESPONSE_STREAM.
	FunctionURL  string
	URLStreaming bool
	// Routes are the function's API Gateway routes, served on
	// Config.APIAddr; Function and FunctionARN are filled in.
	Routes []httpfront.Route
	// Output receives this function's log lines and its START, END and
	// REPORT lines; default Config.Output.
	Output io.Writer
}

// AsyncSpec configures a function's queue of Event invocations. It is
// fixed when the function is added: Replace keeps the queue (and the events
// in it, which run on the new code).
type AsyncSpec struct {
	// Dir makes the queue durable (see async.Config.Dir); "" keeps it in
	// memory only.
	Dir string
	// RetryDelay is the wait before the first retry; default 1 s.
	RetryDelay time.Duration
	// MaxQueued and MaxQueuedBytes cap the events held in memory; 0:
	// async's defaults.
	MaxQueued      int
	MaxQueuedBytes int64
}

// Errors of Add, Replace and Remove.
var (
	// ErrExists is returned by Add for a name that is already served.
	ErrExists = errors.New("function already exists")
	// ErrNotFound is returned by Replace and Remove for an unknown name.
	ErrNotFound = errors.New("function not found")
	// ErrClosed is returned once the service has shut down.
	ErrClosed = errors.New("service is shut down")
)

// Service runs functions. Create it with New; Run serves.
type Service struct {
	cfg    Config
	log    *slog.Logger
	out    io.Writer
	track  *tracker
	invoke *invoke.Server
	invFr  *front    // the Invoke API's front, also fronts[0]
	api    swappable // the API Gateway emulation's current router

	mu    sync.Mutex // guards what follows, and serialises Add/Replace/Remove
	funcs map[string]*handle
	// limits holds, by function name, the limit of invokes at once that
	// its versions share: Lambda counts reserved concurrency per
	// function, not per version.
	limits  map[string]*pool.Limit
	order   []string // names in the order they were added
	fronts  []*front // serving (or to serve, before Run): Invoke API, API, function URLs
	apiUp   *front   // the API Gateway front, once any route exists
	running bool     // Run is serving: new fronts start at once
	closed  bool
	errc    chan error // a front that stopped serving
	ready   chan struct{}
	// retiring counts what Replace and Remove took out of service and
	// is still finishing its requests and invokes, in the background;
	// shutdown waits for them. retireCtx bounds them: it ends with the
	// shutdown's grace.
	retiring  sync.WaitGroup
	retireCtx context.Context
	endRetire context.CancelFunc
}

// New returns a service with no functions.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InvokeAddr == "" {
		cfg.InvokeAddr = DefaultInvokeAddr
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Output == nil {
		cfg.Output = os.Stdout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, log: log, out: cfg.Output,
		track:  &tracker{live: map[int]sandbox.Env{}},
		invoke: invoke.NewServer(log),
		funcs:  map[string]*handle{},
		limits: map[string]*pool.Limit{},
		errc:   make(chan error, 16),
		ready:  make(chan struct{}),
	}
	s.retireCtx, s.endRetire = context.WithCancel(context.Background())
	s.invoke.HandleOthers(cfg.Control)
	s.invFr = &front{name: "Invoke API", addr: cfg.InvokeAddr, handler: s.invoke}
	s.fronts = []*front{s.invFr}
	return s, nil
}

// front is one HTTP server of the service.
type front struct {
	name     string
	addr     string // as configured
	function string // the function it serves, for the log; "" for all
	handler  http.Handler
	ln       net.Listener // set once listening
	srv      *httpserver.Server
}

// Addr is where the front listens, once it does.
func (f *front) Addr() string {
	if f.ln == nil {
		return ""
	}
	return f.ln.Addr().String()
}

// handle is a function as the fronts and the queue see it: stable across
// Replace.
type handle struct {
	name  string
	queue *async.Queue
	url   *front // nil without a function URL

	mu  sync.RWMutex // guards cur: readers take an invoke slot on it
	cur *instance
}

// instance is one FunctionSpec running: a pool of environments.
type instance struct {
	spec   FunctionSpec
	pool   *pool.Pool
	first  *environment.Environment
	taken  atomic.Bool    // the pool took first: it closes it
	calls  sync.WaitGroup // invokes that took this instance
	routes []httpfront.Route
}

// close closes inst's pool, and its first environment if the pool never
// took it (no invoke came): that one holds its Runtime API listener from
// the start.
func (inst *instance) close(ctx context.Context) error {
	err := inst.pool.Close(ctx)
	if inst.taken.CompareAndSwap(false, true) {
		err = errors.Join(err, inst.first.Close(ctx))
	}
	return err
}

// Invoke implements the fronts' and the queue's Function: it runs req on
// the function's current instance.
func (h *handle) Invoke(ctx context.Context, req *function.Request) (*function.Result, error) {
	h.mu.RLock()
	inst := h.cur
	if inst == nil {
		h.mu.RUnlock()
		return nil, fmt.Errorf("function %s: %w", h.name, ErrNotFound)
	}
	inst.calls.Add(1)
	h.mu.RUnlock()
	defer inst.calls.Done()
	if inst.spec.Throttled {
		return nil, function.ErrThrottled
	}
	return inst.pool.Invoke(ctx, req)
}

// swap makes next the current instance (nil: none) and returns the one
// before. No invoke takes the old instance after swap returns.
func (h *handle) swap(next *instance) *instance {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur
	h.cur = next
	return old
}

// current is the current instance, or nil.
func (h *handle) current() *instance {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cur
}

// Ready is closed once Run listens on every address.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// InvokeAddr is the address the Invoke API listens on, once Ready.
func (s *Service) InvokeAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invFr.Addr()
}

// APIAddr is the address of the API Gateway emulation, once Ready and
// once any function has routes; else "".
func (s *Service) APIAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apiUp == nil {
		return ""
	}
	return s.apiUp.Addr()
}

// FunctionURLAddr is the address of the named function's URL, once Ready;
// "" when it has none.
func (s *Service) FunctionURLAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.funcs[name]; h != nil && h.url != nil {
		return h.url.Addr()
	}
	return ""
}

// Key names a function version in the service (Functions, Remove,
// FunctionURLAddr): its name for $LATEST, else "name:version". Each
// version is its own instance, with its own pool and queue.
func Key(f function.Config) string {
	f = f.WithDefaults()
	if f.Version == function.DefaultVersion {
		return f.Name
	}
	return f.Name + ":" + f.Version
}

// SetAlias makes the Invoke API route the named function's alias as a
// says (a version, optionally weighted with others); the versions are
// added with Add.
func (s *Service) SetAlias(name, alias string, a invoke.Alias) { s.invoke.SetAlias(name, alias, a) }

// RemoveAlias removes an alias of the named function.
func (s *Service) RemoveAlias(name, alias string) { s.invoke.RemoveAlias(name, alias) }

// Functions lists the keys (see Key) served, in the order they were added.
func (s *Service) Functions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

// Add starts serving a new function, or a new version of one (see Key). The first function added also
// answers to the name "function", as aws-lambda-rie's does. While the
// service runs, the function's URL front starts at once and its routes
// join the API Gateway emulation; pre-warming (Provisioned, InitAtStart)
// runs before Add returns.
func (s *Service) Add(ctx context.Context, spec FunctionSpec) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, closeDriver(ctx, spec))
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	spec.Function = spec.Function.WithDefaults()
	name := Key(spec.Function)
	if s.funcs[name] != nil {
		return fmt.Errorf("function %s: %w", name, ErrExists)
	}
	inst, err := s.start(spec)
	if err != nil {
		return err
	}
	h := &handle{name: name, cur: inst}
	q, err := async.New(async.Config{
		Function:       h,
		FunctionARN:    spec.Function.ARN(),
		Version:        spec.Function.Version,
		Workers:        spec.MaxConcurrency * spec.Function.Slots(),
		RetryDelay:     spec.Async.RetryDelay,
		Dir:            spec.Async.Dir,
		MaxQueued:      spec.Async.MaxQueued,
		MaxQueuedBytes: spec.Async.MaxQueuedBytes,
		Log:            s.log.With("function", name),
	})
	if err != nil {
		return errors.Join(fmt.Errorf("function %s: %w", name, err), inst.close(ctx))
	}
	h.queue = q
	if spec.Async.Dir == "" {
		s.log.Info("asynchronous (Event) invocations are queued in memory only: those not run by shutdown are dropped; --async-dir keeps them on disk", "function", name)
	}
	closeAll := func() error { return errors.Join(q.Close(ctx), inst.close(ctx)) }
	if spec.FunctionURL != "" {
		hf, err := httpfront.NewFunctionURL(h, httpfront.Config{FunctionARN: spec.Function.ARN(), Streaming: spec.URLStreaming, Log: s.log})
		if err != nil {
			return errors.Join(fmt.Errorf("function %s: function URL: %w", name, err), closeAll())
		}
		sw := &swappable{}
		sw.set(hf)
		h.url = &front{name: "function URL", addr: spec.FunctionURL, function: name, handler: sw}
	}
	s.funcs[name] = h
	s.order = append(s.order, name)
	if h.url != nil {
		if s.running {
			if err := s.listen(h.url); err != nil {
				s.forget(name)
				return errors.Join(err, closeAll())
			}
		}
		s.fronts = append(s.fronts, h.url)
	}
	if err := s.updateAPI(); err != nil {
		s.forget(name)
		if h.url != nil {
			s.dropFront(h.url)
			if h.url.ln != nil {
				h.url.ln.Close()
			}
		}
		return errors.Join(err, closeAll())
	}
	if h.url != nil && s.running {
		s.serveFront(h.url)
	}
	if s.running {
		s.warm(ctx, inst)
	}
	s.invoke.Add(spec.Function, h, q)
	return nil
}

// forget drops name from the maps; s.mu is held.
func (s *Service) forget(name string) {
	fn := s.funcs[name].current().spec.Function.Name
	delete(s.funcs, name)
	for i, n := range s.order {
		if n == name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for _, h := range s.funcs {
		if inst := h.current(); inst != nil && inst.spec.Function.Name == fn {
			return
		}
	}
	delete(s.limits, fn)
}

// limit returns the limit of invokes at once that spec's function's
// versions share, succeeded by a new one when its size changes (the
// instances on the old one keep it); s.mu is held.
func (s *Service) limit(spec FunctionSpec) *pool.Limit {
	n := cmp.Or(spec.MaxConcurrency, pool.DefaultMaxConcurrency) * spec.Function.Slots()
	if n < 1 {
		return nil // pool.New refuses the spec
	}
	name := spec.Function.Name
	l := s.limits[name]
	switch {
	case l == nil:
		l = pool.NewLimit(n)
	case l.Size() != n:
		l = l.Succeed(n) // the invokes under the old one count on
	}
	s.limits[name] = l
	return l
}

// Replace swaps the function (Key(spec.Function)) for spec: the new
// instance is started (and pre-warmed, while the service runs) first; then
// new invokes go to it, while those in flight finish on the old one, which
// is closed after them in the background (Replace does not wait for them;
// Run's shutdown does). Nothing fails during the swap. The
// async queue is kept. A function URL on the same address stays up (a
// changed mode applies to new requests); on a new address it moves. A
// RuntimeAPIAddr equal to the old instance's is not reused (the old one
// still holds it): the new first environment takes a free port.
func (s *Service) Replace(ctx context.Context, spec FunctionSpec) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, closeDriver(ctx, spec))
		}
	}()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	spec.Function = spec.Function.WithDefaults()
	name := Key(spec.Function)
	h := s.funcs[name]
	if h == nil {
		s.mu.Unlock()
		return fmt.Errorf("function %s: %w", name, ErrNotFound)
	}
	prev := h.current().spec
	if spec.RuntimeAPIAddr == prev.RuntimeAPIAddr {
		spec.RuntimeAPIAddr = ""
	}
	inst, err := s.start(spec)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	fail := func(err error) error {
		s.mu.Unlock()
		return errors.Join(err, inst.close(ctx))
	}
	var urlHandler http.Handler
	if spec.FunctionURL != "" {
		if urlHandler, err = httpfront.NewFunctionURL(h, httpfront.Config{FunctionARN: spec.Function.ARN(), Streaming: spec.URLStreaming, Log: s.log}); err != nil {
			return fail(fmt.Errorf("function %s: function URL: %w", name, err))
		}
	}
	oldURL, newURL := h.url, h.url
	// The same address, or the one the old URL's port 0 was given, keeps
	// the URL's front (and its listener).
	same := spec.FunctionURL == prev.FunctionURL ||
		oldURL != nil && oldURL.ln != nil && oldURL.ln.Addr().String() == spec.FunctionURL
	if !same {
		newURL = nil
		if spec.FunctionURL != "" {
			newURL = &front{name: "function URL", addr: spec.FunctionURL, function: name, handler: &swappable{}}
			if s.running {
				if err := s.listen(newURL); err != nil {
					return fail(err)
				}
			}
		}
	}
	if s.running {
		s.warm(ctx, inst)
	}
	old := h.swap(inst)
	if err := s.updateAPI(); err != nil {
		h.swap(old)
		if newURL != oldURL && newURL != nil && newURL.ln != nil {
			newURL.ln.Close()
		}
		return fail(err)
	}
	if newURL != nil {
		newURL.handler.(*swappable).set(urlHandler)
	}
	h.url = newURL
	if newURL != oldURL {
		if oldURL != nil {
			s.dropFront(oldURL)
		}
		if newURL != nil {
			s.fronts = append(s.fronts, newURL)
			if s.running {
				s.serveFront(newURL)
			}
		}
	}
	s.invoke.Add(spec.Function, h, h.queue)
	var dropped *front
	if newURL != oldURL {
		dropped = oldURL
	}
	s.retiring.Add(1)
	s.mu.Unlock()
	s.log.Info("function replaced", "function", name)
	s.retireInBackground("the replaced code", name, dropped, func(ctx context.Context) error { return retire(ctx, old) })
	return nil
}

// retireInBackground ends what Replace or Remove took out of service: a
// dropped URL stops accepting connections now, and the rest happens in
// the background: the URL's requests in flight finish while close runs
// (a client slow to read its answer keeps no runtime alive).
// A change (e.g. of reserved concurrency) thus waits neither for a
// 15-minute invoke nor cuts it short when its caller gives up; the
// service's shutdown grace bounds it. The caller has done
// s.retiring.Add(1) with s.mu held, so that shutdown waits for it.
func (s *Service) retireInBackground(what, name string, url *front, close func(context.Context) error) {
	ctx := s.retireCtx
	stopURL := func() error { return nil }
	if url != nil && url.srv != nil {
		stopURL = stopFront(ctx, url, s.log)
	}
	go func() {
		defer s.retiring.Done()
		var urlErr error
		var wg sync.WaitGroup
		wg.Go(func() { urlErr = stopURL() })
		err := close(ctx)
		wg.Wait()
		if err := errors.Join(urlErr, err); err != nil {
			s.log.Warn("closing "+what+" failed", "function", name, "error", err)
		}
	}()
}

// Remove stops serving the function named by key (see Key): it leaves the
// Invoke API, its URL and routes at once. In the background, as Replace's
// old code does, the requests and invokes in flight finish, its queue
// stops (queued events stay in its Dir, or are dropped), then its
// environments close.
func (s *Service) Remove(ctx context.Context, name string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	h := s.funcs[name]
	if h == nil {
		s.mu.Unlock()
		return fmt.Errorf("function %s: %w", name, ErrNotFound)
	}
	s.invoke.Remove(name)
	s.forget(name)
	apiErr := s.updateAPI()
	if h.url != nil {
		s.dropFront(h.url)
	}
	s.retiring.Add(1)
	s.mu.Unlock()
	s.retireInBackground("the removed function", name, h.url, func(ctx context.Context) error {
		return errors.Join(h.queue.Close(ctx), retire(ctx, h.swap(nil)))
	})
	return apiErr
}

// retire closes an instance once no invoke holds it, within ctx.
func retire(ctx context.Context, inst *instance) error {
	if inst == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		inst.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return errors.Join(inst.close(ctx), closeDriver(ctx, inst.spec))
}

// closeDriver closes spec's driver when spec hands it to the service.
func closeDriver(ctx context.Context, spec FunctionSpec) error {
	if c, ok := spec.Driver.(interface{ Close(context.Context) error }); ok && spec.OwnsDriver {
		return c.Close(ctx)
	}
	return nil
}

// dropFront removes f from the fronts; s.mu is held.
func (s *Service) dropFront(f *front) {
	for i, g := range s.fronts {
		if g == f {
			s.fronts = append(s.fronts[:i], s.fronts[i+1:]...)
			return
		}
	}
}

// stopFront shuts f down within ctx: once it returns, f accepts no
// connection; wait waits for the requests in flight, closing their
// connections when ctx ends.
func stopFront(ctx context.Context, f *front, log *slog.Logger) (wait func() error) {
	done := f.srv.Drain(ctx)
	return func() error {
		if <-done != nil {
			log.Warn("requests still in flight when the grace ended: closing their connections", "front", f.name)
			return f.srv.Close()
		}
		return nil
	}
}

// start builds an instance of spec: its pool, with the first environment
// created now so that a taken Runtime API port fails at once.
func (s *Service) start(spec FunctionSpec) (*instance, error) {
	if err := spec.Function.Validate(); err != nil {
		return nil, err
	}
	drv := spec.Driver
	if drv == nil {
		drv = s.cfg.Driver
	}
	if drv == nil {
		return nil, fmt.Errorf("function %s: no sandbox driver", spec.Function.Name)
	}
	if spec.ExtensionsDir == "" {
		spec.ExtensionsDir = environment.DefaultExtensionsDir
	}
	tracked := track(drv, s.track)
	log := s.log
	out := s.out
	if spec.Output != nil {
		out = spec.Output
	}
	newEnv := func(addr string, provisioned bool) (*environment.Environment, error) {
		initType := ""
		if provisioned {
			initType = "provisioned-concurrency"
		}
		return environment.New(environment.Config{
			Function:       spec.Function,
			Driver:         tracked,
			RuntimeAPIAddr: addr,
			InitType:       initType,
			ExtensionsDir:  spec.ExtensionsDir,
			StreamShaping:  spec.StreamShaping,
			Output:         out,
			Log:            log,
		})
	}
	first, err := newEnv(spec.RuntimeAPIAddr, spec.Provisioned > 0)
	if err != nil {
		return nil, err
	}
	inst := &instance{spec: spec, first: first}
	p, err := pool.New(pool.Config{
		MaxConcurrency: spec.MaxConcurrency,
		PerEnvironment: spec.Function.Slots(),
		Limit:          s.limit(spec),
		Queue:          spec.Queue,
		QueueTimeout:   spec.Function.Timeout,
		KeepAlive:      spec.KeepAlive,
		Log:            log,
		New: func(i int, provisioned bool) (*environment.Environment, error) {
			if i == 0 && inst.taken.CompareAndSwap(false, true) {
				return first, nil
			}
			return newEnv("127.0.0.1:0", provisioned)
		},
	})
	if err != nil {
		return nil, errors.Join(err, first.Close(context.Background()))
	}
	inst.pool = p
	for _, r := range spec.Routes {
		r.Function, r.FunctionARN = nil, spec.Function.ARN()
		inst.routes = append(inst.routes, r)
	}
	return inst, nil
}

// warm pre-warms inst as its spec asks; a failure is retried at the first
// invokes.
func (s *Service) warm(ctx context.Context, inst *instance) {
	switch {
	case inst.spec.Throttled:
	case inst.spec.Provisioned > 0:
		if err := inst.pool.Init(ctx, inst.spec.Provisioned); err != nil {
			s.log.Warn("pre-warming failed; retrying at the first invokes", "function", inst.spec.Function.Name, "error", err)
		}
	case inst.spec.InitAtStart:
		if err := inst.first.Init(ctx); err != nil {
			s.log.Warn("init at start failed; retrying at the first invoke", "function", inst.spec.Function.Name, "error", err)
		}
	}
}

// updateAPI rebuilds the API Gateway emulation from every function's
// routes; s.mu is held. The first routes start its front (at once while
// running); conflicting routes are an error and change nothing.
func (s *Service) updateAPI() error {
	var routes []httpfront.Route
	for _, name := range s.order {
		h := s.funcs[name]
		inst := h.current()
		if inst == nil {
			continue
		}
		for _, r := range inst.routes {
			r.Function = h
			routes = append(routes, r)
		}
	}
	if len(routes) == 0 {
		s.api.set(nil)
		return nil
	}
	h, err := httpfront.NewAPIGateway(routes, httpfront.Config{FunctionARN: routes[0].FunctionARN, Log: s.log})
	if err != nil {
		return fmt.Errorf("API Gateway routes: %w", err)
	}
	if s.apiUp == nil {
		f := &front{name: "API Gateway emulation", addr: s.cfg.APIAddr, function: routeFunctions(routes), handler: &s.api}
		if s.running {
			if err := s.listen(f); err != nil {
				return err
			}
			s.serveFront(f)
		}
		s.apiUp = f
		s.fronts = append(s.fronts, f)
	}
	s.api.set(h)
	return nil
}

// routeFunctions names the functions behind routes, for the log.
func routeFunctions(routes []httpfront.Route) string {
	seen := map[string]bool{}
	var names []string
	for _, r := range routes {
		_, name, _ := strings.Cut(r.FunctionARN, ":function:")
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}

// swappable is an http.Handler whose handler can change while it serves.
type swappable struct {
	h atomic.Pointer[http.Handler]
}

func (w *swappable) set(h http.Handler) {
	if h == nil {
		w.h.Store(nil)
		return
	}
	w.h.Store(&h)
}

// ServeHTTP implements http.Handler: without routes, every request is
// API Gateway's 404.
func (w *swappable) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if h := w.h.Load(); h != nil {
		(*h).ServeHTTP(rw, r)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(rw, `{"message":"Not Found"}`)
}

// listen opens f's listener and logs it.
func (s *Service) listen(f *front) error {
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listening for the %s on %s: %w", f.name, f.addr, err)
	}
	f.ln = ln
	fn := f.function
	if fn == "" {
		fn = strings.Join(s.order, ",")
	}
	s.log.Info("serving the "+f.name, "address", ln.Addr().String(), "function", fn)
	return nil
}

// serveFront serves f on its listener; s.mu is held.
func (s *Service) serveFront(f *front) {
	// Each front gets a share of the open files; the Runtime APIs together
	// take one more.
	f.srv = httpserver.New(httpserver.Config{Handler: f.handler, MaxConns: httpserver.ConnShare(len(s.fronts) + 1), Log: s.log})
	go func() {
		if err := f.srv.Serve(f.ln); !errors.Is(err, http.ErrServerClosed) {
			select {
			case s.errc <- fmt.Errorf("serving the %s: %w", f.name, err):
			default:
			}
		}
	}()
}

// Run serves every function until ctx ends or a front fails, then shuts
// down, in this order:
//  1. the fronts stop accepting and finish the requests in flight, within
//     the grace (Config.ShutdownTimeout; EndGrace ends it at once);
//  2. the asynchronous queues start no new event and give the events in
//     flight the rest of the grace; the others stay in their queue
//     directory for the next start, or, without one, are counted as
//     dropped; what Replace and Remove took out of service (dropped URLs
//     and their requests, old code and its invokes) has the grace too;
//  3. when the grace is over with invokes still running, their runtimes are
//     stopped, so that they end (as crashes) and settle now;
//  4. the pools wait for every settle, then close the environments. That
//     wait has its own bound, never the grace the stages before used up.
//
// It listens on every address before serving any, so a taken port fails
// the start, and pre-warms the functions that ask for it. Run may be
// called once; after it returns the service is closed.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.running {
		s.mu.Unlock()
		return ErrClosed
	}
	// The Invoke API (the first front) listens last: once it accepts
	// connections, every other front does too, which is what a client or
	// a health check polling it may rely on.
	order := append(append([]*front{}, s.fronts[1:]...), s.fronts[0])
	for i, f := range order {
		if err := s.listen(f); err != nil {
			for _, g := range order[:i] {
				g.ln.Close()
			}
			s.closed = true
			s.mu.Unlock()
			return errors.Join(err, s.closeFunctions(ctx))
		}
	}
	for _, name := range s.order {
		s.warm(ctx, s.funcs[name].current())
	}
	for _, f := range s.fronts {
		s.serveFront(f)
	}
	s.running = true
	s.mu.Unlock()
	close(s.ready)

	var serveErr error
	select {
	case serveErr = <-s.errc:
	case <-ctx.Done():
	}
	if err := s.shutdown(); err != nil || serveErr != nil {
		return fmt.Errorf("shutting down: %w", errors.Join(serveErr, err))
	}
	return nil
}

// shutdown runs the stages Run describes.
func (s *Service) shutdown() error {
	s.mu.Lock()
	s.closed = true
	fronts := append([]*front(nil), s.fronts...)
	handles := make([]*handle, 0, len(s.funcs))
	for _, name := range s.order {
		handles = append(handles, s.funcs[name])
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "grace", s.cfg.ShutdownTimeout)
	grace, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	go func() {
		<-grace.Done()
		s.endRetire()
	}()
	if s.cfg.EndGrace != nil {
		go func() {
			select {
			case <-s.cfg.EndGrace:
				cancel()
			case <-grace.Done():
			}
		}()
	}
	errs := make([]error, len(fronts))
	var wg sync.WaitGroup
	for i, f := range fronts {
		if f.srv == nil {
			continue
		}
		wg.Go(func() { errs[i] = stopFront(grace, f, s.log)() })
	}
	wg.Wait()
	qerrs := make([]error, len(handles))
	for i, h := range handles {
		wg.Go(func() { qerrs[i] = h.queue.Close(grace) })
	}
	wg.Wait()
	errs = append(errs, qerrs...)
	retired := make(chan struct{})
	go func() {
		s.retiring.Wait()
		close(retired)
	}()
	select {
	case <-retired:
	case <-grace.Done():
	}
	if grace.Err() != nil {
		why := "the shutdown grace is over"
		if !errors.Is(grace.Err(), context.DeadlineExceeded) {
			why = "a second signal ended the shutdown grace"
		}
		s.log.Warn(why + "; stopping the invokes still running")
		stopCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		s.track.stopAll(stopCtx)
		cancel()
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	errs = append(errs, s.closePools(closeCtx, handles))
	<-retired
	return errors.Join(errs...)
}

// closeFunctions closes every queue and pool, for a Run that failed to
// start.
func (s *Service) closeFunctions(ctx context.Context) error {
	var errs []error
	handles := make([]*handle, 0, len(s.funcs))
	for _, name := range s.order {
		handles = append(handles, s.funcs[name])
	}
	for _, h := range handles {
		errs = append(errs, h.queue.Close(ctx))
	}
	errs = append(errs, s.closePools(ctx, handles))
	return errors.Join(errs...)
}

// closePools closes the pools of handles at once, each after its invokes.
func (s *Service) closePools(ctx context.Context, handles []*handle) error {
	errs := make([]error, len(handles))
	var wg sync.WaitGroup
	for i, h := range handles {
		wg.Go(func() { errs[i] = retire(ctx, h.swap(nil)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases a service that Run never served: it closes every
// function's queue and environments. After Run, it does nothing.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.running {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.closeFunctions(ctx)
	s.endRetire() // nothing serves what they wait for
	s.retiring.Wait()
	return err
}
