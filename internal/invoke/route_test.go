package invoke

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
)

// Invoke skips the mux when its path is exactly the mux's pattern. Every
// other path, escaped, unclean or another method, must be answered as the
// mux alone answers it (request ids aside).
func TestFastRouteAnswersAsTheMux(t *testing.T) {
	const base = "/2015-03-31/functions/"
	for _, c := range []struct{ method, path string }{
		{"POST", base + "f/invocations"},
		{"POST", base + "f/invocations?Qualifier=%24LATEST"},
		{"POST", base + "f/invocations?Qualifier=v9"},
		{"POST", base + "f:$LATEST/invocations"},
		{"POST", base + "arn:aws:lambda:us-east-1:012345678912:function:f/invocations"},
		{"POST", base + "%66/invocations"},
		{"POST", base + "f%2Fg/invocations"},
		{"POST", base + "g/invocations"},
		{"POST", base + "/invocations"},
		{"POST", base + "./invocations"},
		{"POST", base + "../invocations"},
		{"POST", base + "a/f/invocations"},
		{"POST", base + "f/invocations/"},
		{"POST", base + "f//invocations"},
		{"POST", "/2015-03-31/functions//f/invocations"},
		{"GET", base + "f/invocations"},
		{"PUT", base + "f/invocations"},
		{"POST", base + "invocations"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var got [2]string
			for i, viaMux := range []bool{false, true} {
				s := NewServer(nil)
				s.Add(function.Config{Name: "f", Command: []string{"/b"}}.WithDefaults(), fakeFunction{echo}, nil)
				var h http.Handler = s
				if viaMux {
					h = s.mux
				}
				ts := httptest.NewServer(h)
				got[i] = rawRequest(t, ts.Listener.Addr().String(), c.method, c.path)
				ts.Close()
			}
			if got[0] != got[1] {
				t.Errorf("fast route answered\n%s\nthe mux answered\n%s", got[0], got[1])
			}
		})
	}
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// rawRequest sends one request with the path as given (no client-side
// cleaning) and returns the status, the error type, the location and the
// body, request ids masked.
func rawRequest(t *testing.T, addr, method, path string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"ok":true}`
	_, _ = c.Write([]byte(method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return uuidPattern.ReplaceAllString(resp.Status+" "+resp.Header.Get("X-Amzn-ErrorType")+" "+resp.Header.Get("Location")+" "+b.String(), "ID")
}

// header looks names up as given: each must be canonical, as net/http
// stores a request's header names.
func TestHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{"X-Amz-Invocation-Type", "X-Amz-Log-Type", HeaderTenantID,
		"X-Amz-Client-Context", "X-Amzn-Trace-Id", "Content-Type", HeaderCognitoIdentity} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
}
