// Package bench measures lambdabox's Invoke API against a plain Go HTTP
// server. It holds the load loop shared by the benchmarks in this package
// and by the loadgen command (bench/loadgen).
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultURL is the Invoke API of `lambdabox rie` (and aws-lambda-rie) on
// its default port.
const DefaultURL = "http://127.0.0.1:8080/2015-03-31/functions/function/invocations"

// Config describes one load run. At least one of Requests and Duration
// bounds it.
type Config struct {
	// URL is POSTed to; default DefaultURL.
	URL string
	// Payload is the request body of every request.
	Payload []byte
	// ContentType of the payload; default application/json.
	ContentType string
	// Concurrency is the number of clients, each sending its next request
	// once the previous one is answered; default 1.
	Concurrency int
	// Requests is the total number of requests to send; 0 means no limit
	// (Duration must then be set).
	Requests int
	// Duration bounds the run; 0 means no limit (Requests must then be set).
	Duration time.Duration
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
	// Client sends the requests; default NewClient(Concurrency).
	Client *http.Client
	// Check, when set, judges each answer; an error counts the request as
	// failed. Without it, a status other than 2xx or an
	// X-Amz-Function-Error header is a failure.
	Check func(resp *http.Response, body []byte) error
}

// Stats is the outcome of a run.
type Stats struct {
	Requests int           // requests answered or failed
	Errors   int           // of which failed
	Elapsed  time.Duration // wall time of the run
	// Latencies of every request (failed ones included), sorted.
	Latencies []time.Duration
	// FirstError is the first failure seen, if any.
	FirstError error
}

// Throughput is requests per second over the run.
func (s Stats) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// Percentile returns the latency below which fraction p (0..1) of the
// requests fall (nearest rank).
func (s Stats) Percentile(p float64) time.Duration {
	n := len(s.Latencies)
	if n == 0 {
		return 0
	}
	i := int(p*float64(n)+0.5) - 1
	return s.Latencies[max(0, min(n-1, i))]
}

// Max is the slowest request.
func (s Stats) Max() time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	return s.Latencies[len(s.Latencies)-1]
}

// String is a one-screen summary.
func (s Stats) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "requests:   %d\n", s.Requests)
	fmt.Fprintf(&b, "errors:     %d\n", s.Errors)
	fmt.Fprintf(&b, "elapsed:    %v\n", s.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "throughput: %.1f req/s\n", s.Throughput())
	fmt.Fprintf(&b, "latency:    p50 %v  p90 %v  p99 %v  max %v\n",
		us(s.Percentile(0.50)), us(s.Percentile(0.90)), us(s.Percentile(0.99)), us(s.Max()))
	if s.FirstError != nil {
		fmt.Fprintf(&b, "first error: %v\n", s.FirstError)
	}
	return b.String()
}

func us(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// NewClient returns an HTTP client for concurrency keep-alive clients: one
// transport that keeps an idle connection for each.
func NewClient(concurrency int) *http.Client {
	t := &http.Transport{
		Proxy:               nil, // loopback targets only; never a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        max(100, concurrency),
		MaxIdleConnsPerHost: max(2, concurrency),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: t}
}

// Run sends the load described by cfg until Requests have been sent,
// Duration has passed or ctx ends, whichever comes first. Requests in
// flight when Duration passes are awaited and counted; those cut short by
// ctx are not counted.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/json"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Requests < 0 || cfg.Duration < 0 {
		return Stats{}, errors.New("bench: negative request count or duration")
	}
	if cfg.Requests == 0 && cfg.Duration == 0 {
		return Stats{}, errors.New("bench: a run needs a request count or a duration")
	}
	if cfg.Requests > 0 {
		cfg.Concurrency = min(cfg.Concurrency, cfg.Requests)
	}
	client := cfg.Client
	if client == nil {
		client = NewClient(cfg.Concurrency)
		defer client.CloseIdleConnections()
	}
	var (
		claimed atomic.Int64 // requests handed out to clients
		wg      sync.WaitGroup
		workers = make([]worker, cfg.Concurrency)
	)
	start := time.Now()
	// No request starts after the deadline; those in flight finish (within
	// cfg.Timeout), so that the server sees no cancelled requests.
	more := func() bool {
		return ctx.Err() == nil && (cfg.Duration == 0 || time.Since(start) < cfg.Duration)
	}
	for i := range workers {
		w := &workers[i]
		if cfg.Requests > 0 {
			w.lat = make([]time.Duration, 0, cfg.Requests/cfg.Concurrency+1)
		}
		wg.Go(func() {
			for more() {
				if cfg.Requests > 0 && claimed.Add(1) > int64(cfg.Requests) {
					return
				}
				w.one(ctx, client, &cfg)
			}
		})
	}
	wg.Wait()
	st := Stats{Elapsed: time.Since(start)}
	for i := range workers {
		w := &workers[i]
		st.Latencies = append(st.Latencies, w.lat...)
		st.Errors += w.errors
		if st.FirstError == nil {
			st.FirstError = w.firstErr
		}
	}
	st.Requests = len(st.Latencies)
	slices.Sort(st.Latencies)
	return st, nil
}

// worker is one client's share of the run.
type worker struct {
	lat      []time.Duration
	errors   int
	firstErr error
	body     bytes.Buffer
}

func (w *worker) one(ctx context.Context, client *http.Client, cfg *Config) {
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, cfg.URL, bytes.NewReader(cfg.Payload))
	if err != nil {
		w.fail(err)
		return
	}
	req.Header.Set("Content-Type", cfg.ContentType)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		w.body.Reset()
		_, err = w.body.ReadFrom(resp.Body)
		resp.Body.Close()
	}
	d := time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return // the caller ended the run while this request was in flight: not counted
		}
		w.lat = append(w.lat, d)
		w.fail(err)
		return
	}
	w.lat = append(w.lat, d)
	if cfg.Check != nil {
		err = cfg.Check(resp, w.body.Bytes())
	} else {
		err = defaultCheck(resp, w.body.Bytes())
	}
	if err != nil {
		w.fail(err)
	}
}

func (w *worker) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

func defaultCheck(resp *http.Response, body []byte) error {
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s: %s", resp.Status, truncate(body, 200))
	}
	if fe := resp.Header.Get("X-Amz-Function-Error"); fe != "" {
		return fmt.Errorf("function error %s: %s", fe, truncate(body, 200))
	}
	return nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
