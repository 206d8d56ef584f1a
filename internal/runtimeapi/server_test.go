package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(nil, false)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// next calls the Runtime API's next as a runtime would.
func next(t *testing.T, ts *httptest.Server) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(ts.URL + "/2018-06-01/runtime/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, ts *httptest.Server, path string, body io.Reader, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wait(t *testing.T, ch <-chan *Response) *Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no response delivered")
		return nil
	}
}

func TestNextHeadersAndResponse(t *testing.T) {
	s, ts := newTestServer(t)
	gen := s.Reset()
	deadline := time.UnixMilli(1700000000123)
	answer := s.Dispatch(&Invocation{
		ID: "req-1", Payload: []byte(`{"a":1}`), Deadline: deadline,
		FunctionARN: "arn:aws:lambda:us-east-1:1:function:f", TraceID: "Root=1-a-b",
		ClientContext: `{"custom":{}}`, CognitoIdentity: `{"cognitoIdentityId":"x"}`, TenantID: "t1",
	})
	resp, body := next(t, ts)
	select {
	case <-gen.Ready:
	default:
		t.Error("Ready not closed by the first next")
	}
	for h, want := range map[string]string{
		HeaderRequestID: "req-1", HeaderDeadline: "1700000000123",
		HeaderFunctionARN: "arn:aws:lambda:us-east-1:1:function:f", HeaderTraceID: "Root=1-a-b",
		HeaderClientContext: `{"custom":{}}`, HeaderCognitoIdentity: `{"cognitoIdentityId":"x"}`,
		HeaderTenantID: "t1", "Content-Type": "application/json",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if body != `{"a":1}` {
		t.Errorf("event = %s", body)
	}
	st, b := post(t, ts, "/2018-06-01/runtime/invocation/req-1/response", strings.NewReader("plain"), "Content-Type", "text/plain")
	if st != 202 || b != `{"status":"OK"}` {
		t.Errorf("response: %d %s", st, b)
	}
	r := wait(t, answer)
	if r.Error || string(r.Payload) != "plain" || r.ContentType != "text/plain" {
		t.Errorf("delivered %+v", r)
	}
	// A second answer, and an answer for another id, are refused.
	if st, b := post(t, ts, "/2018-06-01/runtime/invocation/req-1/response", strings.NewReader("again")); st != 403 || !strings.Contains(b, "InvalidStateTransition") {
		t.Errorf("second response: %d %s", st, b)
	}
	if st, b := post(t, ts, "/2018-06-01/runtime/invocation/other/error", strings.NewReader("{}")); st != 400 || !strings.Contains(b, "InvalidRequestID") {
		t.Errorf("unknown id: %d %s", st, b)
	}
}

func TestChunkedWithTrailers(t *testing.T) {
	s, ts := newTestServer(t)
	s.Reset()
	for _, tc := range []struct {
		name, errType, errBody string
		wantErr                bool
		wantType               string
		wantPayload            string
	}{
		{name: "empty trailers", wantPayload: "streamed body"},
		{name: "error trailer", errType: "Function.Bad", errBody: base64.StdEncoding.EncodeToString([]byte(`{"errorType":"Function.Bad"}`)),
			wantErr: true, wantType: "Function.Bad", wantPayload: `{"errorType":"Function.Bad"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := s.Dispatch(&Invocation{ID: "c-" + tc.name, Deadline: time.Now()})
			next(t, ts)
			pr, pw := io.Pipe()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/2018-06-01/runtime/invocation/c-"+tc.name+"/response", pr)
			req.Trailer = http.Header{HeaderErrorType: nil, HeaderErrorBody: nil}
			go func() {
				_, _ = pw.Write([]byte("streamed "))
				_, _ = pw.Write([]byte("body"))
				req.Trailer.Set(HeaderErrorType, tc.errType)
				req.Trailer.Set(HeaderErrorBody, tc.errBody)
				pw.Close()
			}()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 202 {
				t.Errorf("status %d", resp.StatusCode)
			}
			r := wait(t, answer)
			if r.Error != tc.wantErr || r.ErrorType != tc.wantType || string(r.Payload) != tc.wantPayload {
				t.Errorf("delivered %+v (%s)", r, r.Payload)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	s, ts := newTestServer(t)
	s.Reset()
	answer := s.Dispatch(&Invocation{ID: "big", Deadline: time.Now()})
	next(t, ts)
	st, b := post(t, ts, "/2018-06-01/runtime/invocation/big/response", bytes.NewReader(make([]byte, MaxResponseSize+10)))
	if st != 413 || !strings.Contains(b, "RequestEntityTooLarge") || !strings.Contains(b, "6291556") {
		t.Errorf("runtime got %d %s", st, b)
	}
	r := wait(t, answer)
	if r.ErrorType != "Function.ResponseSizeTooLarge" || !strings.Contains(string(r.Payload), "(6291566 bytes)") {
		t.Errorf("invoker got %+v %s", r, r.Payload)
	}
}

func TestInvalidResponseMode(t *testing.T) {
	s, ts := newTestServer(t)
	s.Reset()
	answer := s.Dispatch(&Invocation{ID: "m", Deadline: time.Now()})
	next(t, ts)
	st, b := post(t, ts, "/2018-06-01/runtime/invocation/m/response", strings.NewReader("x"), HeaderResponseMode, "buffered")
	if st != 400 || !strings.Contains(b, "InvalidFunctionResponseMode") {
		t.Errorf("runtime got %d %s", st, b)
	}
	if r := wait(t, answer); r.ErrorType != "Runtime.InvalidResponseModeHeader" {
		t.Errorf("invoker got %+v", r)
	}
}

func TestInitError(t *testing.T) {
	s, ts := newTestServer(t)
	gen := s.Reset()
	st, _ := post(t, ts, "/2018-06-01/runtime/init/error", strings.NewReader(`{"errorType":"x","errorMessage":"m"}`), HeaderErrorType, "Runtime.ImportModuleError")
	if st != 202 {
		t.Errorf("init/error: %d", st)
	}
	r := wait(t, gen.InitError)
	if r.ErrorType != "Runtime.ImportModuleError" || string(r.Payload) != `{"errorType":"x","errorMessage":"m"}` {
		t.Errorf("init error %+v", r)
	}
	// After Init is over, init/error is a wrong transition.
	s.Reset()
	s.Dispatch(&Invocation{ID: "i", Deadline: time.Now()})
	next(t, ts)
	if st, b := post(t, ts, "/2018-06-01/runtime/init/error", strings.NewReader(`{}`)); st != 403 || !strings.Contains(b, "InvalidStateTransition") {
		t.Errorf("late init/error: %d %s", st, b)
	}
}

func TestErrorTypeRules(t *testing.T) {
	for _, c := range []struct{ header, body, want string }{
		{"Runtime.ImportModuleError", `{}`, "Runtime.ImportModuleError"},
		{"Function.MyError", ``, "Function.MyError"},
		{"Function.bad", ``, "Function.Unknown"},
		{"Function.", ``, "Function.Unknown"},
		{"garbage", `{"errorType":"X"}`, "Runtime.Unknown"},
		{"Runtime.Has Space", ``, "Runtime.Unknown"},
		{"", `{"errorType":"errorString"}`, "errorString"},
		{"", `not json`, "Runtime.Unknown"},
	} {
		if got := errorType(c.header, []byte(c.body)); got != c.want {
			t.Errorf("errorType(%q, %q) = %q, want %q", c.header, c.body, got, c.want)
		}
	}
}

func TestWithdraw(t *testing.T) {
	s, _ := newTestServer(t)
	s.Reset()
	s.Dispatch(&Invocation{ID: "w"})
	if !s.Withdraw() {
		t.Error("Withdraw found nothing pending")
	}
	if s.Withdraw() {
		t.Error("Withdraw found a second invocation")
	}
}

// FuzzRouter throws arbitrary requests at the Runtime API: it must answer
// each one and never panic.
func FuzzRouter(f *testing.F) {
	f.Add("GET", "/2018-06-01/runtime/invocation/next", "", "")
	f.Add("POST", "/2018-06-01/runtime/invocation/x/response", "body", "streaming")
	f.Add("POST", "/2018-06-01/runtime/init/error", "{", "")
	f.Add("PUT", "/2018-06-01/runtime/invocation/%2F/error", "", "")
	f.Fuzz(func(t *testing.T, method, path, body, mode string) {
		if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/next") {
			return // next blocks by design until an invocation arrives
		}
		s := NewServer(nil, false)
		s.Reset()
		req, err := http.NewRequest(method, "http://runtime"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set(HeaderResponseMode, mode)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Errorf("status %d", rec.Code)
		}
	})
}

// A runtime's request read only after the environment was reset (the
// runtime was killed with its next on the way) must not take the new
// runtime's invocation nor end its Init: the connections accepted before
// the reset get Runtime.Reset, and the invocation waits for the new
// runtime's own connection.
func TestStaleConnectionAfterReset(t *testing.T) {
	s := NewServer(nil, false)
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnContext = s.ConnContext
	ts.Start()
	t.Cleanup(ts.Close)
	old := &http.Client{Transport: &http.Transport{}} // the killed runtime's connection
	defer old.CloseIdleConnections()
	do := func(c *http.Client, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(`{"errorType":"X"}`))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The old runtime's connection is accepted (and kept alive) before
	// the reset.
	do(old, http.MethodGet, "/2018-06-01/runtime/unknown")
	gen := s.Reset()
	answer := s.Dispatch(&Invocation{ID: "req-1", Payload: []byte(`{}`), Deadline: time.Now().Add(time.Minute)})

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/2018-06-01/runtime/invocation/next"},
		{http.MethodPost, "/2018-06-01/runtime/init/error"},
	} {
		if status, body := do(old, c.method, c.path); status != http.StatusInternalServerError || !strings.Contains(body, "Runtime.Reset") {
			t.Errorf("%s on the old runtime's connection: %d %s, want 500 Runtime.Reset", c.path, status, body)
		}
	}
	select {
	case <-gen.Ready:
		t.Fatal("the old runtime's next ended the new runtime's Init")
	case r := <-gen.InitError:
		t.Fatalf("the old runtime's init/error failed the new runtime's Init: %s", r.Payload)
	case r := <-answer:
		t.Fatalf("the invocation was answered: %s", r.Payload)
	default:
	}

	// The new runtime's connection gets it.
	fresh := &http.Client{Transport: &http.Transport{}}
	defer fresh.CloseIdleConnections()
	resp, err := fresh.Get(ts.URL + "/2018-06-01/runtime/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get(HeaderRequestID); resp.StatusCode != http.StatusOK || id != "req-1" {
		t.Fatalf("the new runtime's next: %d %q, want 200 req-1", resp.StatusCode, id)
	}
	if status, _ := post(t, ts, "/2018-06-01/runtime/invocation/req-1/response", strings.NewReader(`"ok"`)); status != http.StatusAccepted {
		t.Errorf("response: %d", status)
	}
	if r := wait(t, answer); string(r.Payload) != `"ok"` {
		t.Errorf("answer: %s", r.Payload)
	}
}
