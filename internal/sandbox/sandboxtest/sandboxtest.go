// Package sandboxtest provides a sandbox driver for tests whose runtimes
// and extensions are goroutines in the test process: each runs the Runtime
// API loop (next, handler, response or error), or the Extensions API loop,
// against the environment that started it. Conformance runs the suite that
// every sandbox driver passes; RunFake is the runtime and extension that
// process drivers run under it.
package sandboxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Handler answers one invocation. A nil answer with a non-nil error is
// posted as the invocation's error; Exit ends the runtime without an answer,
// as a crashing process would.
type Handler func(payload []byte) ([]byte, error)

// Exit is returned by a Handler to make its runtime exit mid-invoke, with
// status 1.
var Exit error = ExitCode(1)

// ExitCode is returned by a Handler to make its runtime exit mid-invoke
// with this status.
type ExitCode int

func (c ExitCode) Error() string { return "runtime exited with status " + strconv.Itoa(int(c)) }

// StreamWriter writes a streamed answer's body to w, as a runtime that
// streams (Node's streamifyResponse) does. ctx ends when the runtime is
// stopped; a StreamWriter that stalls should wait for it.
type StreamWriter func(ctx context.Context, w io.Writer) error

// Driver starts runtimes that call Handler for each invocation.
type Driver struct {
	Handler Handler
	// Stream, when set, is asked first for each invocation: a non-nil
	// StreamWriter makes the runtime answer with a streamed response
	// (Lambda-Runtime-Function-Response-Mode: streaming, application/json)
	// whose body it writes; nil leaves the invocation to Handler.
	Stream func(payload []byte) StreamWriter
	// StopDelay is how long a runtime takes to stop once asked.
	StopDelay time.Duration
	// Extension runs each external extension found in the extensions
	// directory, by its file name, until ctx ends or it returns its exit
	// status; nil runs RunExtension.
	Extension func(ctx context.Context, api, name string, out io.Writer) int

	started, stopped atomic.Int32
}

// Started is how many runtimes have started.
func (d *Driver) Started() int { return int(d.started.Load()) }

// Stopped is how many runtimes have been asked to stop.
func (d *Driver) Stopped() int { return int(d.stopped.Load()) }

// Start implements sandbox.Driver: a goroutine per extension found in
// spec.ExtensionsDir, then one for the runtime. The runtime's goroutine
// writes "runtime started" to its output first; spec.Path is not run.
func (d *Driver) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	var api string
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_RUNTIME_API="); ok {
			api = v
		}
	}
	e := &env{done: make(chan struct{})}
	names := sandbox.FindExtensions(spec.ExtensionsDir)
	if spec.Found != nil && len(names) > 0 {
		spec.Found(names)
	}
	run := d.Extension
	if run == nil {
		run = RunExtension
	}
	for _, name := range names {
		out, err := output(spec, sandbox.Process{Kind: sandbox.KindExtension, Name: name})
		if err != nil {
			e.stopAll()
			return nil, &sandbox.ExtensionError{Name: name, Err: err}
		}
		x := newGoProc()
		go func() {
			defer out.Close()
			defer close(x.done)
			x.code.Store(int32(run(x.ctx, api, name, out)))
		}()
		e.exts = append(e.exts, sandbox.Extension{Name: name, Proc: x})
	}
	if spec.BeforeRuntime != nil && !spec.BeforeRuntime(e.Extensions()) {
		go e.wait()
		return e, nil
	}
	out, err := output(spec, sandbox.Process{Kind: sandbox.KindFunction})
	if err != nil {
		e.stopAll()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runtime{d: d, done: make(chan struct{}), cancel: cancel}
	d.started.Add(1)
	e.rt = r
	go func() {
		defer out.Close()
		_, _ = io.WriteString(out, "runtime started\n")
		r.loop(ctx, "http://"+api+"/2018-06-01/runtime/")
	}()
	go e.wait()
	return e, nil
}

// output is where a process's output goes; a discarding writer without
// spec.Output.
func output(spec sandbox.Spec, p sandbox.Process) (io.WriteCloser, error) {
	if spec.Output == nil {
		return nopCloser{io.Discard}, nil
	}
	f, err := spec.Output(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// env is one environment of goroutines.
type env struct {
	rt   *runtime // nil when BeforeRuntime kept it from starting
	exts []sandbox.Extension
	done chan struct{}
}

// Runtime implements sandbox.Env.
func (e *env) Runtime() sandbox.Proc {
	if e.rt == nil {
		return nil
	}
	return e.rt
}

// Extensions implements sandbox.Env.
func (e *env) Extensions() []sandbox.Extension { return append([]sandbox.Extension(nil), e.exts...) }

// Done implements sandbox.Env.
func (e *env) Done() <-chan struct{} { return e.done }

func (e *env) procs() []sandbox.Proc {
	var ps []sandbox.Proc
	for _, x := range e.exts {
		ps = append(ps, x.Proc)
	}
	if e.rt != nil {
		ps = append(ps, e.rt)
	}
	return ps
}

func (e *env) wait() {
	for _, p := range e.procs() {
		<-p.Done()
	}
	close(e.done)
}

func (e *env) stopAll() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range e.procs() {
		_ = p.Stop(ctx)
	}
}

// Stop implements sandbox.Env: every goroutine is asked to stop at once.
func (e *env) Stop(ctx context.Context) error {
	for _, p := range e.procs() {
		_ = p.Stop(ctx)
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goProc is an extension's goroutine.
type goProc struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	code   atomic.Int32
}

func newGoProc() *goProc {
	ctx, cancel := context.WithCancel(context.Background())
	return &goProc{ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

func (p *goProc) Done() <-chan struct{} { return p.done }

// Exit is the status the extension returned, or "terminated" once stopped.
func (p *goProc) Exit() sandbox.ExitStatus {
	if p.ctx.Err() != nil {
		return sandbox.ExitStatus{Code: -1, Signal: "terminated"}
	}
	return sandbox.ExitStatus{Code: int(p.code.Load())}
}

func (p *goProc) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type runtime struct {
	d      *Driver
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	exited atomic.Int32 // the status the runtime exited with, when ended by an ExitCode
}

func (r *runtime) loop(ctx context.Context, api string) {
	defer close(r.done)
	// Connections of its own, as a runtime process has: never one an
	// earlier runtime of the environment opened.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	call := func(method, url string, body []byte) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	for {
		resp, payload, err := call(http.MethodGet, api+"invocation/next", nil)
		if err != nil {
			return
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if r.d.Stream != nil {
			if write := r.d.Stream(payload); write != nil {
				if postStream(ctx, client, api+"invocation/"+id+"/response", write) != nil {
					return
				}
				continue
			}
		}
		answer, herr := r.d.Handler(payload)
		var code ExitCode
		switch {
		case errors.As(herr, &code):
			r.exited.Store(int32(code))
			return
		case herr != nil:
			body, _ := json.Marshal(map[string]string{"errorType": "Handler.Error", "errorMessage": herr.Error()})
			_, _, err = call(http.MethodPost, api+"invocation/"+id+"/error", body)
		default:
			_, _, err = call(http.MethodPost, api+"invocation/"+id+"/response", answer)
		}
		if err != nil {
			return
		}
	}
}

// postStream posts, with client, a streamed response whose body write
// produces.
func postStream(ctx context.Context, client *http.Client, url string, write StreamWriter) error {
	pr, pw := io.Pipe()
	defer pr.Close() // unblocks a writer the server stopped reading
	go func() { _ = pw.CloseWithError(write(ctx, pw)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		return err
	}
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func (r *runtime) Done() <-chan struct{} { return r.done }

func (r *runtime) Exit() sandbox.ExitStatus {
	if c := r.exited.Load(); c != 0 {
		return sandbox.ExitStatus{Code: int(c)}
	}
	return sandbox.ExitStatus{Code: -1, Signal: "terminated"}
}

func (r *runtime) Stop(ctx context.Context) error {
	r.once.Do(func() {
		r.d.stopped.Add(1)
		time.Sleep(r.d.StopDelay)
	})
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
