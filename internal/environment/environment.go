// Package environment runs one Lambda execution environment: a runtime
// process started by a sandbox driver, the Runtime API it talks to, and the
// lifecycle between them (Init, Invoke, timeouts, resets and Shutdown), with
// the START, END and REPORT lines Lambda prints for each invoke.
//
// An Environment runs one invoke at a time; the caller (a pool) serialises.
package environment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Config configures an Environment.
type Config struct {
	Function function.Config // must have had WithDefaults applied
	Driver   sandbox.Driver

	// RuntimeAPIAddr is where the environment's Runtime API listens;
	// default "127.0.0.1:0" (any free port).
	RuntimeAPIAddr string
	// InitType is AWS_LAMBDA_INITIALIZATION_TYPE; default "on-demand".
	InitType string
	// Output receives the function's log lines and the platform's START,
	// END and REPORT lines; default os.Stdout.
	Output io.Writer
	// Log receives lambdabox's own diagnostics; default: discarded.
	Log *slog.Logger
}

// Request is one invocation to run.
type Request struct {
	runtimeapi.Invocation // Deadline is set by Invoke
	// Tail asks for the invocation's log in Result.Log.
	Tail bool
}

// Result is the outcome of an invocation.
type Result struct {
	*runtimeapi.Response
	// Log holds the last 4 KB of the invocation's log, when Tail was asked.
	Log []byte
}

// Environment is one execution environment.
type Environment struct {
	cfg     function.Config
	driver  sandbox.Driver
	log     *slog.Logger
	api     *runtimeapi.Server
	ln      net.Listener
	srv     *http.Server
	environ []string
	logs    *logSink

	// The state below is only touched by Init, Invoke and Close, which the
	// caller never runs concurrently.
	proc      sandbox.Env
	gen       runtimeapi.Generation
	initDur   time.Duration // reported by the next REPORT line, then zeroed
	maxMemory uint64
}

// New starts the environment's Runtime API. The runtime itself starts on
// Init or on the first Invoke.
func New(cfg Config) (*Environment, error) {
	if cfg.Driver == nil {
		return nil, errors.New("environment: no sandbox driver")
	}
	if cfg.RuntimeAPIAddr == "" {
		cfg.RuntimeAPIAddr = "127.0.0.1:0"
	}
	if cfg.Output == nil {
		cfg.Output = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.RuntimeAPIAddr)
	if err != nil {
		return nil, fmt.Errorf("listening for the Runtime API on %s: %w", cfg.RuntimeAPIAddr, err)
	}
	e := &Environment{
		cfg:    cfg.Function,
		driver: cfg.Driver,
		log:    cfg.Log.With("function", cfg.Function.Name, "runtime_api", ln.Addr().String()),
		ln:     ln,
		logs:   &logSink{out: cfg.Output},
	}
	e.api = runtimeapi.NewServer(e.log)
	e.srv = &http.Server{Handler: e.api, ReadHeaderTimeout: 10 * time.Second}
	e.environ = cfg.Function.Environ(function.Instance{RuntimeAPI: ln.Addr().String(), InitType: cfg.InitType})
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// RuntimeAPI is the host:port of the environment's Runtime API.
func (e *Environment) RuntimeAPI() string { return e.ln.Addr().String() }

// Init starts the runtime and waits for it to finish Init, within the
// function's init timeout. A failed Init is logged and retried by the next
// Invoke.
func (e *Environment) Init(ctx context.Context) error {
	if e.running() {
		return nil
	}
	resp, _ := e.init(ctx, "", time.Now().Add(e.cfg.InitTimeout))
	if resp != nil {
		return fmt.Errorf("init failed: %s: %s", resp.ErrorType, resp.Payload)
	}
	return nil
}

// Invoke runs one invocation: it starts the runtime first when none is
// running, hands it the event, and waits for the answer, the function's
// timeout or the runtime's exit. Function and platform failures are Results
// with Error set, never Go errors. Cancelling ctx does not cut an invocation
// short: like Lambda, the environment finishes it.
func (e *Environment) Invoke(ctx context.Context, req *Request) *Result {
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	ctx = context.WithoutCancel(ctx)
	if req.Tail {
		e.logs.begin()
	}
	res := &Result{}
	var initStatus string
	res.Response, initStatus = e.ensureInit(ctx, req.ID, start, deadline)
	e.logs.write([]byte("START RequestId: " + req.ID + " Version: " + e.cfg.Version + "\n"))
	timedOut := false
	if res.Response == nil {
		// Duration counts the invoke, not the Init before it.
		start = time.Now()
		req.Deadline = start.Add(e.cfg.Timeout)
		var taken bool
		res.Response, timedOut, taken = e.run(ctx, &req.Invocation)
		if !taken {
			// The runtime exited between invokes, before it took this one
			// (aws-lambda-go does so after a panic): start a new one.
			res.Response, initStatus = e.ensureInit(ctx, req.ID, start, req.Deadline)
			if res.Response == nil {
				res.Response, timedOut, _ = e.run(ctx, &req.Invocation)
			}
		}
	}
	e.measureMemory()
	e.logs.flush()
	e.logs.write([]byte("END RequestId: " + req.ID + "\n"))
	if timedOut || initStatus == "Sandbox.Timedout" {
		e.logs.write([]byte(time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + req.ID + " Task timed out after " + e.timeoutSeconds() + " seconds\n"))
	}
	e.logs.write(e.report(req.ID, time.Since(start), initStatus))
	if req.Tail {
		res.Log = e.logs.end()
	}
	return res
}

// ensureInit starts the runtime when none is running. It returns the
// failure to report for the invoke, and its error type for REPORT, or nil
// when the runtime is ready.
func (e *Environment) ensureInit(ctx context.Context, id string, start, deadline time.Time) (*runtimeapi.Response, string) {
	if e.running() {
		return nil, ""
	}
	// On-demand Init has its own limit; when it runs out, Init is tried once
	// more inside the invoke's own timeout (a "suppressed init").
	resp, timedOut := e.init(ctx, id, minTime(start.Add(e.cfg.InitTimeout), deadline))
	if timedOut && time.Now().Before(deadline) {
		resp, timedOut = e.init(ctx, id, deadline)
	}
	if timedOut {
		resp = e.timeoutResponse(id)
	}
	if resp == nil {
		return nil, ""
	}
	return resp, resp.ErrorType
}

// run hands inv to the running runtime and waits for its answer. taken is
// false when the runtime exited without fetching inv.
func (e *Environment) run(ctx context.Context, inv *runtimeapi.Invocation) (resp *runtimeapi.Response, timedOut, taken bool) {
	answer := e.api.Dispatch(inv)
	timer := time.NewTimer(time.Until(inv.Deadline))
	defer timer.Stop()
	select {
	case resp = <-answer:
		return resp, false, true
	case <-e.proc.Done():
		// A runtime that answers and then exits (a Go panic does) has its
		// answer queued before its exit is seen.
		select {
		case resp = <-answer:
			return resp, false, true
		default:
		}
		taken = !e.api.Withdraw()
		resp = e.exitResponse(inv.ID)
		e.stop(ctx, 0)
		return resp, false, taken
	case <-timer.C:
		e.stop(ctx, 0)
		return e.timeoutResponse(inv.ID), true, true
	}
}

// init starts a runtime and waits until it is ready, reports an init error,
// exits, or the limit passes. resp is nil when the runtime is ready.
func (e *Environment) init(ctx context.Context, id string, limit time.Time) (resp *runtimeapi.Response, timedOut bool) {
	e.gen = e.api.Reset()
	pr, pw, err := os.Pipe()
	if err != nil {
		return runtimeapi.ErrorResponse("Runtime.Unknown", requestPrefix(id)+"creating the log pipe: "+err.Error()), false
	}
	spec := sandbox.Spec{
		Path: e.cfg.Command[0], Args: e.cfg.Command[1:],
		Env: e.environ, Dir: e.cfg.Dir,
		Stdout: pw, Stderr: pw,
	}
	t0 := time.Now()
	proc, err := e.driver.Start(ctx, spec)
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		e.log.Error("starting the runtime", "error", err)
		var ee *sandbox.EntrypointError
		if errors.As(err, &ee) {
			return runtimeapi.ErrorResponse("Runtime.InvalidEntrypoint", requestPrefix(id)+ee.Error()), false
		}
		return runtimeapi.ErrorResponse("Runtime.Unknown", requestPrefix(id)+err.Error()), false
	}
	e.logs.attach(pr)
	e.proc = proc
	e.maxMemory = 0
	timer := time.NewTimer(time.Until(limit))
	defer timer.Stop()
	select {
	case <-e.gen.Ready:
		e.initDur = time.Since(t0)
		return nil, false
	case resp = <-e.gen.InitError:
	case <-proc.Done():
		select {
		case resp = <-e.gen.InitError:
		default:
			resp = e.exitResponse(id)
		}
	case <-timer.C:
		timedOut = true
	}
	e.initDur = time.Since(t0)
	e.measureMemory()
	e.stop(ctx, 0)
	return resp, timedOut
}

// running reports whether a runtime has finished Init and is still alive.
func (e *Environment) running() bool {
	if e.proc == nil {
		return false
	}
	select {
	case <-e.proc.Done():
		e.proc = nil
		return false
	default:
		return true
	}
}

// stop ends the runtime, giving it grace to exit after SIGTERM.
func (e *Environment) stop(ctx context.Context, grace time.Duration) {
	if e.proc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := e.proc.Stop(ctx); err != nil {
		e.log.Error("stopping the runtime", "error", err)
	}
	e.logs.flush()
	e.proc = nil
}

// Close shuts the environment down: SIGTERM, SIGKILL after the grace
// period or when ctx ends, then the Runtime API closes.
func (e *Environment) Close(ctx context.Context) error {
	e.stop(ctx, 2*time.Second)
	return e.srv.Close()
}

func (e *Environment) measureMemory() {
	m, ok := e.proc.(sandbox.MemoryReporter)
	if !ok {
		return
	}
	if b, err := m.MaxMemory(); err == nil && b > e.maxMemory {
		e.maxMemory = b
	}
}

func (e *Environment) exitResponse(id string) *runtimeapi.Response {
	st := e.proc.Exit()
	msg := "Runtime exited with error: " + st.String()
	if st.Code == 0 && st.Signal == "" {
		msg = "Runtime exited without providing a reason"
	}
	return runtimeapi.ErrorResponse("Runtime.ExitError", requestPrefix(id)+msg)
}

func (e *Environment) timeoutResponse(id string) *runtimeapi.Response {
	return runtimeapi.ErrorResponse("Sandbox.Timedout", requestPrefix(id)+"Task timed out after "+e.timeoutSeconds()+" seconds")
}

func (e *Environment) timeoutSeconds() string {
	return strconv.FormatFloat(e.cfg.Timeout.Seconds(), 'f', 2, 64)
}

func requestPrefix(id string) string {
	if id == "" {
		return "Error: "
	}
	return "RequestId: " + id + " Error: "
}

// report renders the REPORT line; it consumes the pending Init Duration.
func (e *Environment) report(id string, d time.Duration, errorType string) []byte {
	ms := float64(d.Microseconds()) / 1000
	b := []byte("REPORT RequestId: " + id)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, ms, 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, int64(max(1, math.Ceil(ms))), 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(e.cfg.MemoryMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendUint(b, (e.maxMemory+(1<<20)-1)>>20, 10)
	b = append(b, " MB"...)
	if e.initDur > 0 {
		b = append(b, "\tInit Duration: "...)
		b = strconv.AppendFloat(b, float64(e.initDur.Microseconds())/1000, 'f', 2, 64)
		b = append(b, " ms"...)
		e.initDur = 0
	}
	if errorType != "" {
		b = append(b, "\tStatus: error\tError Type: "+errorType...)
	}
	return append(b, '\n')
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
