package invoke

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/lambdabox/lambdabox/internal/function"
)

// fakeFunction answers every invoke with fn's result; a hand-written fake.
type fakeFunction struct {
	fn func(*function.Request) (*function.Result, error)
}

func (f fakeFunction) Invoke(_ context.Context, req *function.Request) (*function.Result, error) {
	return f.fn(req)
}

func newServer(fn func(*function.Request) (*function.Result, error)) *httptest.Server {
	s := NewServer(nil)
	s.Add(function.Config{Name: "f", Command: []string{"/b"}}.WithDefaults(), fakeFunction{fn}, nil)
	return httptest.NewServer(s)
}

func echo(req *function.Request) (*function.Result, error) {
	return &function.Result{Payload: req.Payload, ContentType: "application/json"}, nil
}

func TestLookup(t *testing.T) {
	ts := newServer(echo)
	defer ts.Close()
	for name, want := range map[string]int{
		"f": 200, "function": 200, "f:$LATEST": 200, "f:live": 404, "g": 404,
		"arn:aws:lambda:us-east-1:012345678912:function:f":          200,
		"arn:aws:lambda:us-east-1:012345678912:function:f:$LATEST":  200,
		"012345678912:function:f":                                   200,
		"012345678912:function:f:v2":                                404,
		"arn:aws:lambda:us-east-1:012345678912:function:nope:alias": 404,
	} {
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/"+name+"/invocations", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, want)
		}
	}
}

func TestThrottledAndServiceErrors(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{function.ErrThrottled, 429, "TooManyRequestsException"},
		{context.DeadlineExceeded, 500, "ServiceException"},
	} {
		ts := newServer(func(*function.Request) (*function.Result, error) { return nil, c.err })
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/f/invocations", "", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		ts.Close()
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-ErrorType") != c.code || body["Message"] == "" {
			t.Errorf("%v: %d %s %v", c.err, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
		}
		if c.status == 429 && (resp.Header.Get("Retry-After") == "" || body["Reason"] != "ReservedFunctionConcurrentInvocationLimitExceeded") {
			t.Errorf("429 lacks Retry-After or Reason: %v %v", resp.Header, body)
		}
	}
}

func TestEmptyPayloadIsEmptyObject(t *testing.T) {
	got := make(chan string, 1)
	ts := newServer(func(req *function.Request) (*function.Result, error) {
		got <- string(req.Payload)
		return echo(req)
	})
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/2015-03-31/functions/f/invocations", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := <-got; p != "{}" {
		t.Errorf("payload %q, want {}", p)
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

func TestReadPayload(t *testing.T) {
	tests := []struct {
		name   string
		body   func() io.Reader
		size   int64 // Content-Length
		status int
		code   string
	}{
		{"JSON", func() io.Reader { return strings.NewReader(`{"a":1}`) }, 7, 0, ""},
		{"empty", func() io.Reader { return strings.NewReader("") }, 0, 0, ""},
		{"too large", func() io.Reader { return strings.NewReader(`"` + strings.Repeat("a", 20) + `"`) }, 22, http.StatusRequestEntityTooLarge, "RequestTooLargeException"},
		{"not JSON", func() io.Reader { return strings.NewReader("{") }, 1, http.StatusBadRequest, "InvalidRequestContentException"},
		{"shorter than its length", func() io.Reader {
			return io.MultiReader(strings.NewReader(`{"`), iotest.ErrReader(io.ErrUnexpectedEOF))
		}, 7, http.StatusBadRequest, "InvalidRequestContentException"},
		{"body-read timeout", func() io.Reader { return &stalled{`{"a":`} }, 10, http.StatusRequestTimeout, "RequestTimeoutException"},
	}
	for _, tt := range tests {
		for _, size := range []int64{-1, tt.size} {
			t.Run(tt.name+"/"+strconv.FormatInt(size, 10), func(t *testing.T) {
				b, e := readPayload(tt.body(), size, 16, "RequestResponse")
				switch {
				case tt.status == 0 && e != nil:
					t.Errorf("error %+v, want none", e)
				case tt.status == 0 && tt.size > 0 && int64(len(b)) != tt.size:
					t.Errorf("payload %q, want %d bytes", b, tt.size)
				case tt.status != 0 && (e == nil || e.Status != tt.status || e.Code != tt.code):
					t.Errorf("error %+v, want %d %s", e, tt.status, tt.code)
				}
			})
		}
	}
}

func TestAddReplaceRemove(t *testing.T) {
	s := NewServer(nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	answer := func(body string) fakeFunction {
		return fakeFunction{func(*function.Request) (*function.Result, error) {
			return &function.Result{Payload: []byte(body)}, nil
		}}
	}
	call := func(name string) (int, string) {
		t.Helper()
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/"+name+"/invocations", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s.Add(function.Config{Name: "a"}.WithDefaults(), answer(`"a1"`), nil)
	s.Add(function.Config{Name: "b"}.WithDefaults(), answer(`"b"`), nil)
	for _, c := range []struct{ name, want string }{{"a", `"a1"`}, {"function", `"a1"`}, {"b", `"b"`}} {
		if code, body := call(c.name); code != 200 || body != c.want {
			t.Errorf("%s: %d %s, want %s", c.name, code, body, c.want)
		}
	}
	s.Add(function.Config{Name: "a"}.WithDefaults(), answer(`"a2"`), nil) // replaced
	if _, body := call("function"); body != `"a2"` {
		t.Errorf("after replace: %s", body)
	}
	s.Remove("a")
	if code, body := call("a"); code != 404 || !strings.Contains(body, "Function not found") {
		t.Errorf("removed a: %d %s", code, body)
	}
	if code, _ := call("function"); code != 404 {
		t.Errorf("function after its function was removed: %d", code)
	}
	s.Add(function.Config{Name: "c"}.WithDefaults(), answer(`"c"`), nil)
	if _, body := call("function"); body != `"c"` {
		t.Errorf("function names the next added: %s", body)
	}
	if code, _ := call("b"); code != 200 {
		t.Errorf("b: %d", code)
	}
}

// A function with tenant isolation takes only invokes with a tenant id,
// and passes it on; one without takes only invokes without. The others
// get Lambda's 400, for every invocation type.
func TestTenantID(t *testing.T) {
	got := make(chan string, 1)
	s := NewServer(nil)
	fn := fakeFunction{func(req *function.Request) (*function.Result, error) {
		got <- req.TenantID
		return &function.Result{Payload: []byte(`"ok"`), ContentType: "application/json"}, nil
	}}
	s.Add(function.Config{Name: "plain", Command: []string{"/b"}}.WithDefaults(), fn, nil)
	s.Add(function.Config{Name: "isolated", Command: []string{"/b"}, TenantIsolation: true}.WithDefaults(), fn, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, c := range []struct {
		name, tenant, invType string
		status                int
		code                  string
	}{
		{"isolated", "blue", "", 200, ""},
		{"isolated", "", "", 400, "InvalidParameterValueException"},
		{"isolated", "", "Event", 400, "InvalidParameterValueException"},
		{"isolated", "", "DryRun", 400, "InvalidParameterValueException"},
		{"isolated", strings.Repeat("x", 257), "", 400, "ValidationException"},
		{"plain", "", "", 200, ""},
		{"plain", "blue", "", 400, "InvalidParameterValueException"},
	} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/2015-03-31/functions/"+c.name+"/invocations", strings.NewReader("{}"))
		if c.tenant != "" {
			req.Header.Set("X-Amz-Tenant-Id", c.tenant)
		}
		if c.invType != "" {
			req.Header.Set("X-Amz-Invocation-Type", c.invType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-Errortype") != c.code {
			t.Errorf("%s tenant %.8q %s: %d %s %s, want %d %s", c.name, c.tenant, c.invType, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b, c.status, c.code)
		}
		if c.status == 200 {
			if tenant := <-got; tenant != c.tenant {
				t.Errorf("%s: the function got tenant %q, want %q", c.name, tenant, c.tenant)
			}
		}
	}
}
