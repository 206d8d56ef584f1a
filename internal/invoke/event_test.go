package invoke

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/function"
)

// fakeQueue refuses every event with err and lists failures.
type fakeQueue struct {
	err      error
	failures []async.Record
}

func (q fakeQueue) Enqueue(*function.Request) error { return q.err }
func (q fakeQueue) Failures() []async.Record        { return q.failures }

func newQueueServer(q Queue) *httptest.Server {
	s := NewServer(nil)
	s.Add(function.Config{Name: "f", Command: []string{"/b"}}.WithDefaults(), fakeFunction{echo}, q)
	return httptest.NewServer(s)
}

func TestEventRefusals(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		status     int
		code       string
		reason     string
		retryAfter string
	}{
		{"accepted", nil, 202, "", "", ""},
		{"queue full", fmt.Errorf("%w: 1000 events wait in memory", async.ErrFull), 429, "TooManyRequestsException", "FunctionInvocationRateLimitExceeded", "1"},
		{"shutting down", async.ErrClosed, 503, "ServiceException", "", ""},
		{"disk failure", fmt.Errorf("saving the event: %w", io.ErrShortWrite), 500, "ServiceException", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newQueueServer(fakeQueue{err: c.err})
			defer ts.Close()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/2015-03-31/functions/f/invocations", strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Invocation-Type", "Event")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-ErrorType") != c.code ||
				body["Reason"] != c.reason || resp.Header.Get("Retry-After") != c.retryAfter {
				t.Errorf("%d %s %v %v; want %d %s reason %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, resp.Header, c.status, c.code, c.reason)
			}
			if c.code == "TooManyRequestsException" && !strings.Contains(body["Message"], "1000 events") {
				t.Errorf("message does not say why: %q", body["Message"])
			}
		})
	}
}

func TestFailedEventsIsAnEmptyListWhenNothingFailed(t *testing.T) {
	for name, q := range map[string]Queue{"no queue": nil, "no failures": fakeQueue{}} {
		t.Run(name, func(t *testing.T) {
			ts := newQueueServer(q)
			defer ts.Close()
			resp, err := http.Get(ts.URL + "/lambdabox/functions/f/failed-events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "[]" {
				t.Errorf("%d %s, want 200 []", resp.StatusCode, b)
			}
		})
	}
}
