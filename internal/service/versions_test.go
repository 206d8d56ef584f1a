package service

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/invoke"
)

// Published versions of one function run side by side, each its own
// instance; aliases route to them; X-Amz-Executed-Version names the one
// that ran; a version is removed alone; a control handler answers what the
// Invoke API does not route.
func TestVersionsAndAliases(t *testing.T) {
	v1 := fakeSpec("f", "code1")
	v1.Function.Version = "1"
	control := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	r := startService(t, Config{Control: control}, fakeSpec("a", "a1"), fakeSpec("f", "code2"), v1)
	r.SetAlias("f", "live", invoke.Alias{Version: "1"})
	if got := strings.Join(r.Functions(), ","); got != "a,f,f:1" {
		t.Errorf("Functions: %s", got)
	}
	for _, c := range []struct{ name, version, executed string }{
		{"f", "code2", "$LATEST"}, {"f:1", "code1", "1"}, {"f:live", "code1", "1"}, {"f:$LATEST", "code2", "$LATEST"},
	} {
		resp, body := r.invoke(t, c.name, `{}`)
		if resp.StatusCode != 200 || version(t, body) != c.version || resp.Header.Get("X-Amz-Executed-Version") != c.executed {
			t.Errorf("%s: %d %s executed %q, want %s on %s", c.name, resp.StatusCode, body, resp.Header.Get("X-Amz-Executed-Version"), c.version, c.executed)
		}
	}
	if err := r.Remove(context.Background(), "f:1"); err != nil {
		t.Fatal(err)
	}
	// The Invoke API runs no such version: the control plane answers.
	if resp, _ := r.invoke(t, "f:live", `{}`); resp.StatusCode != http.StatusTeapot {
		t.Errorf("alias of a removed version: %d, want the control handler's 418", resp.StatusCode)
	}
	if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != 200 || version(t, body) != "code2" {
		t.Errorf("$LATEST after removing version 1: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodGet, "http://"+r.InvokeAddr()+"/2015-03-31/functions/f", ""); resp.StatusCode != http.StatusTeapot {
		t.Errorf("control-plane path: %d, want the control handler's 418", resp.StatusCode)
	}
}

// Reserved concurrency counts a function's versions together, as Lambda:
// with one, a version's invoke is throttled while $LATEST runs one.
func TestVersionsShareTheLimit(t *testing.T) {
	latest, v1 := fakeSpec("f", "code2"), fakeSpec("f", "code1")
	v1.Function.Version = "1"
	other := fakeSpec("g", "g1")
	for _, spec := range []*FunctionSpec{&latest, &v1, &other} {
		spec.Queue = false
	}
	r := startService(t, Config{}, latest, v1, other)
	done := make(chan int, 1)
	go func() {
		resp, _ := r.invoke(t, "f", `{"op":"sleep","ms":1500}`)
		done <- resp.StatusCode
	}()
	waitFor(t, "the invoke to start", func() bool { return strings.Contains(r.out.String(), "fake runtime code2: sleep") })
	if resp, body := r.invoke(t, "f:1", `{}`); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("version 1 while $LATEST runs: %d %s, want 429", resp.StatusCode, body)
	}
	if resp, body := r.invoke(t, "g", `{}`); resp.StatusCode != 200 {
		t.Errorf("another function meanwhile: %d %s", resp.StatusCode, body)
	}
	if code := <-done; code != 200 {
		t.Errorf("$LATEST: %d", code)
	}
	if resp, body := r.invoke(t, "f:1", `{}`); resp.StatusCode != 200 {
		t.Errorf("version 1 afterwards: %d %s", resp.StatusCode, body)
	}
}

// Lowering the limit while invokes run lets no new one in until fewer
// than the new limit run, old ones included.
func TestLoweredLimitCountsRunningInvokes(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.MaxConcurrency, spec.Queue = 3, false
	r := startService(t, Config{}, spec)
	done := make(chan int, 3)
	for range 3 {
		go func() {
			resp, _ := r.invoke(t, "f", `{"op":"sleep","ms":1500}`)
			done <- resp.StatusCode
		}()
	}
	waitFor(t, "three invokes to start", func() bool { return strings.Count(r.out.String(), "fake runtime v1: sleep") == 3 })
	lower := fakeSpec("f", "v2")
	lower.MaxConcurrency, lower.Queue = 1, false
	if err := r.Replace(context.Background(), lower); err != nil {
		t.Fatal(err)
	}
	if resp, body := r.invoke(t, "f", `{}`); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("an invoke while three run under a new limit of 1: %d %s, want 429", resp.StatusCode, body)
	}
	for range 3 {
		if code := <-done; code != 200 {
			t.Errorf("an invoke of before: %d", code)
		}
	}
	// Once they have ended (and settled: a moment after their answers).
	waitFor(t, "an invoke of the new code", func() bool {
		resp, body := r.invoke(t, "f", `{}`)
		return resp.StatusCode == 200 && version(t, body) == "v2"
	})
}
