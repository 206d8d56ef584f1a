package runtimeapi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestInvocationID(t *testing.T) {
	const path = "/2018-06-01/runtime/invocation/req-1/"
	for _, tc := range []struct {
		name    string
		echo    func(sent string) string // the header the runtime echoes; "" for none
		abandon bool                     // the invoke timed out before the answer
		want    int
		deliver bool
	}{
		{name: "echoed", echo: func(s string) string { return s }, want: 202, deliver: true},
		{name: "not echoed", echo: func(string) string { return "" }, want: 202, deliver: true},
		{name: "foreign", echo: func(string) string { return "0123456789abcdef1" }, want: 410},
		{name: "stale echoed", echo: func(s string) string { return s }, abandon: true, want: 410},
		// Not checked: accepted, so that the runtime goes on, and dropped.
		{name: "stale not echoed", echo: func(string) string { return "" }, abandon: true, want: 202},
	} {
		for _, kind := range []string{"response", "error"} {
			t.Run(tc.name+" "+kind, func(t *testing.T) {
				s, ts := newTestServer(t)
				s.Reset()
				answer := s.Dispatch(&Invocation{ID: "req-1", Deadline: time.Now().Add(time.Minute)})
				resp, _ := next(t, ts)
				sent := resp.Header.Get(HeaderInvocationID)
				if sent == "" {
					t.Fatal("next sent no Lambda-Runtime-Invocation-Id")
				}
				if tc.abandon && !s.Abandon("req-1") {
					t.Fatal("Abandon: the invocation was not in flight")
				}
				var h []string
				if e := tc.echo(sent); e != "" {
					h = []string{HeaderInvocationID, e}
				}
				st, b := post(t, ts, path+kind, strings.NewReader(`{"errorType":"E"}`), h...)
				if st != tc.want {
					t.Fatalf("status %d %s, want %d", st, b, tc.want)
				}
				if st == http.StatusGone && !strings.Contains(b, "Runtime.InvokeTimeout") {
					t.Errorf("410 body %s: want errorType Runtime.InvokeTimeout", b)
				}
				select {
				case r := <-answer:
					if !tc.deliver {
						t.Errorf("a rejected answer reached the caller: %+v", r)
					}
				case <-time.After(100 * time.Millisecond):
					if tc.deliver {
						t.Error("the answer was not delivered")
					}
				}
			})
		}
	}
}

// A foreign id never steals the answer of the invocation in flight.
func TestInvocationIDForeignKeepsInvocation(t *testing.T) {
	s, ts := newTestServer(t)
	s.Reset()
	answer := s.Dispatch(&Invocation{ID: "req-1", Deadline: time.Now().Add(time.Minute)})
	resp, _ := next(t, ts)
	if st, _ := post(t, ts, "/2018-06-01/runtime/invocation/req-1/response", strings.NewReader("x"), HeaderInvocationID, "nope"); st != 410 {
		t.Fatalf("foreign: %d", st)
	}
	if st, _ := post(t, ts, "/2018-06-01/runtime/invocation/req-1/response", strings.NewReader("ok"), HeaderInvocationID, resp.Header.Get(HeaderInvocationID)); st != 202 {
		t.Fatalf("right id: %d", st)
	}
	if r := wait(t, answer); string(r.Payload) != "ok" {
		t.Errorf("delivered %q", r.Payload)
	}
}

func TestConcurrentNext(t *testing.T) {
	s, ts := newTestServer(t)
	s.SetConcurrency(2)
	s.Reset()
	a1 := s.Dispatch(&Invocation{ID: "a", Deadline: time.Now().Add(time.Minute)})
	a2 := s.Dispatch(&Invocation{ID: "b", Deadline: time.Now().Add(time.Minute)})
	r1, _ := next(t, ts)
	r2, _ := next(t, ts)
	if r1.StatusCode != 200 || r2.StatusCode != 200 {
		t.Fatalf("next: %d %d", r1.StatusCode, r2.StatusCode)
	}
	if r1.Header.Get(HeaderInvocationID) == r2.Header.Get(HeaderInvocationID) {
		t.Error("two invocations share an Invocation-Id")
	}
	// Both slots are taken: a third worker is refused.
	if r3, b := next(t, ts); r3.StatusCode != 403 || !strings.Contains(b, "InvalidStateTransition") {
		t.Errorf("third next: %d %s", r3.StatusCode, b)
	}
	// Answered out of order, each reaches its own caller.
	post(t, ts, "/2018-06-01/runtime/invocation/b/response", strings.NewReader("B"))
	post(t, ts, "/2018-06-01/runtime/invocation/a/response", strings.NewReader("A"))
	if r := wait(t, a1); string(r.Payload) != "A" {
		t.Errorf("a got %q", r.Payload)
	}
	if r := wait(t, a2); string(r.Payload) != "B" {
		t.Errorf("b got %q", r.Payload)
	}
}

// The memory of answered and abandoned ids stays bounded.
func TestGoneIsBounded(t *testing.T) {
	s := NewServer(nil, false)
	for i := range 3 * maxGone {
		s.mu.Lock()
		s.forget("id-"+strconv.Itoa(i), goneAnswered)
		s.mu.Unlock()
	}
	if n := len(s.gone); n > maxGone {
		t.Errorf("%d ids remembered, want at most %d", n, maxGone)
	}
	if s.gone["id-"+strconv.Itoa(3*maxGone-1)] != goneAnswered {
		t.Error("the latest id was forgotten")
	}
}
