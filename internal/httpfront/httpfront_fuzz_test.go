package httpfront

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// The fuzz targets below check the mapping between HTTP and Lambda events
// and results. Their seed corpus is in testdata/fuzz/<FuzzName>;
// .ci/fuzz.sh runs each for a bounded time.

// fuzzRequest parses a request as net/http's server does: the request line
// (method and target) and the header block as given; nil when the server
// would refuse it before any handler runs.
func fuzzRequest(method, target, header string) *http.Request {
	var wire bytes.Buffer
	wire.WriteString(method + " " + target + " HTTP/1.1\r\nHost: abc.lambda-url.eu-west-1.on.aws\r\n")
	for line := range strings.SplitSeq(header, "\n") {
		if line = strings.TrimSuffix(line, "\r"); line != "" {
			wire.WriteString(line + "\r\n")
		}
	}
	wire.WriteString("\r\n")
	r, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil || len(r.Header.Values("Host")) > 1 || !validHost(r.Host) || r.Method == "CONNECT" || !strings.HasPrefix(r.URL.Path, "/") {
		return nil
	}
	for k, vs := range r.Header {
		if !validFieldName(k) {
			return nil
		}
		for _, v := range vs {
			if strings.ContainsFunc(v, func(c rune) bool { return (c < 0x20 && c != '\t') || c == 0x7f }) {
				return nil
			}
		}
	}
	r.Header.Del("Host")
	r.RemoteAddr = "198.51.100.7:5555"
	return r
}

// validHost is httpguts.ValidHostHeader, which the server applies.
func validHost(h string) bool {
	return !strings.ContainsFunc(h, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("!$%&'()*+,-.:;=[]_~", c))
	})
}

func validFieldName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}

// jsonString is s as it comes out of a JSON string: each byte of invalid
// UTF-8 becomes U+FFFD, the one change JSON makes.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// hopByHop reports whether a request header is one a proxy consumes, so
// the front may leave it out of the event.
func hopByHop(r *http.Request, name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization":
		return true
	}
	for _, v := range r.Header.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// frontAdded reports whether the front sets the header itself.
func frontAdded(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Amzn-Trace-Id":
		return true
	}
	return false
}

// queryPairs is the query as a client means it: pairs split on "&" only,
// each name and value decoded; pairs that do not decode are left out.
func queryPairs(raw string) map[string][]string {
	q := map[string][]string{}
	for pair := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if pair == "" || err1 != nil || err2 != nil {
			continue
		}
		q[k] = append(q[k], v)
	}
	return q
}

// checkBody checks that the event's body gives back the request's.
func checkBody(t *testing.T, body []byte, text string, b64 bool) {
	t.Helper()
	got := []byte(text)
	if b64 {
		var err error
		if got, err = base64.StdEncoding.DecodeString(text); err != nil {
			t.Fatalf("isBase64Encoded body %q: %v", text, err)
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body %q (base64 %v) does not give back %q", text, b64, body)
	}
}

// fuzzRoutes are the API routes FuzzRequestToEvent matches requests to.
var fuzzRoutes = []Route{
	{Method: "GET", Path: "/items/{id}", Version: "2.0"},
	{Path: "/shop/{proxy+}", Version: "1.0"},
	{Path: DefaultRoute, Version: "1.0"},
}

// FuzzRequestToEvent maps fuzzed requests (method, path and raw query,
// headers with cookies and repeated names, text and binary bodies) to
// function URL (payload 2.0) and REST API (payload 1.0) events.
// Invariants: it never panics; the event is valid JSON; the body comes back
// from it (through base64 when isBase64Encoded); the path, the query, the
// path parameters, the headers and the cookies survive.
func FuzzRequestToEvent(f *testing.F) {

	router, err := NewRouter(fuzzRoutes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte) {
		r := fuzzRequest(method, target, header)
		if r == nil {
			return
		}
		meta := Meta{RequestID: "req-1", APIID: "abc", TraceID: "Root=1-65f0a7ae-000000000000000000000001"}
		want := queryPairs(r.URL.RawQuery)

		// Function URL: payload format 2.0.
		b, err := MarshalEvent(FunctionURLEvent(r, body, meta))
		if err != nil || !json.Valid(b) {
			t.Fatalf("2.0 event: %v: %q", err, b)
		}
		var v2 events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(b, &v2); err != nil {
			t.Fatalf("2.0 event does not decode: %v", err)
		}
		checkBody(t, body, v2.Body, v2.IsBase64Encoded)
		if v2.RawPath != jsonString(r.URL.EscapedPath()) || v2.RequestContext.HTTP.Path != jsonString(r.URL.Path) ||
			v2.RawQueryString != jsonString(r.URL.RawQuery) || v2.RequestContext.HTTP.Method != jsonString(r.Method) {
			t.Fatalf("2.0 path %q %q query %q method %q; request %q %q %q", v2.RawPath, v2.RequestContext.HTTP.Path, v2.RawQueryString,
				v2.RequestContext.HTTP.Method, r.URL.EscapedPath(), r.URL.Path, r.URL.RawQuery)
		}
		for k, vs := range want {
			if !utf8.ValidString(k) || strings.ContainsRune(k, utf8.RuneError) {
				continue // JSON cannot keep this name apart from another
			}
			if got, w := v2.QueryStringParameters[k], jsonString(strings.Join(vs, ",")); got != w {
				t.Fatalf("2.0 query %q = %q, want %q (raw %q)", k, got, w, r.URL.RawQuery)
			}
		}
		var cookies []string
		for _, c := range r.Header.Values("Cookie") {
			for c := range strings.SplitSeq(c, ";") {
				if c = strings.TrimSpace(c); c != "" {
					cookies = append(cookies, jsonString(c))
				}
			}
		}
		if !slices.Equal(v2.Cookies, cookies) {
			t.Fatalf("2.0 cookies %q, want %q", v2.Cookies, cookies)
		}
		for name, vs := range r.Header {
			if name == "Cookie" || frontAdded(name) || hopByHop(r, name) {
				continue
			}
			if got, w := v2.Headers[strings.ToLower(name)], jsonString(strings.Join(vs, ",")); got != w {
				t.Fatalf("2.0 header %s = %q, want %q", name, got, w)
			}
		}
		if v2.Headers["host"] != r.Host || !strings.HasSuffix(v2.Headers["x-forwarded-for"], "198.51.100.7") {
			t.Fatalf("2.0 host %q x-forwarded-for %q", v2.Headers["host"], v2.Headers["x-forwarded-for"])
		}

		// API: a route's payload format, its path parameters.
		match, ok := router.Match(r.Method, r.URL.EscapedPath())
		if !ok {
			t.Fatalf("no route for %q although there is a $default route", r.URL.EscapedPath())
		}
		for name, p := range match.Params {
			if p == "" {
				t.Fatalf("empty path parameter %s", name)
			}
			escaped := strings.TrimPrefix(r.URL.EscapedPath(), "/items/")
			if name == "proxy" {
				escaped = strings.TrimPrefix(r.URL.EscapedPath(), "/shop/")
			}
			if u, err := url.PathUnescape(escaped); err != nil || u != p {
				t.Fatalf("path parameter %s = %q from %q", name, p, r.URL.EscapedPath())
			}
		}
		if match.Route.Version == "2.0" {
			b, err := MarshalEvent(HTTPAPIEvent(r, body, match, meta))
			if err != nil || !json.Valid(b) {
				t.Fatalf("HTTP API event: %v: %q", err, b)
			}
			return
		}

		// REST API: payload format 1.0.
		b, err = MarshalEvent(RESTEvent(r, body, match, meta))
		if err != nil || !json.Valid(b) {
			t.Fatalf("1.0 event: %v: %q", err, b)
		}
		var v1 events.APIGatewayProxyRequest
		if err := json.Unmarshal(b, &v1); err != nil {
			t.Fatalf("1.0 event does not decode: %v", err)
		}
		checkBody(t, body, v1.Body, v1.IsBase64Encoded)
		if v1.Path != jsonString(r.URL.Path) || v1.HTTPMethod != jsonString(r.Method) {
			t.Fatalf("1.0 path %q method %q", v1.Path, v1.HTTPMethod)
		}
		for k, vs := range want {
			if !utf8.ValidString(k) || strings.ContainsRune(k, utf8.RuneError) {
				continue
			}
			if got, w := v1.MultiValueQueryStringParameters[k], vs; !slices.Equal(got, jsonStrings(w)) || v1.QueryStringParameters[k] != jsonString(w[len(w)-1]) {
				t.Fatalf("1.0 query %q = %q / %q, want %q (raw %q)", k, v1.QueryStringParameters[k], got, w, r.URL.RawQuery)
			}
		}
		for name, vs := range r.Header {
			if frontAdded(name) || hopByHop(r, name) {
				continue
			}
			if !slices.Equal(v1.MultiValueHeaders[name], jsonStrings(vs)) || v1.Headers[name] != jsonString(vs[len(vs)-1]) {
				t.Fatalf("1.0 header %s = %q / %q, want %q", name, v1.Headers[name], v1.MultiValueHeaders[name], vs)
			}
		}
	})
}

func jsonStrings(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = jsonString(v)
	}
	return out
}

// FuzzResultToResponse maps a fuzzed function result (JSON or not, with
// statusCode, headers, multiValueHeaders, cookies, isBase64Encoded and
// body, or an HTTP-integration stream) to an HTTP response, directly and
// through the front. Invariants: it never panics; the status is in
// 100..599, or the front answers 502 with its own error; a base64 body
// decodes, or gives that error; the result's body and headers reach the
// response.
func FuzzResultToResponse(f *testing.F) {

	f.Fuzz(func(t *testing.T, mode uint8, payload []byte) {
		var resp *Response
		var err error
		switch mode % 3 {
		case 0:
			resp, err = ResponseV2(payload)
		case 1:
			resp, err = ResponseV1(payload)
		case 2:
			p, body, perr := ReadPrelude(bytes.NewReader(payload))
			if perr != nil {
				if !errors.Is(perr, ErrMalformedResponse) {
					t.Fatalf("prelude error %v is not ErrMalformedResponse", perr)
				}
			} else {
				rest, _ := io.ReadAll(body)
				i := bytes.Index(payload, make([]byte, 8))
				if p.StatusCode < 100 || p.StatusCode > 599 || i < 0 || !bytes.Equal(rest, payload[i+8:]) {
					t.Fatalf("prelude status %d, body %q of %q", p.StatusCode, rest, payload)
				}
				var members map[string]json.RawMessage
				if json.Unmarshal(payload[:i], &members) == nil && members["statusCode"] == nil && p.StatusCode != http.StatusOK {
					t.Fatalf("prelude without statusCode gave status %d: %q", p.StatusCode, payload[:i])
				}
			}
		}
		if mode%3 != 2 {
			checkMapped(t, mode%3 == 1, payload, resp, err)
		}

		// Through the front, as a buffered function URL or REST API answer.
		ct := "application/json"
		if mode%3 == 2 {
			ct = ContentTypeHTTPIntegration
		}
		fn := answer(string(payload), ct)
		var s *Server
		if mode%3 == 1 {
			s, err = NewAPIGateway([]Route{{Path: DefaultRoute, Version: "1.0", Function: fn, FunctionARN: testARN}}, Config{})
		} else {
			s, err = NewFunctionURL(fn, Config{FunctionARN: testARN})
		}
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		switch {
		case rec.Code < 100 || rec.Code > 599:
			t.Fatalf("front status %d", rec.Code)
		case resp != nil && rec.Code != resp.StatusCode:
			t.Fatalf("front status %d, mapped %d", rec.Code, resp.StatusCode)
		case resp != nil && !bytes.Equal(rec.Body.Bytes(), resp.Body):
			t.Fatalf("front body %q, mapped %q", rec.Body.Bytes(), resp.Body)
		case mode%3 != 2 && resp == nil && (rec.Code != http.StatusBadGateway || rec.Body.String() != `{"message":"Internal Server Error"}`):
			t.Fatalf("malformed result answered %d %q, want the front's 502", rec.Code, rec.Body.Bytes())
		}
	})
}

// checkMapped checks a result mapped by ResponseV1 or ResponseV2 against
// the result itself.
func checkMapped(t *testing.T, v1 bool, payload []byte, resp *Response, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrMalformedResponse) || resp != nil {
			t.Fatalf("error %v is not ErrMalformedResponse", err)
		}
	} else if resp.StatusCode < 100 || resp.StatusCode > 599 {
		t.Fatalf("status %d out of 100..599", resp.StatusCode)
	}
	// The result's members, by their exact names: Lambda's are
	// case-sensitive.
	var members map[string]json.RawMessage
	var res struct {
		StatusCode        json.RawMessage
		Headers           map[string]string
		MultiValueHeaders map[string][]string
		Cookies           []string
		Body              *string
		IsBase64Encoded   bool
	}
	structured := json.Unmarshal(payload, &members) == nil && members["statusCode"] != nil
	for name, dst := range map[string]any{"headers": &res.Headers, "multiValueHeaders": &res.MultiValueHeaders,
		"cookies": &res.Cookies, "body": &res.Body, "isBase64Encoded": &res.IsBase64Encoded} {
		if raw, ok := members[name]; ok && json.Unmarshal(raw, dst) != nil {
			structured = false // a malformed member: the result is malformed
		}
	}
	if !v1 && !structured {
		var probe map[string]json.RawMessage
		if json.Valid(payload) && (json.Unmarshal(payload, &probe) != nil || probe["statusCode"] == nil) {
			// Any other JSON value is the body of a 200.
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(resp.Body, payload) {
				t.Fatalf("JSON %q mapped to %v %v", payload, resp, err)
			}
		}
		return
	}
	if err != nil || !structured {
		return
	}
	if res.Body != nil && res.IsBase64Encoded {
		b, derr := base64.StdEncoding.DecodeString(*res.Body)
		if derr != nil || !bytes.Equal(resp.Body, b) {
			t.Fatalf("base64 body %q mapped to %q (%v)", *res.Body, resp.Body, derr)
		}
	} else if res.Body != nil && string(resp.Body) != *res.Body {
		t.Fatalf("body %q mapped to %q", *res.Body, resp.Body)
	} else if res.Body == nil && len(resp.Body) > 0 {
		t.Fatalf("no body mapped to %q", resp.Body)
	}
	for k, v := range res.Headers {
		if !slices.Contains(resp.Header.Values(k), v) && http.CanonicalHeaderKey(k) != "Content-Length" {
			t.Fatalf("header %s: %q lost in %q", k, v, resp.Header.Values(k))
		}
	}
	if v1 {
		for k, vs := range res.MultiValueHeaders {
			for _, v := range vs {
				if !slices.Contains(resp.Header.Values(k), v) {
					t.Fatalf("multi-value header %s: %q lost in %q", k, v, resp.Header.Values(k))
				}
			}
		}
	} else if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, res.Cookies) && !(len(got) == 0 && len(res.Cookies) == 0) {
		t.Fatalf("cookies %q became Set-Cookie %q", res.Cookies, got)
	}
}
