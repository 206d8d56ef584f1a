package extensions

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func call(t *testing.T, ts *httptest.Server, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func register(t *testing.T, ts *httptest.Server, name, events string) (*http.Response, string) {
	return call(t, ts, http.MethodPost, "/2020-01-01/extension/register", `{"events":`+events+`}`, HeaderName, name, HeaderFeatures, "accountId")
}

func TestRegisterRules(t *testing.T) {
	s := NewServer(Function{Name: "f", Version: "$LATEST", Handler: "h", AccountID: "123"}, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	s.Reset([]string{"ext1"})

	resp, body := register(t, ts, "ext1", `["INVOKE","SHUTDOWN"]`)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderIdentifier) == "" {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	var info map[string]string
	_ = json.Unmarshal([]byte(body), &info)
	if info["functionName"] != "f" || info["handler"] != "h" || info["accountId"] != "123" {
		t.Errorf("register body %s", body)
	}
	for name, c := range map[string]struct{ name, events, want string }{
		"no name":           {"", `["INVOKE"]`, "Extension.InvalidExtensionName"},
		"twice":             {"ext1", `["INVOKE"]`, "Extension.InvalidExtensionName"},
		"bad event":         {"int1", `["START"]`, "Extension.InvalidEventType"},
		"internal shutdown": {"int1", `["SHUTDOWN"]`, "Extension.InvalidEventType"},
		"bad body":          {"int1", `[`, "InvalidRequestFormat"},
	} {
		resp, body := register(t, ts, c.name, c.events)
		if resp.StatusCode != 403 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	// An internal extension may take INVOKE, and events may be null.
	if resp, body := register(t, ts, "int1", `null`); resp.StatusCode != 200 {
		t.Errorf("internal: %d %s", resp.StatusCode, body)
	}
	for i := range MaxExtensions - 2 {
		register(t, ts, "more"+strconv.Itoa(i), `[]`)
	}
	if resp, body := register(t, ts, "one-too-many", `[]`); resp.StatusCode != 403 || !strings.Contains(body, "Extension.TooManyExtensions") {
		t.Errorf("11th: %d %s", resp.StatusCode, body)
	}
	s.CloseRegistration()
	s.Reset(nil)
	s.CloseRegistration()
	if resp, body := register(t, ts, "late", `[]`); resp.StatusCode != 403 || !strings.Contains(body, "Extension.RegistrationClosed") {
		t.Errorf("late: %d %s", resp.StatusCode, body)
	}
}

func TestIdentifierAndErrors(t *testing.T) {
	s := NewServer(Function{Name: "f"}, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	s.Reset(nil)
	for name, c := range map[string]struct{ id, want string }{
		"missing": {"", "Extension.MissingExtensionIdentifier"},
		"invalid": {"not-a-uuid", "Extension.InvalidExtensionIdentifier"},
		"unknown": {"7d3b8a52-1b41-4b35-9a5b-3c1b4f0a8e11", "Extension.UnknownExtensionIdentifier"},
	} {
		resp, body := call(t, ts, http.MethodGet, "/2020-01-01/extension/event/next", "", HeaderIdentifier, c.id)
		if resp.StatusCode != 403 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, _ := register(t, ts, "e", `["INVOKE"]`)
	id := resp.Header.Get(HeaderIdentifier)
	if resp, body := call(t, ts, http.MethodPost, "/2020-01-01/extension/init/error", "{}", HeaderIdentifier, id); resp.StatusCode != 403 || !strings.Contains(body, "Extension.MissingHeader") {
		t.Errorf("init/error without type: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, ts, http.MethodPost, "/2020-01-01/extension/exit/error", `{"m":1}`, HeaderIdentifier, id, HeaderErrorType, "Extension.Boom"); resp.StatusCode != 202 {
		t.Errorf("exit/error: %d", resp.StatusCode)
	}
	if errs := s.Errors(); len(errs) != 1 || errs[0].Type != "Extension.Boom" || errs[0].Extension != "e" {
		t.Errorf("errors %+v", errs)
	}
}

func TestEventsAndReadiness(t *testing.T) {
	s := NewServer(Function{Name: "f"}, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	s.Reset([]string{"x"})
	resp, _ := register(t, ts, "x", `["INVOKE","SHUTDOWN"]`)
	id := resp.Header.Get(HeaderIdentifier)
	if s.Ready() {
		t.Error("ready before the extension called next")
	}
	got := make(chan string, 1)
	go func() {
		resp, body := call(t, ts, http.MethodGet, "/2020-01-01/extension/event/next", "", HeaderIdentifier, id)
		if resp.Header.Get(HeaderEventID) == "" {
			t.Error("no event identifier")
		}
		got <- body
	}()
	for deadline := time.Now().Add(5 * time.Second); !s.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}
	s.Send(Event{EventType: "INVOKE", RequestID: "r1", DeadlineMs: 1, Tracing: &Tracing{Type: "X-Amzn-Trace-Id", Value: "Root=1"}})
	if s.Ready() {
		t.Error("ready while the extension handles INVOKE")
	}
	body := <-got
	if !strings.Contains(body, `"eventType":"INVOKE"`) || !strings.Contains(body, `"requestId":"r1"`) || !strings.Contains(body, `"tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}`) {
		t.Errorf("event %s", body)
	}
}
