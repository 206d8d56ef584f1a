package runtimeapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// postStream posts body as a streamed response for id and returns once
// the server has answered the POST, or ctx ends.
func postStream(ctx context.Context, ts *httptest.Server, id string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/2018-06-01/runtime/invocation/"+id+"/response", body)
	if err != nil {
		return err
	}
	req.Header.Set(HeaderResponseMode, "streaming")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// zeros is an endless body of zero bytes, n of them.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	m := min(int64(len(p)), z.n)
	clear(p[:m])
	z.n -= m
	return int(m), nil
}

// Once the reader has closed, the rest of a long stream is drained without
// shaping: a reader that gives up past the buffered limit does not keep the
// runtime waiting (at 2 MiB/s, 100 MiB would take 47 s).
func TestStreamUnshapedOnceReaderCloses(t *testing.T) {
	s := NewServer(nil, true)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	answer := s.Dispatch(&Invocation{ID: "big", Deadline: time.Now().Add(time.Minute)})
	next(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	posted := make(chan error, 1)
	go func() { posted <- postStream(ctx, ts, "big", &zeros{100 << 20}) }()
	r := wait(t, answer).Stream.Reader()
	if n, err := io.CopyN(io.Discard, r, MaxResponseSize+1); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	_ = r.Close()
	if err := <-posted; err != nil {
		t.Fatalf("the runtime's POST did not end once the reader left: %v", err)
	}
	if et, _ := r.Wait(); et != "" {
		t.Errorf("outcome %q, want none", et)
	}
}

// Fail ends a stream that nobody reads: the runtime's writes no longer
// block, the reader (if it comes) sees the failure, and Wait reports it.
func TestStreamFailUnblocksRuntime(t *testing.T) {
	s, ts := newTestServer(t)
	answer := s.Dispatch(&Invocation{ID: "stuck", Deadline: time.Now().Add(time.Minute)})
	next(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	posted := make(chan error, 1)
	go func() { posted <- postStream(ctx, ts, "stuck", strings.NewReader(strings.Repeat("x", 1<<20))) }()
	st := wait(t, answer).Stream
	st.Fail("Sandbox.Timedout", []byte(`{"errorType":"Sandbox.Timedout"}`))
	if err := <-posted; err != nil {
		t.Fatalf("the runtime's POST stayed blocked after Fail: %v", err)
	}
	<-st.Done()
	r := st.Reader()
	if _, err := io.ReadAll(r); !errors.Is(err, ErrStreamFailed) {
		t.Errorf("reader got %v, want ErrStreamFailed", err)
	}
	if et, body := r.Wait(); et != "Sandbox.Timedout" || !strings.Contains(string(body), "Sandbox.Timedout") {
		t.Errorf("outcome %q %s", et, body)
	}
}
