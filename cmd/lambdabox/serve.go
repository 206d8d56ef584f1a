package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/httpserver"
	"github.com/lambdabox/lambdabox/internal/invoke"
	"github.com/lambdabox/lambdabox/internal/pool"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
)

// serveConfig is one function served over the Invoke API and, optionally,
// as a function URL and behind API Gateway routes.
type serveConfig struct {
	function        function.Config
	invokeAddr      string
	runtimeAPIAddr  string // of the first environment; the others take free ports
	maxConcurrency  int
	initAtStart     bool
	provisioned     int
	queue           bool
	keepAlive       time.Duration
	extensionsDir   string
	streamShaping   bool
	asyncDir        string
	asyncRetryDelay time.Duration
	asyncMaxQueued  int           // events waiting in memory; 0: async's default
	asyncMaxBytes   int64         // their payload bytes; 0: async's default
	shutdownTimeout time.Duration // grace for the invokes in flight at shutdown
	functionURLAddr string        // "" for none
	urlStreaming    bool
	apiAddr         string
	routes          []httpfront.Route // Function and FunctionARN are filled in by serve
	output          io.Writer
	log             *slog.Logger
}

// front is one HTTP server of serve.
type front struct {
	name    string
	addr    string
	handler http.Handler
	srv     *httpserver.Server
}

// serve runs the function until ctx ends, then shuts down in the order
// that shutdown describes.
func serve(ctx context.Context, sc serveConfig) (err error) {
	contained, err := process.New(process.Config{Log: sc.log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, contained.Close(context.Background())) }()
	sc.log.Info("containing runtimes with " + contained.Mechanism())
	drv := &runtimes{Driver: contained, live: map[int]sandbox.Env{}}
	newEnv := func(addr string, provisioned bool) (*environment.Environment, error) {
		initType := ""
		if provisioned {
			initType = "provisioned-concurrency"
		}
		return environment.New(environment.Config{
			Function:       sc.function,
			Driver:         drv,
			RuntimeAPIAddr: addr,
			InitType:       initType,
			ExtensionsDir:  sc.extensionsDir,
			StreamShaping:  sc.streamShaping,
			Output:         sc.output,
			Log:            sc.log,
		})
	}
	// The first environment takes the fixed Runtime API address now, so
	// that a taken port fails the start, not the first invoke.
	first, err := newEnv(sc.runtimeAPIAddr, sc.provisioned > 0)
	if err != nil {
		return err
	}
	p, err := pool.New(pool.Config{
		MaxConcurrency: sc.maxConcurrency,
		Queue:          sc.queue,
		QueueTimeout:   sc.function.Timeout,
		KeepAlive:      sc.keepAlive,
		Log:            sc.log,
		New: func(i int, provisioned bool) (*environment.Environment, error) {
			if i == 0 {
				return first, nil
			}
			return newEnv("127.0.0.1:0", provisioned)
		},
	})
	if err != nil {
		return errors.Join(err, first.Close(ctx))
	}
	queue, err := async.New(async.Config{
		Function:       p,
		FunctionARN:    sc.function.ARN(),
		Version:        sc.function.Version,
		Workers:        sc.maxConcurrency,
		RetryDelay:     sc.asyncRetryDelay,
		Dir:            sc.asyncDir,
		MaxQueued:      sc.asyncMaxQueued,
		MaxQueuedBytes: sc.asyncMaxBytes,
		Log:            sc.log,
	})
	if err != nil {
		return errors.Join(err, p.Close(ctx))
	}
	if sc.asyncDir == "" {
		sc.log.Info("asynchronous (Event) invocations are queued in memory only: those not run by shutdown are dropped; --async-dir keeps them on disk")
	}
	closeAll := func(ctx context.Context) error { return errors.Join(queue.Close(ctx), p.Close(ctx)) }

	fronts, err := newFronts(sc, p, queue)
	if err != nil {
		return errors.Join(err, closeAll(ctx))
	}
	// Listen on every address before serving any, so a taken port fails
	// the start.
	listeners := make([]net.Listener, len(fronts))
	for i, f := range fronts {
		ln, err := net.Listen("tcp", f.addr)
		if err != nil {
			for _, l := range listeners[:i] {
				l.Close()
			}
			return errors.Join(fmt.Errorf("listening for the %s on %s: %w", f.name, f.addr, err), closeAll(ctx))
		}
		listeners[i] = ln
		sc.log.Info("serving the "+f.name, "address", ln.Addr().String(), "function", sc.function.Name)
	}
	switch {
	case sc.provisioned > 0:
		if err := p.Init(ctx, sc.provisioned); err != nil {
			sc.log.Warn("pre-warming failed; retrying at the first invokes", "error", err)
		}
	case sc.initAtStart:
		if err := first.Init(ctx); err != nil {
			sc.log.Warn("init at start failed; retrying at the first invoke", "error", err)
		}
	}
	errc := make(chan error, len(fronts))
	for i, f := range fronts {
		// Each front gets a share of the open files; the Runtime APIs
		// together take one more.
		f.srv = httpserver.New(httpserver.Config{Handler: f.handler, MaxConns: httpserver.ConnShare(len(fronts) + 1), Log: sc.log})
		go func() {
			if err := f.srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving the %s: %w", f.name, err)
			}
		}()
	}
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	if err := shutdown(ctx, sc, fronts, queue, drv, p); err != nil || serveErr != nil {
		return fmt.Errorf("shutting down: %w", errors.Join(serveErr, err))
	}
	return nil
}

// defaultShutdownTimeout is the grace of a shutdown: within the 10 s that
// docker stop waits before SIGKILL, with room to close the environments.
const defaultShutdownTimeout = 8 * time.Second

// shutdown stops serving, in this order:
//  1. the fronts stop accepting and finish the requests in flight, within
//     the grace (--shutdown-timeout; a second signal ends it at once);
//  2. the asynchronous queue starts no new event and gives the events in
//     flight the rest of the grace; the others stay in the queue directory
//     for the next start, or, without one, are counted as dropped;
//  3. when the grace is over with invokes still running, their runtimes are
//     stopped, so that they end (as crashes) and settle now;
//  4. the pool waits for every settle, then closes the environments. Its
//     wait has its own bound, never the grace the stages before used up.
func shutdown(ctx context.Context, sc serveConfig, fronts []*front, queue *async.Queue, drv *runtimes, p *pool.Pool) error {
	if sc.shutdownTimeout <= 0 {
		sc.shutdownTimeout = defaultShutdownTimeout
	}
	sc.log.Info("shutting down", "grace", sc.shutdownTimeout)
	grace, cancel := graceContext(ctx, sc.shutdownTimeout)
	defer cancel()
	errs := make([]error, len(fronts))
	var wg sync.WaitGroup
	for i, f := range fronts {
		wg.Go(func() {
			if f.srv.Shutdown(grace) != nil {
				sc.log.Warn("requests still in flight when the grace ended: closing their connections", "front", f.name)
				errs[i] = f.srv.Close()
			}
		})
	}
	wg.Wait()
	errs = append(errs, queue.Close(grace))
	if grace.Err() != nil {
		why := "the shutdown grace is over"
		if errors.Is(grace.Err(), context.Canceled) {
			why = "a second signal ended the shutdown grace"
		}
		sc.log.Warn(why + "; stopping the invokes still running")
		stopCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		drv.stopAll(stopCtx)
		cancel()
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	errs = append(errs, p.Close(closeCtx))
	return errors.Join(errs...)
}

// runtimes is the sandbox driver of serve's environments. It keeps the
// processes it started, so that a shutdown past its grace can stop those
// still running an invoke (their environments see a crash, and settle at
// once), and starts none after that.
type runtimes struct {
	sandbox.Driver

	mu      sync.Mutex
	live    map[int]sandbox.Env
	next    int
	stopped bool
}

// errStopped refuses a start after stopAll.
var errStopped = errors.New("lambdabox is shutting down")

// Start implements sandbox.Driver.
func (r *runtimes) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		return nil, errStopped
	}
	env, err := r.Driver.Start(ctx, spec)
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

// stopAll stops every process still running, SIGKILL once ctx ends, and
// refuses to start more.
func (r *runtimes) stopAll(ctx context.Context) {
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

// newFronts builds the Invoke API and the function URL and API Gateway
// fronts that sc asks for.
func newFronts(sc serveConfig, p *pool.Pool, queue *async.Queue) ([]*front, error) {
	inv := invoke.NewServer(sc.log)
	inv.Add(sc.function, p, queue)
	fronts := []*front{{name: "Invoke API", addr: sc.invokeAddr, handler: inv}}
	cfg := httpfront.Config{FunctionARN: sc.function.ARN(), ErrThrottled: pool.ErrThrottled, Log: sc.log}
	if sc.functionURLAddr != "" {
		urlCfg := cfg
		urlCfg.Streaming = sc.urlStreaming
		h, err := httpfront.NewFunctionURL(p, urlCfg)
		if err != nil {
			return nil, fmt.Errorf("function URL: %w", err)
		}
		fronts = append(fronts, &front{name: "function URL", addr: sc.functionURLAddr, handler: h})
	}
	if len(sc.routes) > 0 {
		routes := make([]httpfront.Route, len(sc.routes))
		for i, r := range sc.routes {
			r.Function, r.FunctionARN = p, sc.function.ARN()
			routes[i] = r
		}
		h, err := httpfront.NewAPIGateway(routes, cfg)
		if err != nil {
			return nil, fmt.Errorf("API Gateway routes: %w", err)
		}
		fronts = append(fronts, &front{name: "API Gateway emulation", addr: sc.apiAddr, handler: h})
	}
	return fronts, nil
}
