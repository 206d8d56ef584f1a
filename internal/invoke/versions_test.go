package invoke

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/function"
)

// versioned answers with the version it was registered as and the ARN the
// runtime would see.
func versioned(v string) fakeFunction {
	return fakeFunction{func(req *function.Request) (*function.Result, error) {
		return &function.Result{Payload: []byte(`"` + v + " " + req.FunctionARN + `"`), ContentType: "application/json"}, nil
	}}
}

func TestVersionsAndAliases(t *testing.T) {
	s := NewServer(nil)
	for _, v := range []string{"$LATEST", "1", "2"} {
		s.Add(function.Config{Name: "f", Version: v, Command: []string{"/b"}}, versioned(v), nil)
	}
	s.SetAlias("f", "live", Alias{Version: "1"})
	s.SetAlias("f", "all2", Alias{Version: "1", Weights: map[string]float64{"2": 1}})
	s.SetAlias("f", "next", Alias{Version: "$LATEST"})
	ts := httptest.NewServer(s)
	defer ts.Close()
	arn := "arn:aws:lambda:us-east-1:012345678912:function:f"
	for _, c := range []struct{ path, query, status, executed, body string }{
		{"f", "", "200", "$LATEST", `"$LATEST ` + arn + `"`},
		{"f:1", "", "200", "1", `"1 ` + arn + `:1"`},
		{"f", "?Qualifier=2", "200", "2", `"2 ` + arn + `:2"`},
		{"f:live", "", "200", "1", `"1 ` + arn + `:live"`},
		{"f", "?Qualifier=all2", "200", "2", `"2 ` + arn + `:all2"`},
		{"f:next", "", "200", "$LATEST", `"$LATEST ` + arn + `:next"`},
		{"f:3", "", "404", "", ""},
		{"f:nope", "", "404", "", ""},
	} {
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/"+c.path+"/invocations"+c.query, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Status[:3]; got != c.status {
			t.Errorf("%s%s: %s %s, want %s", c.path, c.query, got, b, c.status)
			continue
		}
		if c.status == "200" && (resp.Header.Get("X-Amz-Executed-Version") != c.executed || string(b) != c.body) {
			t.Errorf("%s%s: executed %q body %s, want %q %s", c.path, c.query, resp.Header.Get("X-Amz-Executed-Version"), b, c.executed, c.body)
		}
	}
	s.Remove("f:1")
	s.RemoveAlias("f", "live")
	for path, want := range map[string]int{"f:1": 404, "f:live": 404, "f:2": 200, "f": 200} {
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/"+path+"/invocations", "", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("after removal, %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestOneVersionAnswersUnqualified(t *testing.T) {
	s := NewServer(nil)
	s.Add(function.Config{Name: "f", Version: "7", Command: []string{"/b"}}, versioned("7"), nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	for path, want := range map[string]int{"f": 200, "f:$LATEST": 200, "f:7": 200, "f:6": 404} {
		resp, err := http.Post(ts.URL+"/2015-03-31/functions/"+path+"/invocations", "", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestHandleOthers(t *testing.T) {
	s := NewServer(nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/2015-03-31/functions/f")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Fatalf("no control plane: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	s.HandleOthers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	resp, err = http.Get(ts.URL + "/2015-03-31/functions/f")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("control plane: %d", resp.StatusCode)
	}
	// Invocations of a function the server does not run go there too
	// (the control plane knows one still being created); failed events
	// of one do not.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/2015-03-31/functions/f/invocations", http.StatusTeapot},
		{"POST", "/2015-03-31/functions/f%3A1/invocations", http.StatusTeapot},
		{"POST", "/2021-11-15/functions/f/response-streaming-invocations", http.StatusTeapot},
		{"GET", "/lambdabox/functions/f/failed-events", http.StatusNotFound},
		{"POST", "/2015-03-31/functions/bad%20name/invocations", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}
