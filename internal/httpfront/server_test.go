package httpfront

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/function"
)

const testARN = "arn:aws:lambda:eu-west-1:111122223333:function:web"

// fakeFunction records each request and answers with fn; a hand-written
// fake.
type fakeFunction struct {
	mu   sync.Mutex
	reqs []*function.Request
	fn   func(req *function.Request) (*function.Result, error)
}

func (f *fakeFunction) Invoke(_ context.Context, req *function.Request) (*function.Result, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return f.fn(req)
}

func (f *fakeFunction) last(t *testing.T) *function.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the function was not invoked")
	}
	return f.reqs[len(f.reqs)-1]
}

// answer makes a function that returns payload with content type ct.
func answer(payload, ct string) *fakeFunction {
	return &fakeFunction{fn: func(*function.Request) (*function.Result, error) {
		return &function.Result{Payload: []byte(payload), ContentType: ct}, nil
	}}
}

// echoV2 answers a payload 2.0 event with its own body, base64 and
// headers, and its cookies as Set-Cookie.
func echoV2() *fakeFunction {
	return &fakeFunction{fn: func(req *function.Request) (*function.Result, error) {
		var e events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(req.Payload, &e); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(events.APIGatewayV2HTTPResponse{
			StatusCode:      200,
			Headers:         map[string]string{"Content-Type": e.Headers["content-type"], "X-Multi": e.Headers["x-multi"]},
			Body:            e.Body,
			IsBase64Encoded: e.IsBase64Encoded,
			Cookies:         e.Cookies,
		})
		return &function.Result{Payload: b, ContentType: "application/json"}, nil
	}}
}

func newURL(t *testing.T, fn Function) *httptest.Server {
	t.Helper()
	s, err := NewFunctionURL(fn, Config{FunctionARN: testARN})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func newRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestFunctionURLRoundTrip(t *testing.T) {
	fn := echoV2()
	ts := newURL(t, fn)
	bin := []byte{0x89, 'P', 'N', 'G', 0, 0xff, 0xfe, '\n'}
	req := newRequest(t, "POST", ts.URL+"/upload/x?q=1&q=2&r=%2F", bin)
	req.Header.Set("Content-Type", "image/png")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.AddCookie(&http.Cookie{Name: "session", Value: "s1"})
	req.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
	resp, body := do(t, req)

	if resp.StatusCode != 200 || !bytes.Equal(body, bin) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if got := resp.Header.Get("X-Multi"); got != "a,b" {
		t.Errorf("X-Multi %q", got)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"session=s1", "theme=dark"}) {
		t.Errorf("Set-Cookie %q", got)
	}

	inv := fn.last(t)
	if _, err := uuid.Parse(inv.ID); err != nil {
		t.Errorf("request id %q: %v", inv.ID, err)
	}
	if resp.Header.Get("X-Amzn-RequestId") != inv.ID {
		t.Errorf("x-amzn-RequestId %q, want %q", resp.Header.Get("X-Amzn-RequestId"), inv.ID)
	}
	if inv.FunctionARN != testARN || inv.ContentType != "application/json" || !strings.HasPrefix(inv.TraceID, "Root=1-") {
		t.Errorf("invocation %q %q %q", inv.FunctionARN, inv.ContentType, inv.TraceID)
	}
	var e events.LambdaFunctionURLRequest
	if err := json.Unmarshal(inv.Payload, &e); err != nil {
		t.Fatal(err)
	}
	rc := e.RequestContext
	if rc.RequestID != inv.ID || rc.AccountID != "111122223333" || len(rc.APIID) != 32 ||
		rc.DomainName != rc.APIID+".lambda-url.eu-west-1.on.aws" || rc.DomainPrefix != rc.APIID {
		t.Errorf("requestContext %+v", rc)
	}
	if e.RawPath != "/upload/x" || e.RawQueryString != "q=1&q=2&r=%2F" || e.QueryStringParameters["q"] != "1,2" ||
		e.QueryStringParameters["r"] != "/" || e.Headers["x-amzn-trace-id"] != inv.TraceID {
		t.Errorf("event %+v", e)
	}
	// The event as JSON carries routeKey "$default", which the
	// function URL type has no field for.
	var raw map[string]any
	_ = json.Unmarshal(inv.Payload, &raw)
	if raw["version"] != "2.0" || raw["isBase64Encoded"] != true {
		t.Errorf("version %v isBase64Encoded %v", raw["version"], raw["isBase64Encoded"])
	}
}

func TestFunctionURLResults(t *testing.T) {
	nuls := "\x00\x00\x00\x00\x00\x00\x00\x00"
	for _, tc := range []struct {
		name        string
		fn          *fakeFunction
		status      int
		contentType string
		body        string
	}{
		{"structured", answer(`{"statusCode":201,"headers":{"content-type":"text/plain"},"body":"created"}`, "application/json"),
			201, "text/plain", "created"},
		{"plain JSON", answer(`{"hello":"world"}`, "application/json"), 200, "application/json", `{"hello":"world"}`},
		{"string", answer(`"hi"`, "application/json"), 200, "application/json", `"hi"`},
		{"function error", &fakeFunction{fn: func(*function.Request) (*function.Result, error) {
			return function.ErrorResult("Function.Boom", "boom"), nil
		}}, 502, "application/json", `{"message":"Internal Server Error"}`},
		{"timeout", &fakeFunction{fn: func(*function.Request) (*function.Result, error) {
			return function.ErrorResult("Sandbox.Timedout", "Task timed out after 3.00 seconds"), nil
		}}, 502, "application/json", `{"message":"Internal Server Error"}`},
		{"not JSON", answer(`hello`, "text/plain"), 502, "application/json", `{"message":"Internal Server Error"}`},
		{"bad base64", answer(`{"statusCode":200,"body":"%%%","isBase64Encoded":true}`, "application/json"),
			502, "application/json", `{"message":"Internal Server Error"}`},
		{"streamed prelude", answer(`{"statusCode":418,"headers":{"Content-Type":"text/x-tea"}}`+nuls+"short\x00and stout", ContentTypeHTTPIntegration),
			418, "text/x-tea", "short\x00and stout"},
		{"streamed prelude without NULs", answer(`{"statusCode":200}body`, ContentTypeHTTPIntegration),
			502, "application/json", `{"message":"Internal Server Error"}`},
		{"no result", &fakeFunction{fn: func(*function.Request) (*function.Result, error) {
			return &function.Result{}, nil
		}}, 502, "application/json", `{"message":"Internal Server Error"}`},
		{"invoke failed", &fakeFunction{fn: func(*function.Request) (*function.Result, error) {
			return nil, errors.New("no environment")
		}}, 500, "application/json", `{"message":"Internal Server Error"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newURL(t, tc.fn)
			resp, body := do(t, newRequest(t, "GET", ts.URL+"/", nil))
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.contentType || string(body) != tc.body {
				t.Errorf("%d %q %q, want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.contentType, tc.body)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	errBusy := errors.New("busy")
	s, err := NewFunctionURL(&fakeFunction{fn: func(*function.Request) (*function.Result, error) {
		return nil, errBusy
	}}, Config{FunctionARN: testARN, ErrThrottled: errBusy})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 429 || w.Body.String() != `{"message":"Too Many Requests"}` {
		t.Errorf("%d %q", w.Code, w.Body)
	}
}

func TestRequestTooLarge(t *testing.T) {
	fn := answer(`{}`, "application/json")
	ts := newURL(t, fn)
	check := func(name string, size int) {
		t.Helper()
		resp, body := do(t, newRequest(t, "POST", ts.URL+"/", bytes.Repeat([]byte("a"), size)))
		var e struct{ Type, Message string }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != 413 || resp.Header.Get("X-Amzn-ErrorType") != "RequestTooLargeException" || e.Type != "User" ||
			e.Message != "Request must be smaller than 6291456 bytes for the InvokeFunction operation" {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
		}
	}
	check("body over 6 MiB", MaxPayload+1)
	// A body under the limit whose event is over it (the event adds the
	// request's headers and context) is refused too.
	check("event over 6 MiB", MaxPayload-100)
	if n := len(fn.reqs); n != 0 {
		t.Errorf("the function was invoked %d times", n)
	}
	resp, _ := do(t, newRequest(t, "POST", ts.URL+"/", bytes.Repeat([]byte("a"), MaxPayload-4096)))
	if resp.StatusCode != 200 {
		t.Errorf("a body under the limit: %d", resp.StatusCode)
	}
}

// TestHugeHeader checks both sides of Go's header limit
// (http.DefaultMaxHeaderBytes, 1 MiB): under it the header reaches the
// event; over it the server answers 431 and the function is never invoked.
func TestHugeHeader(t *testing.T) {
	fn := echoV2()
	ts := newURL(t, fn)
	big := strings.Repeat("x", 512<<10)
	req := newRequest(t, "GET", ts.URL+"/", nil)
	req.Header.Set("X-Multi", big)
	resp, _ := do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("X-Multi") != big {
		t.Errorf("512 KiB header: %d, header echoed: %v", resp.StatusCode, resp.Header.Get("X-Multi") == big)
	}

	n := len(fn.reqs)
	req = newRequest(t, "GET", ts.URL+"/", nil)
	req.Header.Set("X-Huge", strings.Repeat("x", 2<<20))
	resp, _ = do(t, req)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MiB header: %d, want 431", resp.StatusCode)
	}
	if len(fn.reqs) != n {
		t.Error("the function was invoked for a request over the header limit")
	}
	// The server still works.
	resp, _ = do(t, newRequest(t, "GET", ts.URL+"/", nil))
	if resp.StatusCode != 200 {
		t.Errorf("after the huge header: %d", resp.StatusCode)
	}
}

func TestAPIGateway(t *testing.T) {
	v1 := &fakeFunction{fn: func(req *function.Request) (*function.Result, error) {
		var e events.APIGatewayProxyRequest
		if err := json.Unmarshal(req.Payload, &e); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(events.APIGatewayProxyResponse{
			StatusCode:        200,
			MultiValueHeaders: map[string][]string{"X-Tags": e.MultiValueQueryStringParameters["tag"], "Set-Cookie": {"a=1", "b=2"}},
			Body:              e.Resource + " " + e.PathParameters["proxy"] + " " + e.Body,
		})
		return &function.Result{Payload: b, ContentType: "application/json"}, nil
	}}
	v2 := &fakeFunction{fn: func(req *function.Request) (*function.Result, error) {
		var e events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(req.Payload, &e); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(map[string]any{"routeKey": e.RouteKey, "params": e.PathParameters, "stage": e.RequestContext.Stage})
		return &function.Result{Payload: b, ContentType: "application/json"}, nil
	}}
	routes := []Route{
		{Method: "GET", Path: "/items/{id}", Function: v2, FunctionARN: testARN},
		{Method: "GET", Path: "/items/{id}/parts/{part}", Function: v2, FunctionARN: testARN},
		{Method: "ANY", Path: "/legacy/{proxy+}", Version: "1.0", Function: v1, FunctionARN: testARN + "2"},
	}
	s, err := NewAPIGateway(routes, Config{Stage: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if routes[0].Version != "" {
		t.Error("NewAPIGateway changed the caller's routes")
	}
	ts := httptest.NewServer(s)
	defer ts.Close()

	resp, body := do(t, newRequest(t, "GET", ts.URL+"/items/a%20b/parts/7", nil))
	if resp.StatusCode != 200 || string(body) != `{"params":{"id":"a b","part":"7"},"routeKey":"GET /items/{id}/parts/{part}","stage":"dev"}` {
		t.Errorf("v2: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, newRequest(t, "POST", ts.URL+"/legacy/x/y/z.txt?tag=a&tag=b", []byte("hello")))
	if resp.StatusCode != 200 || string(body) != "/legacy/{proxy+} x/y/z.txt hello" {
		t.Errorf("v1: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-Tags"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("X-Tags %q", got)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("Set-Cookie %q", got)
	}
	inv := v1.last(t)
	if inv.FunctionARN != testARN+"2" {
		t.Errorf("function ARN %q", inv.FunctionARN)
	}
	var e events.APIGatewayProxyRequest
	_ = json.Unmarshal(inv.Payload, &e)
	if e.HTTPMethod != "POST" || e.RequestContext.Stage != "dev" || len(e.RequestContext.APIID) != 10 ||
		e.RequestContext.DomainName != e.RequestContext.APIID+".execute-api.eu-west-1.amazonaws.com" {
		t.Errorf("event %+v", e)
	}

	for _, path := range []string{"/items", "/legacy", "/nothing"} {
		resp, body = do(t, newRequest(t, "GET", ts.URL+path, nil))
		if resp.StatusCode != 404 || string(body) != `{"message":"Not Found"}` {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, _ = do(t, newRequest(t, "DELETE", ts.URL+"/items/1", nil))
	if resp.StatusCode != 404 {
		t.Errorf("DELETE /items/1: %d", resp.StatusCode)
	}
}

func TestAPIGatewayV1Errors(t *testing.T) {
	for payload, status := range map[string]int{
		`{"statusCode":200,"body":"ok"}`: 200,
		`{"body":"no status"}`:           502,
		`"just a string"`:                502,
	} {
		s, err := NewAPIGateway([]Route{{Path: "/{proxy+}", Version: "1.0", Function: answer(payload, "application/json"), FunctionARN: testARN}}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", "/a", nil))
		if w.Code != status {
			t.Errorf("%s: %d, want %d", payload, w.Code, status)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewFunctionURL(answer("{}", ""), Config{}); err == nil {
		t.Error("NewFunctionURL without a function ARN")
	}
	if _, err := NewFunctionURL(nil, Config{FunctionARN: testARN}); err == nil {
		t.Error("NewFunctionURL without a function")
	}
	if _, err := NewAPIGateway(nil, Config{}); err == nil {
		t.Error("NewAPIGateway without routes")
	}
	if _, err := NewAPIGateway([]Route{{Path: "/a"}}, Config{}); err == nil {
		t.Error("NewAPIGateway with a route without a function")
	}
	if _, err := NewAPIGateway([]Route{{Path: "a", Function: answer("{}", ""), FunctionARN: testARN}}, Config{}); !errors.Is(err, ErrRoute) {
		t.Errorf("NewAPIGateway with a bad route: %v", err)
	}
}

func TestBase64RequestBody(t *testing.T) {
	fn := answer(`{}`, "application/json")
	ts := newURL(t, fn)
	bin := []byte{0, 1, 2, 3, 0xff}
	req := newRequest(t, "PUT", ts.URL+"/b", bin)
	req.Header.Set("Content-Type", "application/octet-stream")
	do(t, req)
	var e events.LambdaFunctionURLRequest
	_ = json.Unmarshal(fn.last(t).Payload, &e)
	if got, _ := base64.StdEncoding.DecodeString(e.Body); !e.IsBase64Encoded || !bytes.Equal(got, bin) {
		t.Errorf("body %q base64 %v", e.Body, e.IsBase64Encoded)
	}
}

// goHandler is a Function running a real aws-lambda-go handler in process,
// as its runtime would: the payload in, the handler's bytes out with the
// content type the runtime would post.
func goHandler(handler any, contentType string) *fakeFunction {
	h := lambda.NewHandler(handler)
	return &fakeFunction{fn: func(req *function.Request) (*function.Result, error) {
		b, err := h.Invoke(context.Background(), req.Payload)
		if err != nil {
			return function.ErrorResult("errorString", err.Error()), nil
		}
		return &function.Result{Payload: b, ContentType: contentType}, nil
	}}
}

func TestAWSLambdaGoHandlers(t *testing.T) {
	url := goHandler(func(_ context.Context, e events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
		if e.RawPath == "/fail" {
			return events.LambdaFunctionURLResponse{}, errors.New("failed")
		}
		return events.LambdaFunctionURLResponse{
			StatusCode:      201,
			Headers:         map[string]string{"Content-Type": e.Headers["content-type"], "X-Query": e.QueryStringParameters["q"]},
			Body:            e.Body,
			IsBase64Encoded: e.IsBase64Encoded,
			Cookies:         append(e.Cookies, "new=1"),
		}, nil
	}, "application/json")
	ts := newURL(t, url)
	bin := []byte{0xff, 0, 0xfe}
	req := newRequest(t, "POST", ts.URL+"/x?q=a&q=b", bin)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Cookie", "old=0")
	resp, body := do(t, req)
	if resp.StatusCode != 201 || !bytes.Equal(body, bin) || resp.Header.Get("X-Query") != "a,b" ||
		!slices.Equal(resp.Header.Values("Set-Cookie"), []string{"old=0", "new=1"}) {
		t.Errorf("function URL: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = do(t, newRequest(t, "GET", ts.URL+"/fail", nil))
	if resp.StatusCode != 502 {
		t.Errorf("function URL error: %d %s", resp.StatusCode, body)
	}

	stream := goHandler(func(_ context.Context, e events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
		return &events.LambdaFunctionURLStreamingResponse{
			StatusCode: 200,
			Headers:    map[string]string{"Content-Type": "text/plain"},
			Cookies:    []string{"s=1"},
			Body:       strings.NewReader("streamed " + e.RawPath),
		}, nil
	}, ContentTypeHTTPIntegration)
	ts = newURL(t, stream)
	resp, body = do(t, newRequest(t, "GET", ts.URL+"/s", nil))
	if resp.StatusCode != 200 || string(body) != "streamed /s" || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("Set-Cookie") != "s=1" {
		t.Errorf("streaming: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	rest := goHandler(func(_ context.Context, e events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{
			StatusCode:        200,
			Headers:           map[string]string{"Content-Type": "text/plain"},
			MultiValueHeaders: map[string][]string{"X-Q": e.MultiValueQueryStringParameters["q"]},
			Body:              e.HTTPMethod + " " + e.Resource + " " + e.PathParameters["id"],
		}, nil
	}, "application/json")
	s, err := NewAPIGateway([]Route{{Method: "GET", Path: "/items/{id}", Version: "1.0", Function: rest, FunctionARN: testARN}}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts = httptest.NewServer(s)
	defer ts.Close()
	resp, body = do(t, newRequest(t, "GET", ts.URL+"/items/9?q=1&q=2", nil))
	if resp.StatusCode != 200 || string(body) != "GET /items/{id} 9" || !slices.Equal(resp.Header.Values("X-Q"), []string{"1", "2"}) {
		t.Errorf("REST: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}
