// Package async runs asynchronous (Event) invocations: a queue in front of
// a function, with Lambda's retries (two, with backoff) and an on-failure
// record for events that still fail.
//
// With a directory (Config.Dir) the queue is durable. Enqueue returns only
// once the event is written and synced to Dir/pending; its file goes when
// the event succeeds, or moves to Dir/failed when every attempt failed.
// Whatever Close leaves, queued or cut short in flight, stays in
// Dir/pending and the next Queue on Dir runs it: delivery is at least
// once, as on Lambda. A pending file that cannot be read is moved to
// Dir/corrupt with a warning.
//
// Memory is bounded: at most MaxQueued events and MaxQueuedBytes of
// payload wait in memory. Past that an event waits on disk only (its
// payload is read back when it runs) or, without a directory, Enqueue
// refuses it with ErrFull. An accepted event is never silently lost:
// without a directory, Close logs and returns how many it dropped.
package async

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
)

// Defaults of Config.
const (
	DefaultMaxQueued      = 1000
	DefaultMaxQueuedBytes = 32 << 20 // 32 MiB
)

// maxFailures bounds the failure records Failures keeps in memory; with a
// Dir every record is also in Dir/failed.
const maxFailures = 100

// Function runs invocations; a pool or a service implements it.
type Function interface {
	Invoke(ctx context.Context, req *function.Request) (*function.Result, error)
}

// Config configures a Queue.
type Config struct {
	Function Function
	// FunctionARN and Version name the function in failure records.
	FunctionARN, Version string
	// Retries after the first attempt; default 2, as on Lambda. -1 means none.
	Retries int
	// RetryDelay is the wait before the first retry; it doubles for each
	// further one. Default 1s (Lambda waits about a minute).
	RetryDelay time.Duration
	// Workers run events at once; default 1.
	Workers int
	// Dir, when set, makes the queue durable: accepted events are kept in
	// Dir/pending until they are done, failure records in Dir/failed, and
	// unreadable pending files are moved to Dir/corrupt.
	Dir string
	// MaxQueued caps the waiting events held in memory; default
	// DefaultMaxQueued.
	MaxQueued int
	// MaxQueuedBytes caps the payload bytes of the waiting events held in
	// memory; default DefaultMaxQueuedBytes.
	MaxQueuedBytes int64
	Log            *slog.Logger
}

// Record is an on-failure destination record, in Lambda's format.
type Record struct {
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	RequestContext  RequestContext  `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

// RequestContext identifies the failed event in a Record.
type RequestContext struct {
	RequestID              string `json:"requestId"`
	FunctionARN            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("asynchronous queue is shut down")

// ErrFull is wrapped by Enqueue's error when the events waiting in memory
// are at the limit and there is no directory to spill to.
var ErrFull = errors.New("asynchronous event queue is full")

// item is one accepted event, waiting or running.
type item struct {
	req  *function.Request // nil while the event waits on disk only
	file string            // its file in Dir/pending; "" without a Dir
	size int64             // payload bytes it holds in memory
}

// Queue runs queued events on a function. It owns its backlog, the memory
// accounting and the files in Dir.
type Queue struct {
	cfg                      Config
	log                      *slog.Logger
	pending, failed, corrupt string        // directories; "" without a Dir
	stop                     chan struct{} // closed by Close: no new event or attempt starts
	workers                  sync.WaitGroup

	mu       sync.Mutex
	ready    *sync.Cond // signalled when the backlog grows or the queue closes
	closed   bool
	backlog  []*item
	memCount int   // events of the backlog held in memory, or reserved for one being saved
	memBytes int64 // and their payload bytes
	running  int   // events the workers are running
	left     int   // events the workers gave up on at Close
	failures []Record
}

// New starts the queue's workers, and queues the events that a previous
// Queue on cfg.Dir left pending, oldest first.
func New(cfg Config) (*Queue, error) {
	if cfg.Function == nil {
		return nil, errors.New("async: no function")
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{cfg: cfg, log: cfg.Log, stop: make(chan struct{})}
	q.ready = sync.NewCond(&q.mu)
	if cfg.Dir != "" {
		q.pending = filepath.Join(cfg.Dir, "pending")
		q.failed = filepath.Join(cfg.Dir, "failed")
		q.corrupt = filepath.Join(cfg.Dir, "corrupt")
		for _, d := range []string{q.pending, q.failed} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("creating the queue directory: %w", err)
			}
		}
		if err := q.loadPending(); err != nil {
			return nil, err
		}
	}
	for range cfg.Workers {
		q.workers.Add(1)
		go q.work()
	}
	return q, nil
}

// Enqueue accepts an event; it runs later. With a Dir the event is on disk
// when Enqueue returns nil. Without one, an event past the memory limits
// is refused with an error that wraps ErrFull.
func (q *Queue) Enqueue(req *function.Request) error {
	it := &item{req: req, size: int64(len(req.Payload))}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if q.memCount < q.cfg.MaxQueued && q.memBytes+it.size <= q.cfg.MaxQueuedBytes {
		q.memCount++
		q.memBytes += it.size
	} else if q.pending == "" {
		n, b := q.memCount, q.memBytes
		q.mu.Unlock()
		return fmt.Errorf("%w: %d events (%d bytes) wait in memory, the limit is %d events or %d bytes, and there is no queue directory to spill to",
			ErrFull, n, b, q.cfg.MaxQueued, q.cfg.MaxQueuedBytes)
	} else {
		it.req, it.size = nil, 0 // on disk only
	}
	q.mu.Unlock()
	if q.pending != "" {
		file, err := q.save(req)
		if err != nil {
			q.mu.Lock()
			q.forget(it)
			q.mu.Unlock()
			return fmt.Errorf("saving the event: %w", err)
		}
		it.file = file
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		// Closed while the event was being saved: it is on disk and the
		// next Queue on Dir runs it. Without a Dir it was never accepted.
		q.forget(it)
		if q.pending == "" {
			return ErrClosed
		}
		return nil
	}
	q.backlog = append(q.backlog, it)
	q.ready.Signal()
	return nil
}

// forget releases the memory an item held in the accounting; q.mu is held.
func (q *Queue) forget(it *item) {
	if it.req != nil {
		q.memCount--
		q.memBytes -= it.size
	}
}

// Failures lists the last events (up to 100) that failed every attempt,
// oldest first. It is never nil.
func (q *Queue) Failures() []Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Record{}, q.failures...)
}

func (q *Queue) work() {
	defer q.workers.Done()
	for {
		it := q.next()
		if it == nil {
			return
		}
		finished := q.run(it)
		q.mu.Lock()
		q.running--
		if !finished {
			q.left++
		}
		q.mu.Unlock()
	}
}

// next takes the oldest waiting event, or returns nil once the queue is
// closed.
func (q *Queue) next() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && len(q.backlog) == 0 {
		q.ready.Wait()
	}
	if q.closed {
		return nil
	}
	it := q.backlog[0]
	q.backlog[0] = nil
	q.backlog = q.backlog[1:]
	q.forget(it)
	q.running++
	return it
}

// run makes up to 1+Retries attempts; throttles are waited out and do not
// count as attempts. It returns false when Close cut the event short: it
// then stays in Dir/pending for the next start.
func (q *Queue) run(it *item) bool {
	req := it.req
	if req == nil {
		var err error
		if req, err = readEvent(it.file); err != nil {
			q.moveAside(it.file, err)
			return true
		}
	}
	delay := q.cfg.RetryDelay
	attempts := 0
	for {
		res, err := q.cfg.Function.Invoke(context.Background(), req)
		if errors.Is(err, function.ErrThrottled) {
			if !q.wait(100 * time.Millisecond) {
				return false
			}
			continue
		}
		attempts++
		if err == nil {
			res = res.Buffered() // a stream is read, so the runtime can finish it
			if !res.Error {
				q.remove(it.file)
				return true
			}
		}
		if err != nil {
			res = nil
			q.log.Error("asynchronous invoke", "request_id", req.ID, "error", err)
		}
		if q.stopping() {
			// Maybe cut short by the shutdown itself: not a verdict on the
			// event, which runs again at the next start.
			return false
		}
		if attempts > q.cfg.Retries {
			q.recordFailure(it.file, req, res, attempts)
			return true
		}
		q.log.Info("asynchronous invoke failed; retrying", "request_id", req.ID, "attempt", attempts, "retry_in", delay)
		if !q.wait(delay) {
			return false
		}
		delay *= 2
	}
}

// wait sleeps for d, or returns false as soon as Close begins.
func (q *Queue) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-q.stop:
		return false
	}
}

func (q *Queue) stopping() bool {
	select {
	case <-q.stop:
		return true
	default:
		return false
	}
}

func (q *Queue) recordFailure(file string, req *function.Request, res *function.Result, attempts int) {
	r := Record{
		Version:        "1.0",
		Timestamp:      time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestPayload: json.RawMessage(req.Payload),
		RequestContext: RequestContext{
			RequestID: req.ID, FunctionARN: q.cfg.FunctionARN + ":" + q.cfg.Version,
			Condition: "RetriesExhausted", ApproximateInvokeCount: attempts,
		},
	}
	r.ResponseContext.StatusCode = 200
	r.ResponseContext.ExecutedVersion = q.cfg.Version
	if res != nil && res.Error {
		r.ResponseContext.FunctionError = "Unhandled"
		if json.Valid(res.Payload) {
			r.ResponsePayload = json.RawMessage(res.Payload)
		}
	}
	q.log.Warn("asynchronous invoke failed every attempt", "request_id", req.ID, "attempts", attempts)
	q.mu.Lock()
	if len(q.failures) == maxFailures {
		q.failures = append(q.failures[:0], q.failures[1:]...)
	}
	q.failures = append(q.failures, r)
	q.mu.Unlock()
	if file == "" {
		return
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), eventExt), ".json") + ".json"
		err = writeDurable(filepath.Join(q.failed, name), b)
	}
	if err != nil {
		// The event stays pending, and runs again at the next start.
		q.log.Error("recording a failed event", "request_id", req.ID, "error", err)
		return
	}
	q.remove(file)
}

// remove deletes a done event's pending file. A removal lost in a crash
// only runs the event again.
func (q *Queue) remove(file string) {
	if file == "" {
		return
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Error("removing a done event", "file", file, "error", err)
	}
}

// Close stops accepting events and starting new ones at once, and gives
// the events in flight until ctx ends to finish. With a Dir, the events
// left, queued or cut short, stay in Dir/pending for the next start.
// Without one they are dropped: Close logs how many and returns an error.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.stop)
	q.ready.Broadcast()
	q.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		q.workers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	q.mu.Lock()
	queued, left, running := len(q.backlog), q.left, q.running
	q.backlog, q.memCount, q.memBytes = nil, 0, 0
	q.mu.Unlock()
	n := queued + left + running
	if n == 0 {
		return nil
	}
	if q.pending == "" {
		q.log.Error("asynchronous events dropped at shutdown (they were queued in memory only)", "count", n, "in_flight", running)
		return fmt.Errorf("%d asynchronous events dropped at shutdown (set a queue directory to keep them)", n)
	}
	q.log.Warn("asynchronous events left for the next start", "count", n, "in_flight", running, "dir", q.pending)
	return nil
}

// eventExt ends the names of pending event files; ".json" files, written
// before, are read too.
const eventExt = ".event"

// eventMagic starts a pending event file: the line, the request without
// its payload as one line of JSON, then the payload's raw bytes. Files
// without it are a whole function.Request in JSON, as written before.
const eventMagic = "lambdabox-event 1\n"

// save writes req to Dir/pending, durably, and returns the file's path.
func (q *Queue) save(req *function.Request) (string, error) {
	head := *req
	head.Payload = nil
	h, err := json.Marshal(&head)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, len(eventMagic)+len(h)+1+len(req.Payload))
	b = append(append(append(append(b, eventMagic...), h...), '\n'), req.Payload...)
	path := filepath.Join(q.pending, url.PathEscape(req.ID)+eventExt)
	return path, writeDurable(path, b)
}

// loadPending queues the events in Dir/pending, oldest first: those that
// fit the memory limits are read now, the others when they run. Unreadable
// files are moved aside; leftovers of interrupted writes, never
// acknowledged, are removed.
func (q *Queue) loadPending() error {
	entries, err := os.ReadDir(q.pending)
	if err != nil {
		return fmt.Errorf("reading the pending events: %w", err)
	}
	type found struct {
		path string
		mod  time.Time
		size int64
	}
	var files []found
	for _, e := range entries {
		path := filepath.Join(q.pending, e.Name())
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.Remove(path)
			continue
		}
		if e.IsDir() || !(strings.HasSuffix(e.Name(), eventExt) || strings.HasSuffix(e.Name(), ".json")) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone since ReadDir
		}
		files = append(files, found{path, info.ModTime(), info.Size()})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	loaded := 0
	for _, f := range files {
		if q.memCount >= q.cfg.MaxQueued || q.memBytes+f.size > q.cfg.MaxQueuedBytes {
			q.backlog = append(q.backlog, &item{file: f.path}) // read when it runs
			loaded++
			continue
		}
		req, err := readEvent(f.path)
		if err != nil {
			q.moveAside(f.path, err)
			continue
		}
		it := &item{req: req, file: f.path, size: int64(len(req.Payload))}
		q.memCount++
		q.memBytes += it.size
		q.backlog = append(q.backlog, it)
		loaded++
	}
	if loaded > 0 {
		q.log.Info("queued the events left at the last shutdown", "count", loaded, "dir", q.pending)
	}
	return nil
}

// moveAside moves an unreadable pending file to Dir/corrupt.
func (q *Queue) moveAside(file string, cause error) {
	dest := filepath.Join(q.corrupt, filepath.Base(file))
	err := os.MkdirAll(q.corrupt, 0o755)
	if err == nil {
		err = os.Rename(file, dest)
	}
	if err != nil {
		q.log.Error("an unreadable pending event could not be moved aside; skipped", "file", file, "cause", cause, "error", err)
		return
	}
	q.log.Warn("unreadable pending event moved aside", "file", dest, "error", cause)
}

// readEvent reads a pending event file.
func readEvent(path string) (*function.Request, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var req function.Request
	if rest, ok := bytes.CutPrefix(b, []byte(eventMagic)); ok {
		head, payload, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errors.New("decoding: truncated")
		}
		if err := json.Unmarshal(head, &req); err != nil {
			return nil, fmt.Errorf("decoding: %w", err)
		}
		req.Payload = payload
	} else if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if req.ID == "" {
		return nil, errors.New("decoding: no request id")
	}
	return &req, nil
}

// tmpPrefix names files being written; a crash can leave them behind.
const tmpPrefix = ".tmp-"

// writeDurable writes b to path so that it survives a crash once it
// returns: a synced temporary file, renamed, and the directory synced.
func writeDurable(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
