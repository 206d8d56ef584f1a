// Package sandboxtest provides a sandbox driver for tests whose runtimes
// are goroutines in the test process: each runs the Runtime API loop (next,
// handler, response or error) against the environment that started it.
package sandboxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

// Exit is returned by a Handler to make its runtime exit mid-invoke.
var Exit = exitError{}

type exitError struct{}

func (exitError) Error() string { return "runtime exited" }

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

	started, stopped atomic.Int32
}

// Started is how many runtimes have started.
func (d *Driver) Started() int { return int(d.started.Load()) }

// Stopped is how many runtimes have been asked to stop.
func (d *Driver) Stopped() int { return int(d.stopped.Load()) }

// Start implements sandbox.Driver.
func (d *Driver) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	var api string
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_RUNTIME_API="); ok {
			api = "http://" + v + "/2018-06-01/runtime/"
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runtime{d: d, done: make(chan struct{}), cancel: cancel}
	d.started.Add(1)
	go r.loop(ctx, api)
	return r, nil
}

type runtime struct {
	d      *Driver
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	exited atomic.Bool // ended by Exit rather than stopped
}

func (r *runtime) loop(ctx context.Context, api string) {
	defer close(r.done)
	call := func(method, url string, body []byte) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		resp, err := http.DefaultClient.Do(req)
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
				if postStream(ctx, api+"invocation/"+id+"/response", write) != nil {
					return
				}
				continue
			}
		}
		answer, herr := r.d.Handler(payload)
		switch {
		case herr == Exit:
			r.exited.Store(true)
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

// postStream posts a streamed response whose body write produces.
func postStream(ctx context.Context, url string, write StreamWriter) error {
	pr, pw := io.Pipe()
	defer pr.Close() // unblocks a writer the server stopped reading
	go func() { _ = pw.CloseWithError(write(ctx, pw)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		return err
	}
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func (r *runtime) Done() <-chan struct{} { return r.done }

func (r *runtime) Exit() sandbox.ExitStatus {
	if r.exited.Load() {
		return sandbox.ExitStatus{Code: 1}
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
