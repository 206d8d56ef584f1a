package environment

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// streams answers some payloads with a streamed response, as Node's
// streamifyResponse does even for a buffered invoke: "stall" starts one
// and stalls until the runtime is stopped, "big" streams 20 MiB and
// "stream" a short JSON body. Others are left to behaviours.
func streams(payload []byte) sandboxtest.StreamWriter {
	switch string(payload) {
	case `"stall"`:
		return func(ctx context.Context, w io.Writer) error {
			if _, err := w.Write([]byte(`{"partial":`)); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}
	case `"big"`:
		return func(_ context.Context, w io.Writer) error {
			chunk := make([]byte, 64<<10)
			for range 20 << 20 / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return nil
		}
	case `"stream"`:
		return func(_ context.Context, w io.Writer) error {
			_, err := w.Write([]byte(`{"streamed":true}`))
			return err
		}
	}
	return nil
}

// invokeBuffered runs one invocation as a pool and a buffered front do:
// the environment settles in the background while the front buffers the
// result. It returns once both are done.
func invokeBuffered(e *Environment, id, payload string, tail bool) (*function.Result, []byte) {
	res := e.Invoke(context.Background(), &function.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: []byte(payload)}, Tail: tail})
	settled := make(chan struct{})
	go func() {
		e.Settle()
		close(settled)
	}()
	res = res.Buffered()
	log := res.WaitLog()
	<-settled
	return res, log
}

func reportOf(out *syncbuf.Buffer, id string) string {
	return regexp.MustCompile(`(?m)^REPORT RequestId: ` + regexp.QuoteMeta(id) + `\t.*$`).FindString(out.String())
}

// A runtime that answers a buffered invoke with a stream and then runs past
// its timeout: the caller gets Sandbox.Timedout, the environment settles
// (it used to dereference a Stream the front had cleared) and serves the
// next invoke.
func TestStreamedAnswerThenTimeout(t *testing.T) {
	d := &sandboxtest.Driver{Handler: behaviours, Stream: streams}
	e, out := newTestEnv(t, d)
	for i := range 2 {
		id := fmt.Sprintf("stall-%d", i)
		res, _ := invokeBuffered(e, id, `"stall"`, false)
		if !res.Error || res.ErrorType != "Sandbox.Timedout" || !strings.Contains(string(res.Payload), "RequestId: "+id) {
			t.Fatalf("got %s %s, want Sandbox.Timedout", res.ErrorType, res.Payload)
		}
		if r := reportOf(out, id); !strings.HasSuffix(r, "\tStatus: timeout") {
			t.Errorf("REPORT %q, want Status: timeout", r)
		}
		if !strings.Contains(out.String(), id+" Task timed out after 1.00 seconds") {
			t.Errorf("no timeout line for %s:\n%s", id, out)
		}
	}
	if res := invokeEnv(e, "after", `"ok"`); res.Error || string(res.Payload) != `"ok"` {
		t.Fatalf("next invoke: %s %s", res.ErrorType, res.Payload)
	}
}

// A buffered invoke of a 20 MiB stream ends in
// Function.ResponseSizeTooLarge, not in a timeout: once the reader gives
// up, the rest is no longer shaped, and the environment settles cleanly.
func TestStreamTooLargeForBufferedInvoke(t *testing.T) {
	d := &sandboxtest.Driver{Handler: behaviours, Stream: streams}
	e, out := newTestEnvConfig(t, d, func(c *Config) {
		c.StreamShaping = true
		c.Function.Timeout = 5 * time.Second // 14 MiB past the free 6 at 2 MiB/s: 7 s
	})
	res, _ := invokeBuffered(e, "big", `"big"`, false)
	if !res.Error || res.ErrorType != "Function.ResponseSizeTooLarge" ||
		!strings.Contains(string(res.Payload), "exceeded maximum allowed payload size (6291556 bytes)") {
		t.Fatalf("got %s %s, want Function.ResponseSizeTooLarge", res.ErrorType, res.Payload)
	}
	if r := reportOf(out, "big"); r == "" || strings.Contains(r, "Status:") {
		t.Errorf("REPORT %q, want a clean one", r)
	}
	if d.Started() != 1 {
		t.Errorf("%d runtimes started, want 1 (no reset)", d.Started())
	}
}

// Buffered invokes of a streaming function share nothing with the
// environment that settles them: under the race detector, with two
// threads, a bounded loop of them on two environments finds no race.
func TestBufferedStreamsShareNothing(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	d := &sandboxtest.Driver{Handler: behaviours, Stream: streams}
	var wg sync.WaitGroup
	for w := range 2 {
		// A loaded machine under the race detector may be slow; the test
		// is about sharing, not speed.
		e, _ := newTestEnvConfig(t, d, func(c *Config) { c.Function.Timeout = time.Minute })
		wg.Go(func() {
			for i := range 100 {
				id := fmt.Sprintf("w%d-%d", w, i)
				res, log := invokeBuffered(e, id, `"stream"`, i%2 == 0)
				if res.Error || string(res.Payload) != `{"streamed":true}` {
					t.Errorf("%s: %s %s", id, res.ErrorType, res.Payload)
					return
				}
				if i%2 == 0 && !strings.Contains(string(log), "REPORT RequestId: "+id) {
					t.Errorf("%s: log tail %q lacks REPORT", id, log)
					return
				}
			}
		})
	}
	wg.Wait()
}
