package httpfront

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

var testMeta = Meta{
	RequestID:  "req-1",
	Time:       time.Date(2024, 3, 12, 19, 3, 58, 390e6, time.UTC),
	AccountID:  "111122223333",
	APIID:      "abc123",
	DomainName: "abc123.lambda-url.eu-west-1.on.aws",
	TraceID:    "Root=1-65f0a7ae-000000000000000000000000",
}

func TestFunctionURLEvent(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.com:8080/my/path%20x?a=1&b=x%26y&a=2&empty=", strings.NewReader(""))
	r.Header.Add("X-Multi", "one")
	r.Header.Add("X-Multi", "two")
	r.Header.Set("User-Agent", "agent/1")
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Add("Cookie", "c1=v1; c2=v2")
	r.Header.Add("Cookie", "c3=v3")
	r.RemoteAddr = "198.51.100.7:5555"
	e := FunctionURLEvent(r, []byte(`{"k":"v"}`), testMeta)

	if e.Version != "2.0" || e.RawPath != "/my/path%20x" || e.RawQueryString != "a=1&b=x%26y&a=2&empty=" {
		t.Errorf("version/rawPath/rawQueryString: %q %q %q", e.Version, e.RawPath, e.RawQueryString)
	}
	if e.RouteKey != "$default" || e.RequestContext.RouteKey != "$default" || e.RequestContext.Stage != "$default" {
		t.Errorf("routeKey %q requestContext.routeKey %q stage %q", e.RouteKey, e.RequestContext.RouteKey, e.RequestContext.Stage)
	}
	if want := []string{"c1=v1", "c2=v2", "c3=v3"}; !slices.Equal(e.Cookies, want) {
		t.Errorf("cookies %q, want %q", e.Cookies, want)
	}
	for k, want := range map[string]string{
		"x-multi":           "one,two",
		"user-agent":        "agent/1",
		"content-type":      "application/json; charset=utf-8",
		"host":              "example.com:8080",
		"x-forwarded-for":   "198.51.100.7",
		"x-forwarded-proto": "http",
		"x-forwarded-port":  "8080",
		"x-amzn-trace-id":   testMeta.TraceID,
	} {
		if got := e.Headers[k]; got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	for k := range e.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower-case", k)
		}
	}
	if _, ok := e.Headers["cookie"]; ok {
		t.Error("the cookie header stayed among the headers")
	}
	if want := map[string]string{"a": "1,2", "b": "x&y", "empty": ""}; !maps.Equal(e.QueryStringParameters, want) {
		t.Errorf("query %v, want %v", e.QueryStringParameters, want)
	}
	rc := e.RequestContext
	if rc.AccountID != "111122223333" || rc.APIID != "abc123" || rc.DomainName != testMeta.DomainName ||
		rc.DomainPrefix != "abc123" || rc.RequestID != "req-1" ||
		rc.Time != "12/Mar/2024:19:03:58 +0000" || rc.TimeEpoch != 1710270238390 {
		t.Errorf("requestContext %+v", rc)
	}
	if h := rc.HTTP; h.Method != "POST" || h.Path != "/my/path x" || h.Protocol != "HTTP/1.1" ||
		h.SourceIP != "198.51.100.7" || h.UserAgent != "agent/1" {
		t.Errorf("requestContext.http %+v", h)
	}
	if e.Body != `{"k":"v"}` || e.IsBase64Encoded {
		t.Errorf("body %q base64 %v", e.Body, e.IsBase64Encoded)
	}
}

func TestBodyEncoding(t *testing.T) {
	bin := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	for _, tc := range []struct {
		contentType string
		body        []byte
		b64         bool
	}{
		{"application/json", []byte(`{}`), false},
		{"text/plain; charset=utf-8", []byte("héllo"), false},
		{"application/vnd.api+json", []byte(`{}`), false},
		{"application/xml", []byte(`<a/>`), false},
		{"", []byte("plain"), false},
		{"", bin, true},
		{"", []byte{0, 1, 2}, true},
		{"", []byte("two\tlines\r\n"), false},
		{"image/png", bin, true},
		{"application/octet-stream", []byte("abc"), true},
		{"application/x-www-form-urlencoded", []byte("a=1"), true},
		{"multipart/form-data; boundary=x", []byte("--x--"), true},
		{"text/plain", bin, true}, // not UTF-8: JSON could not carry it
		{"not a media type", []byte("x"), true},
	} {
		text, b64 := encodeBody(tc.contentType, tc.body)
		if b64 != tc.b64 {
			t.Errorf("%q %q: base64 %v, want %v", tc.contentType, tc.body, b64, tc.b64)
			continue
		}
		got := []byte(text)
		if b64 {
			got, _ = base64.StdEncoding.DecodeString(text)
		}
		if string(got) != string(tc.body) {
			t.Errorf("%q: body %q does not give back %q", tc.contentType, text, tc.body)
		}
	}
}

func TestHTTPAPIEvent(t *testing.T) {
	r := httptest.NewRequest("GET", "/items/42?tag=a&tag=b", nil)
	m := &Match{Route: &Route{Method: "GET", Path: "/items/{id}"}, Params: map[string]string{"id": "42"}}
	meta := testMeta
	meta.Stage = "dev"
	meta.StageVariables = map[string]string{"db": "test"}
	e := HTTPAPIEvent(r, nil, m, meta)
	if e.RouteKey != "GET /items/{id}" || e.RequestContext.RouteKey != e.RouteKey || e.RequestContext.Stage != "dev" {
		t.Errorf("routeKey %q / %q stage %q", e.RouteKey, e.RequestContext.RouteKey, e.RequestContext.Stage)
	}
	if e.PathParameters["id"] != "42" || e.StageVariables["db"] != "test" || e.QueryStringParameters["tag"] != "a,b" {
		t.Errorf("pathParameters %v stageVariables %v query %v", e.PathParameters, e.StageVariables, e.QueryStringParameters)
	}
	if e.Body != "" || e.IsBase64Encoded || e.Cookies != nil {
		t.Errorf("body %q base64 %v cookies %v", e.Body, e.IsBase64Encoded, e.Cookies)
	}
	if e.RequestContext.HTTP.SourceIP != "192.0.2.1" { // httptest's RemoteAddr
		t.Errorf("sourceIp %q", e.RequestContext.HTTP.SourceIP)
	}
}

func TestRESTEvent(t *testing.T) {
	r := httptest.NewRequest("PUT", "/shop/items/7?color=red&color=blue&size=l", strings.NewReader(""))
	r.Header.Add("X-Multi", "one")
	r.Header.Add("X-Multi", "two")
	r.Header.Add("Cookie", "a=1")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	m := &Match{Route: &Route{Method: "ANY", Path: "/shop/{proxy+}", Version: "1.0"}, Params: map[string]string{"proxy": "items/7"}}
	meta := testMeta
	meta.Stage = "Prod"
	e := RESTEvent(r, []byte{0, 1, 2}, m, meta)
	if e.Resource != "/shop/{proxy+}" || e.Path != "/shop/items/7" || e.HTTPMethod != "PUT" {
		t.Errorf("resource %q path %q method %q", e.Resource, e.Path, e.HTTPMethod)
	}
	if e.Headers["X-Multi"] != "two" || !slices.Equal(e.MultiValueHeaders["X-Multi"], []string{"one", "two"}) {
		t.Errorf("X-Multi: %q %q", e.Headers["X-Multi"], e.MultiValueHeaders["X-Multi"])
	}
	if e.Headers["Cookie"] != "a=1" || e.Headers["Host"] != "example.com" {
		t.Errorf("Cookie %q Host %q", e.Headers["Cookie"], e.Headers["Host"])
	}
	if got := e.Headers["X-Forwarded-For"]; got != "203.0.113.9, 192.0.2.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if e.QueryStringParameters["color"] != "blue" || !slices.Equal(e.MultiValueQueryStringParameters["color"], []string{"red", "blue"}) ||
		e.QueryStringParameters["size"] != "l" {
		t.Errorf("query %v multi %v", e.QueryStringParameters, e.MultiValueQueryStringParameters)
	}
	if e.PathParameters["proxy"] != "items/7" || e.StageVariables != nil {
		t.Errorf("pathParameters %v stageVariables %v", e.PathParameters, e.StageVariables)
	}
	if e.Body != "AAEC" || !e.IsBase64Encoded {
		t.Errorf("body %q base64 %v", e.Body, e.IsBase64Encoded)
	}
	rc := e.RequestContext
	if rc.Stage != "Prod" || rc.ResourcePath != "/shop/{proxy+}" || rc.Path != "/Prod/shop/items/7" || rc.HTTPMethod != "PUT" ||
		rc.RequestTime != "12/Mar/2024:19:03:58 +0000" || rc.RequestTimeEpoch != 1710270238390 ||
		rc.Identity.SourceIP != "192.0.2.1" || rc.APIID != "abc123" || rc.Protocol != "HTTP/1.1" || len(rc.ResourceID) != 6 {
		t.Errorf("requestContext %+v", rc)
	}

	// Without a query string both query maps are null, as API Gateway sends them.
	e = RESTEvent(httptest.NewRequest("GET", "/", nil), nil, &Match{Route: &Route{Path: "/"}}, testMeta)
	if e.QueryStringParameters != nil || e.MultiValueQueryStringParameters != nil || e.PathParameters != nil {
		t.Errorf("query %v multi %v path %v", e.QueryStringParameters, e.MultiValueQueryStringParameters, e.PathParameters)
	}
}

func TestMarshalEvent(t *testing.T) {
	r := httptest.NewRequest("GET", "/a?x=1&y=<2>", nil)
	b, err := MarshalEvent(FunctionURLEvent(r, nil, testMeta))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "authentication") || strings.Contains(s, "clientCert") {
		t.Errorf("the empty authentication is encoded: %s", s)
	}
	if !strings.Contains(s, `"rawQueryString":"x=1&y=<2>"`) {
		t.Errorf("the query is escaped: %s", s)
	}
	var e events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &e); err != nil || e.RawQueryString != "x=1&y=<2>" {
		t.Errorf("%v %q", err, e.RawQueryString)
	}

	// A set authentication stays.
	ev := FunctionURLEvent(r, nil, testMeta)
	ev.RequestContext.Authentication.ClientCert.SerialNumber = "42"
	if b, _ := MarshalEvent(ev); !strings.Contains(string(b), `"serialNumber":"42"`) {
		t.Errorf("a set authentication was dropped: %s", b)
	}
	// So does a header that happens to be named authentication.
	r.Header.Set("Authentication", "x")
	if b, _ := MarshalEvent(FunctionURLEvent(r, nil, testMeta)); !strings.Contains(string(b), `"authentication":"x"`) {
		t.Errorf("the authentication header was dropped: %s", b)
	}
}
