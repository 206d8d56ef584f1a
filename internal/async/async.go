// Package async runs asynchronous (Event) invocations: a queue in front of
// a function, with Lambda's retries (two, with backoff) and an on-failure
// record for events that still fail. An event is never silently lost: on
// shutdown what was not run is written to disk, and read back at start.
package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/pool"
)

// Function runs invocations; *pool.Pool implements it.
type Function interface {
	Invoke(ctx context.Context, req *environment.Request) (*environment.Result, error)
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
	// Dir, when set, keeps failure records (Dir/failed) and the events left
	// at shutdown (Dir/pending), which the next Queue on Dir runs first.
	Dir string
	Log *slog.Logger
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

// Queue runs queued events on a function.
type Queue struct {
	cfg     Config
	log     *slog.Logger
	events  chan *environment.Request
	wake    chan struct{} // signalled when the backlog grows
	stop    chan struct{} // closed by Close: workers take no new event
	workers sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	backlog  []*environment.Request // accepted, not yet handed to a worker
	failures []Record
}

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("asynchronous queue is shut down")

// New starts the queue's workers, and queues the events a previous Queue
// on cfg.Dir left pending.
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
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{cfg: cfg, log: cfg.Log, events: make(chan *environment.Request), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	pending, err := q.loadPending()
	if err != nil {
		return nil, err
	}
	q.backlog = pending
	for range cfg.Workers {
		q.workers.Add(1)
		go q.work()
	}
	go q.feed()
	return q, nil
}

// Enqueue accepts an event; it runs later.
func (q *Queue) Enqueue(req *environment.Request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.backlog = append(q.backlog, req)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Failures lists the events that failed every attempt, oldest first.
func (q *Queue) Failures() []Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Record(nil), q.failures...)
}

// feed hands the backlog to idle workers, in order.
func (q *Queue) feed() {
	for {
		q.mu.Lock()
		var next *environment.Request
		if len(q.backlog) > 0 {
			next = q.backlog[0]
		}
		q.mu.Unlock()
		if next == nil {
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		select {
		case q.events <- next:
			q.mu.Lock()
			q.backlog = q.backlog[1:]
			q.mu.Unlock()
		case <-q.stop:
			return
		}
	}
}

func (q *Queue) work() {
	defer q.workers.Done()
	for {
		select {
		case req := <-q.events:
			q.run(req)
		case <-q.stop:
			return
		}
	}
}

// run makes up to 1+Retries attempts; throttles are waited out and do not
// count as attempts.
func (q *Queue) run(req *environment.Request) {
	ctx := context.Background()
	delay := q.cfg.RetryDelay
	var res *environment.Result
	attempts := 0
	for attempts <= q.cfg.Retries {
		var err error
		res, err = q.cfg.Function.Invoke(ctx, req)
		if errors.Is(err, pool.ErrThrottled) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		attempts++
		if err != nil {
			res = &environment.Result{}
			q.log.Error("asynchronous invoke", "request_id", req.ID, "error", err)
		} else if res = res.Buffered(); !res.Error { // a stream is read, so the runtime can finish it
			return
		}
		if attempts <= q.cfg.Retries {
			q.log.Info("asynchronous invoke failed; retrying", "request_id", req.ID, "attempt", attempts, "retry_in", delay)
			time.Sleep(delay)
			delay *= 2
		}
	}
	q.recordFailure(req, res, attempts)
}

func (q *Queue) recordFailure(req *environment.Request, res *environment.Result, attempts int) {
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
	if res.Error {
		r.ResponseContext.FunctionError = "Unhandled"
		if json.Valid(res.Payload) {
			r.ResponsePayload = json.RawMessage(res.Payload)
		}
	}
	q.log.Warn("asynchronous invoke failed every attempt", "request_id", req.ID, "attempts", attempts)
	q.mu.Lock()
	q.failures = append(q.failures, r)
	q.mu.Unlock()
	if q.cfg.Dir != "" {
		if err := writeJSON(filepath.Join(q.cfg.Dir, "failed", req.ID+".json"), r); err != nil {
			q.log.Error("recording a failed event", "request_id", req.ID, "error", err)
		}
	}
}

// Close stops accepting events and runs the backlog until ctx ends. Events
// still queued then are written to Dir/pending, or, without a Dir, reported
// as lost in the log and in the returned error.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for drained := false; !drained; {
		q.mu.Lock()
		drained = len(q.backlog) == 0
		q.mu.Unlock()
		if drained {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			drained = true
		}
	}
	close(q.stop)
	q.workers.Wait() // the events in flight finish
	q.mu.Lock()
	left := q.backlog
	q.backlog = nil
	q.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	if q.cfg.Dir == "" {
		q.log.Error("asynchronous events not run at shutdown", "count", len(left))
		return fmt.Errorf("%d asynchronous events not run at shutdown (set a queue directory to keep them)", len(left))
	}
	for _, req := range left {
		if err := writeJSON(filepath.Join(q.cfg.Dir, "pending", req.ID+".json"), req); err != nil {
			return fmt.Errorf("saving pending event %s: %w", req.ID, err)
		}
	}
	q.log.Warn("asynchronous events saved for the next start", "count", len(left), "dir", filepath.Join(q.cfg.Dir, "pending"))
	return nil
}

// loadPending reads and removes the events a previous Queue saved.
func (q *Queue) loadPending() ([]*environment.Request, error) {
	if q.cfg.Dir == "" {
		return nil, nil
	}
	dir := filepath.Join(q.cfg.Dir, "pending")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*environment.Request
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading pending event: %w", err)
		}
		var req environment.Request
		if err := json.Unmarshal(b, &req); err != nil {
			return nil, fmt.Errorf("reading pending event %s: %w", f, err)
		}
		out = append(out, &req)
		if err := os.Remove(f); err != nil {
			return nil, fmt.Errorf("taking pending event %s: %w", f, err)
		}
	}
	if len(out) > 0 {
		q.log.Info("queued the events saved at the last shutdown", "count", len(out))
	}
	return out, nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
