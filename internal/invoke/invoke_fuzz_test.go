package invoke

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/function"
)

// The fuzz targets below check the Invoke API's request parsing against an
// independent oracle written from Lambda's documented constraints
// (regular expressions here, hand-written parsing in invoke.go). Their seed
// corpus is in testdata/fuzz/<FuzzName>; .ci/fuzz.sh runs each for a
// bounded time.

// Oracle patterns, from the Invoke API reference. Partition, region and
// account are not checked: lambdabox answers to any of them.
var (
	fullARNRe    = regexp.MustCompile(`^arn:[^:]*:lambda:[^:]*:[^:]*:function:([a-zA-Z0-9_.-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$`)
	partialARNRe = regexp.MustCompile(`^[^:]*:function:([a-zA-Z0-9_.-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$`)
	plainNameRe  = regexp.MustCompile(`^([a-zA-Z0-9_.-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$`)
	qualifierRe  = regexp.MustCompile(`^[a-zA-Z0-9$_-]{1,128}$`)
)

// oracleName splits a FunctionName as Lambda documents it; ok is false for
// a name that does not satisfy the documented forms.
func oracleName(name string) (fname, qual string, ok bool) {
	re := plainNameRe
	switch {
	case strings.HasPrefix(name, "arn:"):
		re = fullARNRe
	case strings.Count(name, ":") >= 2:
		re = partialARNRe
	}
	m := re.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// oracleClientContext reports whether h is what X-Amz-Client-Context takes:
// at most 3583 bytes of base64 of a JSON object.
func oracleClientContext(h string) bool {
	if h == "" {
		return true
	}
	if len(h) > maxClientContext {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return false
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil && obj != nil
}

// fuzzFunctions are the functions the fuzz targets register: f at
// $LATEST (also the alias "function") and a published version of
// "my.fn_2", with tenant isolation.
var fuzzFunctions = []function.Config{
	{Name: "f", Command: []string{"/b"}},
	{Name: "my.fn_2", Version: "7", Command: []string{"/b"}, TenantIsolation: true},
}

// oracleResolves reports whether (name, qualifier) names one of
// fuzzFunctions, and which.
func oracleResolves(name, qualifier string) (function.Config, bool) {
	fname, qual, ok := oracleName(name)
	if !ok || (qualifier != "" && !qualifierRe.MatchString(qualifier)) {
		return function.Config{}, false
	}
	if qualifier != "" {
		if qual != "" && qual != qualifier {
			return function.Config{}, false
		}
		qual = qualifier
	}
	if fname == "function" {
		fname = fuzzFunctions[0].Name
	}
	for _, c := range fuzzFunctions {
		c = c.WithDefaults()
		if c.Name == fname && (qual == "" || qual == "$LATEST" || qual == c.Version) {
			return c, true
		}
	}
	return function.Config{}, false
}

// fuzzQueue accepts every Event invocation; a hand-written fake.
type fuzzQueue struct {
	mu  sync.Mutex
	got []*function.Request
}

func (q *fuzzQueue) Enqueue(req *function.Request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.got = append(q.got, req)
	return nil
}

func (q *fuzzQueue) Failures() []async.Record { return nil }

// recordingEcho echoes each invocation's payload and keeps the last
// request.
type recordingEcho struct {
	mu   sync.Mutex
	last *function.Request
}

func (f *recordingEcho) Invoke(_ context.Context, req *function.Request) (*function.Result, error) {
	f.mu.Lock()
	f.last = req
	f.mu.Unlock()
	return &function.Result{Payload: req.Payload, ContentType: "application/json"}, nil
}

// documentedStatus are the statuses the Invoke API answers with, in the
// fake setup (a function that echoes, a queue that accepts).
var documentedStatus = map[int]bool{200: true, 202: true, 204: true, 400: true, 404: true, 413: true, 429: true, 500: true}

// escapeSegment escapes a FunctionName for the path as the SDKs do, and
// also escapes a name of only dots, which net/http would otherwise clean
// away from the path (and redirect) before the Invoke API sees it.
func escapeSegment(name string) string {
	if strings.Trim(name, ".") == "" {
		return strings.ReplaceAll(name, ".", "%2E")
	}
	return url.PathEscape(name)
}

// invokeRequest builds the request a client sends, parsed as net/http's
// server parses it; nil when the server would refuse it before any handler
// runs, or when net/http's ServeMux would redirect it: an empty name
// leaves "//" in the path, which it cleans (the SDKs require a name).
func invokeRequest(stream bool, name, qualifier, invType, logType, clientContext, traceID, tenant string, body []byte) *http.Request {
	if name == "" {
		return nil
	}
	path := "/2015-03-31/functions/" + escapeSegment(name) + "/invocations"
	if stream {
		path = "/2021-11-15/functions/" + escapeSegment(name) + "/response-streaming-invocations"
	}
	if qualifier != "" {
		path += "?Qualifier=" + url.QueryEscape(qualifier)
	}
	var wire bytes.Buffer
	wire.WriteString("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	for _, h := range [][2]string{
		{"X-Amz-Invocation-Type", invType},
		{"X-Amz-Log-Type", logType},
		{"X-Amz-Client-Context", clientContext},
		{"X-Amzn-Trace-Id", traceID},
		{"X-Amz-Tenant-Id", tenant},
	} {
		if strings.ContainsAny(h[1], "\r\n") {
			// No client sends it: a line break would end the header (and
			// with it the head, taking the body's length along).
			return nil
		}
		if h[1] != "" {
			wire.WriteString(h[0] + ": " + h[1] + "\r\n")
		}
	}
	wire.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	wire.Write(body)
	r, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil || !serverAccepts(r) {
		return nil
	}
	r.RemoteAddr = "127.0.0.1:1234"
	return r
}

// serverAccepts repeats the checks net/http's server makes after parsing a
// request and before calling the handler.
func serverAccepts(r *http.Request) bool {
	if len(r.Header.Values("Host")) > 1 {
		return false
	}
	for k, vs := range r.Header {
		if !validToken(k) {
			return false
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return false
				}
			}
		}
	}
	r.Header.Del("Host")
	return true
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// FuzzInvokeRequest drives the Invoke API handler with fuzzed requests.
// Invariants: it never panics; the status is a documented one; an error
// answer has X-Amzn-ErrorType and a {"Type","Message"} JSON body; a 2xx
// answers a valid request only, and every valid request for a registered
// function is answered 2xx.
func FuzzInvokeRequest(f *testing.F) {

	s := NewServer(nil)
	fn := &recordingEcho{}
	q := &fuzzQueue{}
	for _, c := range fuzzFunctions {
		s.Add(c.WithDefaults(), fn, q)
	}

	f.Fuzz(func(t *testing.T, stream bool, name, qualifier, invType, logType, clientContext, traceID, tenant string, body []byte) {
		r := invokeRequest(stream, name, qualifier, invType, logType, clientContext, traceID, tenant, body)
		if r == nil {
			return
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)

		status := rec.Code
		if !documentedStatus[status] {
			t.Fatalf("status %d is not one the Invoke API documents", status)
		}
		if rec.Header().Get("X-Amzn-RequestId") == "" {
			t.Errorf("status %d without X-Amzn-RequestId", status)
		}
		if status >= 400 {
			if rec.Header().Get("X-Amzn-ErrorType") == "" {
				t.Errorf("error %d without X-Amzn-ErrorType", status)
			}
			var e struct{ Type, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" ||
				(e.Type != "User" && e.Type != "Service") || (e.Type == "Service") != (status >= 500) {
				t.Errorf("error %d body %q is not {Type, Message}", status, rec.Body.Bytes())
			}
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("error %d with Content-Type %q", status, rec.Header().Get("Content-Type"))
			}
		}

		// What a valid request is, from the request as the server parsed
		// it, with Lambda's documented constraints.
		gotType := r.Header.Get("X-Amz-Invocation-Type")
		if gotType == "" {
			gotType = "RequestResponse"
		}
		allowed := map[string]bool{"RequestResponse": true, "DryRun": true, "Event": !stream}
		gotLog := r.Header.Get("X-Amz-Log-Type")
		limit := MaxSyncPayload
		if gotType == "Event" {
			limit = MaxAsyncPayload
		}
		cfg, resolves := oracleResolves(name, r.URL.Query().Get("Qualifier"))
		gotTenant := r.Header.Get("X-Amz-Tenant-Id")
		valid := resolves && allowed[gotType] &&
			cfg.TenantIsolation == (gotTenant != "") && len(gotTenant) <= 256 &&
			(gotLog == "" || gotLog == "None" || (gotLog == "Tail" && gotType != "Event")) &&
			oracleClientContext(r.Header.Get("X-Amz-Client-Context")) &&
			len(body) <= limit && (len(body) == 0 || json.Valid(body))
		ok := status >= 200 && status < 300
		if ok && !valid {
			t.Fatalf("status %d for an invalid request: %q", status, dump(r))
		}
		if valid && !ok {
			t.Fatalf("status %d (%s) for a valid request: %q", status, rec.Body.Bytes(), dump(r))
		}
		if !ok {
			return
		}
		want := map[string]int{"RequestResponse": 200, "Event": 202, "DryRun": 204}[gotType]
		if status != want {
			t.Errorf("%s answered %d, want %d", gotType, status, want)
		}
		if status == 200 && !stream {
			payload := body
			if len(payload) == 0 {
				payload = []byte("{}")
			}
			if !bytes.Equal(rec.Body.Bytes(), payload) {
				t.Errorf("echo body %q, want %q", rec.Body.Bytes(), payload)
			}
		}
	})
}

// dump is the request line and headers, for failure messages.
func dump(r *http.Request) string {
	var b strings.Builder
	b.WriteString(r.Method + " " + r.URL.RequestURI() + "\n")
	_ = r.Header.Write(&b)
	return b.String()
}

// FuzzFunctionName resolves fuzzed FunctionName path elements (names,
// name:qualifier, partial and full ARNs) and Qualifier parameters.
// Invariants: it never panics; it resolves exactly what the documented
// forms name; a failure is a 400 or a 404 with its error code.
func FuzzFunctionName(f *testing.F) {
	s := NewServer(nil)
	for _, c := range fuzzFunctions {
		s.Add(c.WithDefaults(), fakeFunction{echo}, nil)
	}
	f.Fuzz(func(t *testing.T, name, qualifier string) {
		e, err := s.lookup(name, qualifier)
		want, ok := oracleResolves(name, qualifier)
		switch {
		case err == nil && !ok:
			t.Fatalf("lookup(%q, %q) resolved %s; the documented forms name no function", name, qualifier, e.cfg.Name)
		case err == nil && e.cfg.Name != want.Name:
			t.Fatalf("lookup(%q, %q) resolved %s, want %s", name, qualifier, e.cfg.Name, want.Name)
		case err != nil && ok:
			t.Fatalf("lookup(%q, %q): %s %s, want %s", name, qualifier, err.Code, err.Msg, want.Name)
		case err != nil && !(err.Status == http.StatusNotFound && err.Code == "ResourceNotFoundException") &&
			!(err.Status == http.StatusBadRequest && err.Code != "" && err.Msg != ""):
			t.Fatalf("lookup(%q, %q): %d %s, want a 400 or ResourceNotFoundException", name, qualifier, err.Status, err.Code)
		}
	})
}

// FuzzClientContext checks X-Amz-Client-Context decoding. Invariants: it
// never panics; it accepts exactly base64 of a JSON object within 3583
// bytes and gives back that JSON; it refuses anything else with
// InvalidParameterValueException.
func FuzzClientContext(f *testing.F) {
	f.Fuzz(func(t *testing.T, h string) {
		got, err := decodeClientContext(h)
		want := oracleClientContext(h)
		switch {
		case err == nil && !want:
			t.Fatalf("accepted %q, which is not base64 of a JSON object within %d bytes", h, maxClientContext)
		case err != nil && want:
			t.Fatalf("refused %q: %s", h, err.Msg)
		case err != nil && (err.Status != http.StatusBadRequest || err.Code != "InvalidParameterValueException"):
			t.Fatalf("refused %q with %d %s", h, err.Status, err.Code)
		case err == nil && h != "":
			if b, _ := base64.StdEncoding.DecodeString(h); got != string(b) {
				t.Fatalf("decoded %q, want %q", got, b)
			}
		case err == nil && got != "":
			t.Fatalf("no header decoded to %q", got)
		}
	})
}
