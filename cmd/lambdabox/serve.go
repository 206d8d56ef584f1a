package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/httpserver"
	"github.com/lambdabox/lambdabox/internal/invoke"
	"github.com/lambdabox/lambdabox/internal/pool"
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
	functionURLAddr string // "" for none
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

// serve runs the function until ctx ends, then shuts down cleanly: no new
// requests, in-flight and queued invokes finish, runtimes get SIGTERM.
func serve(ctx context.Context, sc serveConfig) error {
	newEnv := func(addr string, provisioned bool) (*environment.Environment, error) {
		initType := ""
		if provisioned {
			initType = "provisioned-concurrency"
		}
		return environment.New(environment.Config{
			Function:       sc.function,
			Driver:         process.Driver{},
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
		Function:    p,
		FunctionARN: sc.function.ARN(),
		Version:     sc.function.Version,
		Workers:     sc.maxConcurrency,
		RetryDelay:  sc.asyncRetryDelay,
		Dir:         sc.asyncDir,
		Log:         sc.log,
	})
	if err != nil {
		return errors.Join(err, p.Close(ctx))
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
	sc.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), sc.function.Timeout+5*time.Second)
	defer cancel()
	errs := []error{serveErr}
	for _, f := range fronts {
		errs = append(errs, f.srv.Shutdown(shutdownCtx))
	}
	errs = append(errs, closeAll(shutdownCtx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
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
