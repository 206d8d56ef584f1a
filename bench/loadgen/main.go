// Command loadgen POSTs one payload repeatedly to an HTTP endpoint, by
// default lambdabox's (or aws-lambda-rie's) Invoke API on localhost:8080,
// from -c keep-alive clients, and prints the throughput and latencies.
//
//	go run ./bench/loadgen -c 1 -n 5000
//	go run ./bench/loadgen -c 8 -d 10s -payload '{"name":"bench"}'
//
// A run stops after -n requests or -d, whichever comes first; with neither
// it runs for 10 seconds. A run never lasts longer than 10 minutes (plus
// the -timeout of the requests still in flight then).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/lambdabox/lambdabox/bench"
)

const maxDuration = 10 * time.Minute

func main() {
	var (
		url         = flag.String("url", bench.DefaultURL, "URL to POST to")
		concurrency = flag.Int("c", 1, "concurrent clients")
		requests    = flag.Int("n", 0, "total requests (0: bounded by -d only)")
		duration    = flag.Duration("d", 0, "duration of the run (default 10s when -n is 0; at most 10m)")
		payload     = flag.String("payload", `{"name":"loadgen"}`, "request body")
		contentType = flag.String("content-type", "application/json", "Content-Type of the request body")
		timeout     = flag.Duration("timeout", 30*time.Second, "timeout of each request")
		warmup      = flag.Int("warmup", 1, "requests sent (and not counted) before the run, e.g. to run Init")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fail("unexpected arguments: %q", flag.Args())
	}
	if *concurrency < 1 {
		fail("-c %d: want at least 1", *concurrency)
	}
	if *requests < 0 || *duration < 0 || *warmup < 0 {
		fail("-n, -d and -warmup must not be negative")
	}
	if *requests == 0 && *duration == 0 {
		*duration = 10 * time.Second
	}
	if *duration == 0 || *duration > maxDuration {
		*duration = maxDuration
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	client := bench.NewClient(*concurrency)
	cfg := bench.Config{
		URL:         *url,
		Payload:     []byte(*payload),
		ContentType: *contentType,
		Concurrency: *concurrency,
		Timeout:     *timeout,
		Client:      client,
	}
	if *warmup > 0 {
		w := cfg
		w.Concurrency, w.Requests, w.Duration = 1, *warmup, *timeout
		st, err := bench.Run(ctx, w)
		if err != nil {
			fail("%v", err)
		}
		if st.Errors > 0 {
			fmt.Fprintf(os.Stderr, "loadgen: warm-up: %v\n", st.FirstError)
		}
	}
	cfg.Requests, cfg.Duration = *requests, *duration
	st, err := bench.Run(ctx, cfg)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("target:     %s (%d clients)\n", *url, *concurrency)
	fmt.Print(st)
	if st.Requests > 0 && st.Errors == st.Requests {
		os.Exit(1)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}
