package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
)

// fakeFunction records invocations; block, when set, holds each invoke
// until it is closed, and fail makes every invoke a function error.
type fakeFunction struct {
	block chan struct{}
	fail  bool

	mu       sync.Mutex
	calls    map[string]int
	payloads map[string]int // payload length by request id
	started  chan string
}

func newFake() *fakeFunction {
	return &fakeFunction{calls: map[string]int{}, payloads: map[string]int{}, started: make(chan string, 1000)}
}

func (f *fakeFunction) Invoke(_ context.Context, req *function.Request) (*function.Result, error) {
	f.mu.Lock()
	f.calls[req.ID]++
	f.payloads[req.ID] = len(req.Payload)
	f.mu.Unlock()
	select {
	case f.started <- req.ID:
	default:
	}
	if f.block != nil {
		<-f.block
	}
	if f.fail {
		return function.ErrorResult("Handler.Error", "boom"), nil
	}
	return &function.Result{Payload: []byte(`"ok"`), ContentType: "application/json"}, nil
}

func (f *fakeFunction) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeFunction) distinct() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func event(id string, payload []byte) *function.Request {
	return &function.Request{Invocation: runtimeapi.Invocation{ID: id, Payload: payload}}
}

func newQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = q.Close(ctx)
	})
	return q
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestEnqueueIsOnDiskBeforeItReturns(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	f.block = make(chan struct{})
	defer close(f.block)
	q := newQueue(t, Config{Function: f, Dir: dir})
	for i := range 3 {
		id := fmt.Sprintf("ev-%d", i)
		if err := q.Enqueue(event(id, []byte(`{"n":1}`))); err != nil {
			t.Fatal(err)
		}
		// At once: neither after a delay nor at Close.
		req, err := readEvent(filepath.Join(dir, "pending", id+".event"))
		if err != nil {
			t.Fatalf("event %s not on disk when Enqueue returned: %v", id, err)
		}
		if req.ID != id || string(req.Payload) != `{"n":1}` {
			t.Errorf("pending file %s: %+v", id, req)
		}
	}
}

func TestDoneEventsLeaveThePendingDirectory(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fail       bool
		wantFailed bool
	}{
		{"success removes the file", false, false},
		{"failure moves it to failed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFake()
			f.fail = tc.fail
			q := newQueue(t, Config{Function: f, Dir: dir, RetryDelay: time.Millisecond})
			if err := q.Enqueue(event("ev", []byte(`{}`))); err != nil {
				t.Fatal(err)
			}
			pending := filepath.Join(dir, "pending", "ev.event")
			failed := filepath.Join(dir, "failed", "ev.json")
			eventually(t, "the event to be done", func() bool { return !exists(pending) })
			if got := exists(failed); got != tc.wantFailed {
				t.Errorf("failed record exists = %v, want %v", got, tc.wantFailed)
			}
			want := 1
			if tc.fail {
				want = 3 // 1 + 2 retries
			}
			if n := f.count("ev"); n != want {
				t.Errorf("ran %d times, want %d", n, want)
			}
			if tc.fail {
				b, _ := os.ReadFile(failed)
				var r Record
				if err := json.Unmarshal(b, &r); err != nil || r.RequestContext.RequestID != "ev" || r.RequestContext.ApproximateInvokeCount != 3 {
					t.Errorf("failure record: %v %s", err, b)
				}
			}
		})
	}
}

func TestFailuresIsNeverNil(t *testing.T) {
	q := newQueue(t, Config{Function: newFake()})
	b, _ := json.Marshal(q.Failures())
	if string(b) != "[]" {
		t.Errorf("Failures() = %s, want []", b)
	}
}

func TestCorruptPendingFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	pending := filepath.Join(dir, "pending")
	if err := os.MkdirAll(pending, 0o755); err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(event("good", []byte(`{}`)))
	for name, body := range map[string]string{
		"bad.json":       `{"ID": "bad", "Payload": `,
		"empty.json":     ``,
		"noid.json":      `{}`,
		"good.json":      string(good),
		".tmp-123456789": `{"ID":`, // a write cut short: never acknowledged
	} {
		if err := os.WriteFile(filepath.Join(pending, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFake()
	newQueue(t, Config{Function: f, Dir: dir})
	eventually(t, "the good event to run", func() bool { return f.count("good") == 1 && !exists(filepath.Join(pending, "good.json")) })
	for _, name := range []string{"bad.json", "empty.json", "noid.json"} {
		if !exists(filepath.Join(dir, "corrupt", name)) || exists(filepath.Join(pending, name)) {
			t.Errorf("%s not moved to corrupt/", name)
		}
	}
	if exists(filepath.Join(pending, ".tmp-123456789")) {
		t.Error("leftover temporary file not removed")
	}
}

// Close ends the grace when ctx ends; what was queued or in flight stays
// on disk and runs at the next start.
func TestCloseLeavesUnfinishedEventsForTheNextStart(t *testing.T) {
	dir := t.TempDir()
	f := newFake()
	f.block = make(chan struct{})
	q, err := New(Config{Function: f, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := q.Enqueue(event(fmt.Sprintf("ev-%d", i), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	<-f.started // ev-0 is in flight
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace at all
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(event("late", []byte(`{}`))); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}
	defer close(f.block) // ev-0's invoke outlives the shutdown
	f2 := newFake()
	newQueue(t, Config{Function: f2, Dir: dir})
	eventually(t, "all five events to run at the next start", func() bool { return f2.distinct() == 5 })
	eventually(t, "the pending directory to empty", func() bool {
		es, _ := os.ReadDir(filepath.Join(dir, "pending"))
		return len(es) == 0
	})
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// 200 events of 1 MiB with a 4 MiB limit: without a directory the queue
// holds at most the limit and refuses the rest with ErrFull; with one,
// it accepts them all, keeps the rest on disk only, and runs every one.
func TestQueuedEventsTakeBoundedMemory(t *testing.T) {
	const (
		n     = 200
		size  = 1 << 20
		limit = 4 << 20
		slack = 8 << 20 // the event in flight, and the test's own garbage
	)
	for _, withDir := range []bool{false, true} {
		t.Run(fmt.Sprintf("dir=%v", withDir), func(t *testing.T) {
			dir := ""
			if withDir {
				dir = t.TempDir()
			}
			f := newFake()
			f.block = make(chan struct{})
			q := newQueue(t, Config{Function: f, Dir: dir, MaxQueued: 100, MaxQueuedBytes: limit})
			before := heapInUse()
			accepted, full := 0, 0
			for i := range n {
				p := []byte(`"` + strings.Repeat("x", size-2) + `"`)
				switch err := q.Enqueue(event(fmt.Sprintf("ev-%03d", i), p)); {
				case err == nil:
					accepted++
				case errors.Is(err, ErrFull):
					full++
				default:
					t.Fatal(err)
				}
			}
			grew := heapInUse() - before
			if grew > limit+slack {
				t.Errorf("heap grew by %d MiB with a %d MiB limit", grew>>20, limit>>20)
			}
			if withDir {
				if accepted != n {
					t.Errorf("accepted %d of %d with a directory", accepted, n)
				}
				es, _ := os.ReadDir(filepath.Join(dir, "pending"))
				if len(es) != n {
					t.Errorf("%d pending files, want %d", len(es), n)
				}
			} else {
				if full == 0 || accepted+full != n || accepted > limit/size+1 {
					t.Errorf("accepted %d, refused %d as full; want at most %d accepted, the rest refused", accepted, full, limit/size+1)
				}
			}
			close(f.block)
			eventually(t, "every accepted event to run", func() bool { return f.distinct() == accepted })
			f.mu.Lock()
			for id, l := range f.payloads {
				if l != size {
					t.Errorf("%s ran with a %d-byte payload, want %d", id, l, size)
				}
			}
			f.mu.Unlock()
		})
	}
}
