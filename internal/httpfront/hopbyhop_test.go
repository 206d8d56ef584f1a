package httpfront

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// hopHeaders are a request's or a result's hop-by-hop headers, X-Named
// among them because Connection names it, and one end-to-end header.
var hopHeaders = map[string]string{
	"Connection":          "keep-alive, X-Named",
	"X-Named":             "1",
	"Keep-Alive":          "timeout=5",
	"Te":                  "trailers",
	"Trailer":             "X-Sum",
	"Transfer-Encoding":   "chunked",
	"Upgrade":             "websocket",
	"Proxy-Authorization": "Basic Zm9vOmJhcg==",
	"Proxy-Authenticate":  "Basic",
	"Proxy-Connection":    "keep-alive",
	"X-Kept":              "yes",
}

func TestHopByHopRequestHeaders(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.com/p", strings.NewReader("{}"))
	for k, v := range hopHeaders {
		r.Header.Set(k, v)
	}
	check := func(t *testing.T, headers map[string]string) {
		t.Helper()
		for name := range hopHeaders {
			_, lower := headers[strings.ToLower(name)]
			_, canon := headers[name]
			switch {
			case name == "X-Kept" && !lower && !canon:
				t.Errorf("end-to-end header %s was dropped", name)
			case name != "X-Kept" && (lower || canon):
				t.Errorf("hop-by-hop header %s reached the event", name)
			}
		}
	}
	m := Meta{RequestID: "id", APIID: "api"}
	t.Run("function URL", func(t *testing.T) { check(t, FunctionURLEvent(r, nil, m).Headers) })
	t.Run("HTTP API", func(t *testing.T) {
		check(t, HTTPAPIEvent(r, nil, &Match{Route: &Route{Path: "/p", Method: "POST"}}, m).Headers)
	})
	t.Run("REST API", func(t *testing.T) {
		e := RESTEvent(r, nil, &Match{Route: &Route{Path: "/p", Method: "POST"}}, m)
		check(t, e.Headers)
		multi := map[string]string{}
		for k, vs := range e.MultiValueHeaders {
			multi[k] = strings.Join(vs, ",")
		}
		check(t, multi)
	})
}

func TestHopByHopResultHeaders(t *testing.T) {
	headers, _ := json.Marshal(hopHeaders)
	multi := map[string][]string{}
	for k, v := range hopHeaders {
		multi[k] = []string{v}
	}
	multiJSON, _ := json.Marshal(multi)
	check := func(t *testing.T, h http.Header) {
		t.Helper()
		for name := range hopHeaders {
			switch got := h.Get(name); {
			case name == "X-Kept" && got != "yes":
				t.Errorf("end-to-end header %s: %q", name, got)
			case name != "X-Kept" && got != "":
				t.Errorf("hop-by-hop header %s passed: %q", name, got)
			}
		}
	}
	t.Run("payload 2.0", func(t *testing.T) {
		r, err := ResponseV2([]byte(`{"statusCode":200,"headers":` + string(headers) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r.Header)
	})
	t.Run("payload 1.0", func(t *testing.T) {
		r, err := ResponseV1([]byte(`{"statusCode":200,"headers":` + string(headers) + `,"multiValueHeaders":` + string(multiJSON) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r.Header)
	})
	t.Run("prelude", func(t *testing.T) {
		p, _, err := ReadPrelude(strings.NewReader(`{"statusCode":200,"headers":` + string(headers) + "}\x00\x00\x00\x00\x00\x00\x00\x00body"))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p.Header())
	})
	t.Run("through a function URL", func(t *testing.T) {
		ts := newURL(t, answer(`{"statusCode":200,"headers":`+string(headers)+`,"body":"ok"}`, "application/json"))
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for i := range 2 { // the connection outlives the function's "Connection: close"
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" || resp.Close || resp.TransferEncoding != nil {
				t.Errorf("response %d: %d %q close=%v transfer-encoding=%v", i, resp.StatusCode, b, resp.Close, resp.TransferEncoding)
			}
			check(t, resp.Header)
		}
	})
}

func TestInformationalStatus(t *testing.T) {
	nuls := "\x00\x00\x00\x00\x00\x00\x00\x00"
	for _, status := range []string{"100", "101", "103", "199"} {
		t.Run(status, func(t *testing.T) {
			for name, fn := range map[string]*fakeFunction{
				"payload 2.0": answer(`{"statusCode":`+status+`,"headers":{"Upgrade":"websocket"},"body":"x"}`, "application/json"),
				"prelude":     answer(`{"statusCode":`+status+`}`+nuls+"x", ContentTypeHTTPIntegration),
			} {
				ts := newURL(t, fn)
				resp, body := do(t, newRequest(t, "GET", ts.URL+"/", nil))
				if resp.StatusCode != http.StatusBadGateway || string(body) != `{"message":"Internal Server Error"}` {
					t.Errorf("%s: %d %q, want 502", name, resp.StatusCode, body)
				}
			}
		})
	}
	for _, payload := range []string{`{"statusCode":101}`, `{"statusCode":100,"body":"x"}`} {
		if _, err := ResponseV1([]byte(payload)); err == nil {
			t.Errorf("ResponseV1(%s): no error", payload)
		}
	}
}

// stalled gives its bytes, then the error a read past the connection's
// deadline gives.
type stalled struct{ data string }

func (s *stalled) Read(p []byte) (int, error) {
	if s.data == "" {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestBodyReadTimeout(t *testing.T) {
	fn := answer(`"unused"`, "application/json")
	s, err := NewFunctionURL(fn, Config{FunctionARN: testARN})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "http://example.com/", &stalled{`{"a":`}))
	if rec.Code != http.StatusRequestTimeout || len(fn.reqs) != 0 {
		t.Errorf("%d after %d invokes, want 408 and none", rec.Code, len(fn.reqs))
	}
}
