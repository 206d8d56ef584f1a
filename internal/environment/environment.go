// Package environment runs one Lambda execution environment: a runtime
// process and its external extensions, started by a sandbox driver; the
// Runtime, Extensions and Telemetry APIs they talk to; and the lifecycle
// between them (Init, Invoke, timeouts, resets and Shutdown), with the
// START, END and REPORT lines and the telemetry events Lambda emits.
//
// An Environment runs one invoke at a time; the caller (a pool) serialises
// Init, Invoke, Settle and Shutdown. In Lambda Managed Instances mode
// (function.Config.PerEnvironmentConcurrency) it runs up to that many at
// once through InvokeShared; Init and Shutdown stay the caller's to
// serialise against them.
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
	"strings"
	"time"

	"github.com/lambdabox/lambdabox/internal/extensions"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpserver"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/telemetry"
)

// DefaultExtensionsDir holds the external extensions of a Lambda image.
const DefaultExtensionsDir = "/opt/extensions"

// Shutdown reasons, as extensions receive them.
const (
	ReasonSpindown = "spindown"
	ReasonTimeout  = "timeout"
	ReasonFailure  = "failure"
)

// Config configures an Environment.
type Config struct {
	Function function.Config // must have had WithDefaults applied
	Driver   sandbox.Driver

	// RuntimeAPIAddr is where the environment's Runtime, Extensions and
	// Telemetry APIs listen; default "127.0.0.1:0" (any free port).
	RuntimeAPIAddr string
	// InitType is AWS_LAMBDA_INITIALIZATION_TYPE; default "on-demand".
	InitType string
	// ExtensionsDir holds external extensions, started in name order before
	// the runtime; default /opt/extensions. A missing directory means none.
	ExtensionsDir string
	// StreamShaping slows streamed responses past their first 6 MiB to
	// about 2 MiB/s, as Lambda does.
	StreamShaping bool
	// Output receives the function's and extensions' log lines and the
	// platform's START, END and REPORT lines; default os.Stdout.
	Output io.Writer
	// Log receives lambdabox's own diagnostics; default: discarded.
	Log *slog.Logger
}

// newResult copies resp into the caller's Result; a stream is handed over
// as its reader's side.
func newResult(resp *runtimeapi.Response) *function.Result {
	res := &function.Result{Payload: resp.Payload, ContentType: resp.ContentType, Error: resp.Error, ErrorType: resp.ErrorType}
	if resp.Stream != nil {
		res.Stream = resp.Stream.Reader()
	}
	return res
}

// Environment is one execution environment.
type Environment struct {
	cfg      function.Config
	initType string
	extDir   string
	driver   sandbox.Driver
	log      *slog.Logger
	api      *runtimeapi.Server
	ext      *extensions.Server
	tel      *telemetry.Hub
	ln       net.Listener
	srv      *httpserver.Server
	environ  []string
	logs     *logSink

	// The state below is only touched by the caller's serialised calls.
	sbx       sandbox.Env  // the running environment's processes
	proc      sandbox.Proc // its runtime
	exts      []extProc
	extDied   chan extProc // an external extension exited
	gen       runtimeapi.Generation
	initDur   time.Duration // reported by the next REPORT line, then zeroed
	maxMemory uint64
	unsettled *report     // the last invocation, until Settle
	deadline  *time.Timer // run's, made once and reset for each invoke
	lineBuf   []byte      // START, END and REPORT are formatted here, one at a time

	// managed is set in Lambda Managed Instances mode, where invokes run
	// concurrently through InvokeShared.
	managed *managed
}

// New starts the environment's APIs. The runtime itself starts on Init or
// on the first Invoke.
func New(cfg Config) (*Environment, error) {
	if cfg.Driver == nil {
		return nil, errors.New("environment: no sandbox driver")
	}
	if cfg.RuntimeAPIAddr == "" {
		cfg.RuntimeAPIAddr = "127.0.0.1:0"
	}
	if cfg.InitType == "" {
		cfg.InitType = "on-demand"
	}
	if cfg.ExtensionsDir == "" {
		cfg.ExtensionsDir = DefaultExtensionsDir
	}
	if cfg.Output == nil {
		cfg.Output = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// A driver whose processes cannot reach the configured address says
	// where to listen, and how its processes reach that.
	listen := cfg.RuntimeAPIAddr
	network, hasNetwork := cfg.Driver.(sandbox.Network)
	if hasNetwork {
		var err error
		if listen, err = network.ListenAddr(listen); err != nil {
			return nil, fmt.Errorf("choosing where to listen for the Runtime API: %w", err)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listening for the Runtime API on %s: %w", listen, err)
	}
	reach := ln.Addr().String()
	if hasNetwork {
		reach = network.RuntimeAPI(reach)
	}
	f := cfg.Function
	e := &Environment{
		cfg:      f,
		initType: cfg.InitType,
		extDir:   cfg.ExtensionsDir,
		driver:   cfg.Driver,
		log:      cfg.Log.With("function", f.Name, "runtime_api", ln.Addr().String()),
		ln:       ln,
		logs:     &logSink{out: cfg.Output},
	}
	e.api = runtimeapi.NewServer(e.log, cfg.StreamShaping)
	if f.ManagedInstances() {
		e.api.SetConcurrency(f.Slots())
		e.managed = &managed{}
	}
	e.ext = extensions.NewServer(extensions.Function{Name: f.Name, Version: f.Version, Handler: f.Handler, AccountID: f.AccountID}, e.log)
	e.tel = telemetry.NewHub(e.ext.Name, e.log)
	e.logs.publish = func(kind string, line []byte) {
		if e.tel.Active(kind) { // the line is copied only for a subscriber
			e.tel.Publish(kind, string(line))
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/2018-06-01/", e.api)
	mux.Handle("/2020-01-01/", e.ext)
	mux.Handle("/2022-07-01/", e.tel)
	mux.Handle("/2020-08-15/", e.tel)
	mux.Handle("/", e.api) // answers unknown paths in the Runtime API's shape
	// The Runtime API's clean paths go to it without the mux, which would
	// clean and match them on every next and response only to route them
	// there; the mux routes the rest, and redirects unclean paths.
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; r.URL.RawPath == "" && strings.HasPrefix(p, "/2018-06-01/") && cleanPath(p) {
			e.api.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	// No body-read timeout: a streamed response is a body as long as the invoke.
	e.srv = httpserver.New(httpserver.Config{Handler: route, BodyReadTimeout: -1, ConnContext: e.api.ConnContext, Log: e.log})
	e.environ = f.Environ(function.Instance{RuntimeAPI: reach, InitType: cfg.InitType})
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// line keeps b's array as lineBuf for the next platform line, and returns
// b with parts appended. The caller's serialised calls own lineBuf.
func (e *Environment) line(b []byte, parts ...string) []byte {
	for _, p := range parts {
		b = append(b, p...)
	}
	e.lineBuf = b[:0]
	return b
}

// cleanPath reports whether an absolute path is what path.Clean leaves it:
// no empty, "." or ".." element, no trailing slash.
func cleanPath(p string) bool {
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
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
// short: like Lambda, the environment finishes it. Call Settle before the
// next Invoke, off the response's path.
func (e *Environment) Invoke(ctx context.Context, req *function.Request) *function.Result {
	e.Settle()
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	// ctx's cancellation is dropped where it could cut Init or a reset
	// short (ensureInit, reset), not here: one allocation fewer per invoke.
	if req.Tail {
		e.logs.begin()
	}
	resp, failure := e.ensureInit(ctx, req.ID, start, deadline)
	e.logs.write(e.line(append(append(append(e.lineBuf[:0], "START RequestId: "...), req.ID...), " Version: "...), e.cfg.Version, "\n"))
	if resp == nil {
		// Duration counts the invoke, not the Init before it.
		start = time.Now()
		req.Deadline = start.Add(e.cfg.Timeout)
		var taken bool
		resp, failure, taken = e.run(ctx, &req.Invocation)
		if !taken {
			// The runtime exited between invokes, before it took this one
			// (aws-lambda-go does so after a panic): start a new one.
			resp, failure = e.ensureInit(ctx, req.ID, start, req.Deadline)
			if resp == nil {
				resp, failure, _ = e.run(ctx, &req.Invocation)
			}
		}
	}
	// The environment keeps resp; the caller gets its own copy.
	e.unsettled = &report{id: req.ID, start: start, end: time.Now(), deadline: req.Deadline,
		failure: failure, resp: resp, tenant: req.TenantID}
	res := newResult(resp)
	if req.Tail {
		res.Log = function.NewLogTail()
		e.unsettled.tail = res.Log
		if resp.Stream == nil {
			e.Settle()
		} // else the log is complete once the stream ends; Settle hands it over
	}
	return res
}

// report is what Settle needs to close an invocation.
type report struct {
	id                   string
	start, end, deadline time.Time
	// failure is the error type of a platform failure that ended the
	// invoke and reset the environment (Sandbox.Timedout,
	// Runtime.ExitError, a failed Init...), for REPORT's Status.
	failure string
	resp    *runtimeapi.Response // the environment's own, never a caller's
	tail    *function.LogTail    // the caller's log, when Tail was asked
	tenant  string               // X-Amz-Tenant-Id, for REPORT and telemetry
}

// timedOut reports whether the invoke ended in a timeout.
func (r *report) timedOut() bool { return r.failure == errTimedOut }

// errTimedOut is the error type of a timeout.
const errTimedOut = "Sandbox.Timedout"

// Settle finishes the last invocation off the response's path: it waits
// for the extensions to be done with it, measures memory, lets the
// runtime's last lines through, and prints END and REPORT. Invoke calls it
// first if the caller did not.
func (e *Environment) Settle() {
	r := e.unsettled
	if r == nil {
		return
	}
	e.unsettled = nil
	ctx := context.Background()
	if r.resp.Stream != nil {
		e.waitStream(ctx, r)
	}
	if r.failure == "" {
		e.waitRuntime(ctx, r)
	}
	if r.failure == "" && len(e.exts)+e.internalExtensions() > 0 {
		e.waitExtensions(ctx, r)
	}
	e.measureMemory() // a reset above measured before it ended the runtime
	e.logs.flush()
	// END, the timeout line if any, and REPORT go out in one write.
	// END, the timeout line and REPORT in one buffer, the environment's:
	// the sink copies what it keeps.
	lines := append(append(e.lineBuf[:0], "END RequestId: "...), r.id...)
	lines = append(lines, '\n')
	if r.timedOut() {
		lines = append(lines, r.end.UTC().Format("2006-01-02T15:04:05.000Z")+" "+r.id+" Task timed out after "+e.timeoutSeconds()+" seconds\n"...)
	}
	d := r.end.Sub(r.start)
	e.publishReport(r, d)
	e.logs.write(e.line(e.report(lines, r.id, d, r.failure, r.tenant)))
	if r.tail != nil {
		r.tail.Set(e.logs.end())
	}
}

// waitStream waits for a streamed response to end, within the invoke's
// deadline; past it the invoke times out and the environment is reset.
func (e *Environment) waitStream(ctx context.Context, r *report) {
	timer := time.NewTimer(time.Until(r.deadline))
	defer timer.Stop()
	st := r.resp.Stream
	select {
	case <-st.Done():
	case <-timer.C:
		st.Fail(errTimedOut, e.timeoutResponse(r.id).Payload)
		r.failure = errTimedOut
		e.reset(ctx, ReasonTimeout)
		<-st.Done() // the runtime is gone: its body has ended
	}
	r.end = time.Now()
}

// timer returns the environment's timer, set to fire in d: one timer for
// every invoke and its settle, which use it in turn and stop it (since Go
// 1.23 a stopped timer sends nothing stale after Reset).
func (e *Environment) timer(d time.Duration) *time.Timer {
	if e.deadline == nil {
		e.deadline = time.NewTimer(d)
	} else {
		e.deadline.Reset(d)
	}
	return e.deadline
}

// waitRuntime waits until the runtime is back in next after an invoke,
// up to its deadline: Lambda's Invoke phase ends there, so what the
// runtime does after its answer is the invoke's, and the environment
// takes no other invoke before. One that is not back in time times the
// invoke out and is reset; one that exits meanwhile is restarted by the
// next invoke.
func (e *Environment) waitRuntime(ctx context.Context, r *report) {
	in, entered := e.api.InNext()
	if in || !e.running() {
		return
	}
	timer := e.timer(time.Until(r.deadline))
	defer timer.Stop()
	for !in {
		select {
		case <-entered:
		case <-e.proc.Done():
			return
		case <-timer.C:
			e.log.Warn("the runtime did not call next after its answer before the invoke's deadline", "request_id", r.id)
			r.failure, r.end = errTimedOut, time.Now()
			e.reset(ctx, ReasonTimeout)
			return
		}
		in, _ = e.api.InNext()
	}
}

// waitExtensions waits until every extension is back in event/next after
// an invoke, up to its deadline; one that is not, or that died, resets the
// environment.
func (e *Environment) waitExtensions(ctx context.Context, r *report) {
	timer := e.timer(time.Until(r.deadline))
	defer timer.Stop()
	for {
		changed := e.ext.Changed()
		if e.ext.Ready() {
			return
		}
		select {
		case <-changed:
		case x := <-e.extDied:
			e.log.Warn("extension exited after the invoke", "extension", x.name, "status", x.env.Exit().String())
			r.failure = "Extension.Crash"
			e.reset(ctx, ReasonFailure)
			return
		case <-timer.C:
			e.log.Warn("extensions did not finish the invoke before its deadline", "request_id", r.id)
			e.reset(ctx, ReasonTimeout)
			return
		}
	}
}

// ensureInit starts the runtime when none is running. It returns the
// failure to report for the invoke, and its error type for REPORT, or nil
// when the runtime is ready.
func (e *Environment) ensureInit(ctx context.Context, id string, start, deadline time.Time) (resp *runtimeapi.Response, failure string) {
	if e.running() {
		return nil, ""
	}
	ctx = context.WithoutCancel(ctx)
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

// run hands inv to the running runtime (and INVOKE to the extensions) and
// waits for the runtime's answer. failure is the error type of a platform
// failure that reset the environment (a timeout, a crash), "" when the
// runtime answered. taken is false when the runtime exited without
// fetching inv.
func (e *Environment) run(ctx context.Context, inv *runtimeapi.Invocation) (resp *runtimeapi.Response, failure string, taken bool) {
	select {
	case x := <-e.extDied: // died while the environment was idle
		resp = e.extensionCrash(inv.ID, x)
		e.reset(ctx, ReasonFailure)
		return resp, resp.ErrorType, true
	default:
	}
	if len(e.exts)+e.internalExtensions() > 0 {
		e.ext.Send(extensions.Event{
			EventType: "INVOKE", DeadlineMs: inv.Deadline.UnixMilli(), RequestID: inv.ID,
			InvokedFunctionArn: inv.FunctionARN, Tracing: &extensions.Tracing{Type: "X-Amzn-Trace-Id", Value: inv.TraceID},
		})
	}
	if e.tel.Active("platform") {
		rec := map[string]any{"requestId": inv.ID, "version": e.cfg.Version,
			"tracing": map[string]string{"type": "X-Amzn-Trace-Id", "value": inv.TraceID}}
		if inv.TenantID != "" {
			rec["tenantId"] = inv.TenantID
		}
		e.tel.Publish("platform.start", rec)
	}
	answer := e.api.Dispatch(inv)
	timer := e.timer(time.Until(inv.Deadline))
	defer timer.Stop()
	select {
	case resp = <-answer:
		return resp, "", true
	case <-e.proc.Done():
		// A runtime that answers and then exits (a Go panic does) has its
		// answer queued before its exit is seen.
		select {
		case resp = <-answer:
			return resp, "", true
		default:
		}
		taken = !e.api.Withdraw()
		resp = e.exitResponse(inv.ID)
		e.reset(ctx, ReasonFailure)
		if !taken {
			return resp, "", false // not this invoke's failure: it runs on a new runtime
		}
		return resp, resp.ErrorType, true
	case x := <-e.extDied:
		resp = e.extensionCrash(inv.ID, x)
		e.reset(ctx, ReasonFailure)
		return resp, resp.ErrorType, true
	case <-timer.C:
		e.reset(ctx, ReasonTimeout)
		return e.timeoutResponse(inv.ID), errTimedOut, true
	}
}

// init starts the extensions and the runtime, and waits until all are
// ready, one fails, or the limit passes. resp is nil when Init succeeded.
func (e *Environment) init(ctx context.Context, id string, limit time.Time) (resp *runtimeapi.Response, timedOut bool) {
	t0 := time.Now()
	e.gen = e.api.Reset()
	e.maxMemory = 0
	if e.tel.Active("platform") {
		e.tel.Publish("platform.initStart", map[string]any{"initializationType": e.initType, "phase": "init"})
	}
	timer := time.NewTimer(time.Until(limit))
	defer timer.Stop()
	resp, timedOut = e.start(ctx, id, timer.C)
	for resp == nil && !timedOut {
		changed := e.ext.Changed()
		if isClosed(e.gen.Ready) && e.ext.Ready() {
			break
		}
		select {
		case <-e.gen.Ready:
		case <-changed:
			if errs := e.ext.Errors(); len(errs) > 0 {
				resp = runtimeapi.ErrorResponse("Extension.InitError", requestPrefix(id)+"extension "+errs[0].Extension+" failed to initialise: "+errs[0].Type)
			}
		case resp = <-e.gen.InitError:
		case <-e.proc.Done():
			select {
			case resp = <-e.gen.InitError:
			default:
				resp = e.exitResponse(id)
			}
		case x := <-e.extDied:
			resp = e.extensionCrash(id, x)
		case <-timer.C:
			timedOut = true
		}
	}
	e.ext.CloseRegistration()
	e.initDur = time.Since(t0)
	e.publishInit(resp, timedOut)
	if resp == nil && !timedOut {
		return nil, false
	}
	e.reset(ctx, ReasonFailure)
	return resp, timedOut
}

// start has the driver start the environment: the external extensions,
// which it waits for until each has registered (or one exits, or the
// Init timer fires), then the runtime. A failure is the invoke's
// response.
func (e *Environment) start(ctx context.Context, id string, timeout <-chan time.Time) (resp *runtimeapi.Response, timedOut bool) {
	if e.sbx != nil {
		// The runtime died while idle and left its extensions: end them.
		stopped, cancel := context.WithCancel(ctx)
		cancel()
		_ = e.sbx.Stop(stopped)
		e.sbx, e.exts, e.extDied = nil, nil, nil
	}
	e.ext.Reset(nil) // registration is open, for internal extensions too
	spec := sandbox.Spec{
		Path: e.cfg.Command[0], Args: e.cfg.Command[1:], Env: e.environ, Dir: e.cfg.Dir,
		MemoryLimit:   uint64(e.cfg.MemoryMB) << 20,
		ExtensionsDir: e.extDir,
		Output:        e.output,
		Found:         e.ext.Reset,
		BeforeRuntime: func(exts []sandbox.Extension) bool {
			resp, timedOut = e.awaitExtensions(id, exts, timeout)
			return resp == nil && !timedOut
		},
	}
	env, err := e.driver.Start(ctx, spec)
	if err != nil {
		var xe *sandbox.ExtensionError
		if errors.As(err, &xe) {
			e.log.Error("starting an extension", "extension", xe.Name, "error", xe.Err)
			return runtimeapi.ErrorResponse("Extension.LaunchError", requestPrefix(id)+xe.Error()), false
		}
		e.log.Error("starting the runtime", "error", err)
		var ee *sandbox.EntrypointError
		if errors.As(err, &ee) {
			return runtimeapi.ErrorResponse("Runtime.InvalidEntrypoint", requestPrefix(id)+ee.Error()), false
		}
		return runtimeapi.ErrorResponse("Runtime.Unknown", requestPrefix(id)+err.Error()), false
	}
	e.sbx = env
	if rt := env.Runtime(); rt != nil {
		e.proc = rt
	}
	return resp, timedOut
}

// output gives each process of the environment a pipe whose lines reach
// the log sink as its kind ("function" or "extension").
func (e *Environment) output(p sandbox.Process) (*os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating the log pipe: %w", err)
	}
	e.logs.attach(p, pr)
	return pw, nil
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

// reset ends the runtime and the extensions after a failure or a timeout:
// SIGKILL for the runtime, SHUTDOWN and a short grace for the extensions.
// Memory is measured first, so REPORT has the figure of what ran.
func (e *Environment) reset(ctx context.Context, reason string) {
	e.shutdown(context.WithoutCancel(ctx), reason, 0)
}

// shutdown ends everything the environment runs: the runtime gets SIGTERM
// and grace to exit, extensions get SHUTDOWN with the remaining budget
// (2000 ms with external extensions, 500 ms with internal ones only), then
// all that is left is killed.
func (e *Environment) shutdown(ctx context.Context, reason string, runtimeGrace time.Duration) {
	all, _ := e.ext.Count()
	budget := 500 * time.Millisecond
	if len(e.exts) > 0 {
		budget = 2000 * time.Millisecond
	}
	deadline := time.Now().Add(budget)
	e.measureMemory() // before the runtime goes, with what it used
	if e.proc != nil {
		stopCtx, cancel := context.WithTimeout(ctx, min(runtimeGrace, budget))
		if err := e.proc.Stop(stopCtx); err != nil {
			e.log.Error("stopping the runtime", "error", err)
		}
		cancel()
		e.proc = nil
	}
	if all > 0 {
		flushCtx, cancel := context.WithDeadline(ctx, deadline)
		e.tel.Flush(flushCtx)
		e.ext.Send(extensions.Event{EventType: "SHUTDOWN", DeadlineMs: deadline.UnixMilli(), ShutdownReason: reason})
		e.waitExtensionsGone(flushCtx)
		cancel()
	}
	if e.sbx != nil {
		killCtx, cancel := context.WithCancel(ctx)
		cancel() // no grace left: SIGTERM then SIGKILL at once, to all
		if err := e.sbx.Stop(killCtx); err != nil {
			e.log.Error("stopping the environment", "error", err)
		}
		e.sbx = nil
	}
	e.exts = nil
	e.extDied = nil
	e.logs.flush()
	e.tel.Reset(ctx)
}

// Shutdown ends the environment's runtime and extensions, as Lambda does
// when it spins an idle environment down; the environment can Init again.
func (e *Environment) Shutdown(ctx context.Context, reason string) {
	e.Settle()
	e.shutdown(ctx, reason, 300*time.Millisecond)
}

// Close shuts the environment down for good and closes its APIs.
func (e *Environment) Close(ctx context.Context) error {
	e.Shutdown(ctx, ReasonSpindown)
	return e.srv.Close()
}

func (e *Environment) internalExtensions() int {
	_, internal := e.ext.Count()
	return internal
}

func (e *Environment) measureMemory() {
	m, ok := e.sbx.(sandbox.MemoryReporter)
	if !ok {
		return
	}
	if b, err := m.MaxMemory(); err == nil && b > e.maxMemory {
		e.maxMemory = b
	}
}

func (e *Environment) exitResponse(id string) *runtimeapi.Response {
	return exitResponse(e.sbx, e.proc, id)
}

// exitResponse is the failure of an invoke whose runtime proc, in the
// environment sbx, exited.
func exitResponse(sbx sandbox.Env, proc sandbox.Proc, id string) *runtimeapi.Response {
	st := proc.Exit()
	msg := "Runtime exited with error: " + st.String()
	if st.Code == 0 && st.Signal == "" {
		msg = "Runtime exited without providing a reason"
	}
	// Killed past the memory size: Lambda names it, with the same message.
	if o, ok := sbx.(sandbox.OOMReporter); ok && o.OutOfMemory() {
		return runtimeapi.ErrorResponse("Runtime.OutOfMemory", requestPrefix(id)+msg)
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

// report appends the REPORT line to b; it consumes the pending Init
// Duration. failure, the error type of a platform failure, gives the
// Status Lambda prints: "timeout", or "error" with the Error Type.
//
// With tenant isolation the line ends with "\tTenant Id: <tenant>": AWS
// documents the tenantId field of the JSON log records only, so the text
// line's wording is lambdabox's.
func (e *Environment) report(b []byte, id string, d time.Duration, failure, tenant string) []byte {
	b = append(append(b, "REPORT RequestId: "...), id...)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, millis(d), 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, billed(d), 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(e.cfg.MemoryMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendUint(b, e.maxMemoryMB(), 10)
	b = append(b, " MB"...)
	if e.initDur > 0 {
		b = append(b, "\tInit Duration: "...)
		b = strconv.AppendFloat(b, millis(e.initDur), 'f', 2, 64)
		b = append(b, " ms"...)
		e.initDur = 0
	}
	switch failure {
	case "":
	case errTimedOut:
		b = append(b, "\tStatus: timeout"...)
	default:
		b = append(b, "\tStatus: error\tError Type: "+failure...)
	}
	if tenant != "" {
		b = append(b, "\tTenant Id: "+tenant...)
	}
	return append(b, '\n')
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// billed is the duration rounded up to the millisecond, at least 1.
func billed(d time.Duration) int64 { return int64(max(1, math.Ceil(millis(d)))) }

func (e *Environment) maxMemoryMB() uint64 {
	mb := (e.maxMemory + (1 << 20) - 1) >> 20
	// A cgroup's peak can pass its limit by a few pages before the OOM
	// kill (and a process tree that no cgroup limits can pass it: the
	// log said so at start); Lambda never reports more than the memory
	// size.
	if limit := uint64(e.cfg.MemoryMB); limit > 0 && mb > limit {
		mb = limit
	}
	return mb
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
