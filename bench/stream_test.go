package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
)

const streamSize = 100 << 20 // 100 MiB

var (
	testFnOnce sync.Once
	testFnDir  string // holds gofn and goweb, cmd/lambdabox's test functions
	testFnErr  error
)

// testFunction builds cmd/lambdabox's test functions once and returns the
// bootstrap of one: "gofn" (its op "streambig" streams N bytes) or "goweb"
// (a function URL handler that streams on /stream).
func testFunction(tb testing.TB, name string) string {
	tb.Helper()
	testFnOnce.Do(func() {
		testFnDir = filepath.Join(tmpDir, "testfn")
		for _, fn := range []string{"gofn", "goweb"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(testFnDir, fn, "bootstrap"), "../cmd/lambdabox/testdata/"+fn)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				testFnErr = fmt.Errorf("go build %s: %v\n%s", fn, err, b)
				return
			}
		}
	})
	if testFnErr != nil {
		tb.Fatal(testFnErr)
	}
	return filepath.Join(testFnDir, name, "bootstrap")
}

// median returns the middle of v, which it sorts.
func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// reportRates reports the median rates of a run against the raw copy's.
func reportRates(b *testing.B, raw, got []float64, unit string) {
	b.ReportMetric(median(raw), "raw-MiB/s")
	b.ReportMetric(median(got), unit)
	b.ReportMetric(median(got)/median(raw), "ratio")
	b.ReportMetric(0, "ns/op")
}

// rawCopyMBs is the baseline: a plain Go HTTP server writing 100 MiB over
// loopback to a client that reads and discards it.
func rawCopyMBs(b *testing.B) float64 {
	chunk := bytes.Repeat([]byte("z"), 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for n := 0; n < streamSize; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	start := time.Now()
	resp, err := http.Get(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n < streamSize {
		b.Fatalf("raw copy: %d bytes, %v", n, err)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}

// BenchmarkStream100MiB streams 100 MiB from an aws-lambda-go function
// through InvokeWithResponseStream (shaping off) and compares the rate
// with a raw loopback HTTP copy measured in the same run.
func BenchmarkStream100MiB(b *testing.B) {
	s := serveFunction(b, testFunction(b, "gofn"), 1, false)
	url := s.baseURL + "/2021-11-15/functions/function/response-streaming-invocations"
	payload := fmt.Sprintf(`{"op":"streambig","size":%d}`, streamSize)
	var raw, lb []float64
	for b.Loop() {
		raw = append(raw, rawCopyMBs(b))
		start := time.Now()
		resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(payload)))
		if err != nil {
			b.Fatal(err)
		}
		dec := eventstream.NewDecoder()
		var n int
		var complete string
		buf := make([]byte, 64<<10)
		for {
			msg, err := dec.Decode(resp.Body, buf)
			if err != nil {
				break
			}
			switch msg.Headers.Get(":event-type").String() {
			case "PayloadChunk":
				n += len(msg.Payload)
			case "InvokeComplete":
				complete = string(msg.Payload)
			}
		}
		resp.Body.Close()
		if n != streamSize || complete != "{}" {
			b.Fatalf("streamed %d bytes, InvokeComplete %s", n, complete)
		}
		lb = append(lb, float64(n)/(1<<20)/time.Since(start).Seconds())
	}
	reportRates(b, raw, lb, "stream-MiB/s")
}

// BenchmarkStreamRuntimeHop100MiB measures the first hop alone: the same
// function streaming 100 MiB into an execution environment whose stream is
// read and discarded in-process, with no Invoke API, framing or client. It
// is the ceiling set by the runtime's own streaming, against the same raw
// loopback copy.
func BenchmarkStreamRuntimeHop100MiB(b *testing.B) {
	boot := testFunction(b, "gofn")
	cfg := function.Config{Name: "hop", Command: []string{boot}, Dir: filepath.Dir(boot), Timeout: 60 * time.Second}.WithDefaults()
	env, err := environment.New(environment.Config{Function: cfg, Driver: processDriver(b), Output: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close(context.Background())
	payload := []byte(fmt.Sprintf(`{"op":"streambig","size":%d}`, streamSize))
	var raw, hop []float64
	for b.Loop() {
		raw = append(raw, rawCopyMBs(b))
		start := time.Now()
		res := env.Invoke(context.Background(), &function.Request{Invocation: runtimeapi.Invocation{
			ID: uuid.NewString(), Payload: payload, Streaming: true}})
		if res.Stream == nil {
			b.Fatalf("not streamed: %s", res.Payload)
		}
		n, _ := io.Copy(io.Discard, res.Stream)
		env.Settle()
		if n != streamSize {
			b.Fatalf("streamed %d bytes", n)
		}
		hop = append(hop, float64(n)/(1<<20)/time.Since(start).Seconds())
	}
	reportRates(b, raw, hop, "hop-MiB/s")
}

// BenchmarkFunctionURLTTFB measures the time to the first body byte of a
// streaming function URL whose function (aws-lambda-go's
// LambdaFunctionURLStreamingResponse) writes its first chunk at once.
func BenchmarkFunctionURLTTFB(b *testing.B) {
	s := serveFunction(b, testFunction(b, "goweb"), 1, false)
	client := NewClient(1)
	var ttfb []time.Duration
	one := func() time.Duration {
		start := time.Now()
		resp, err := client.Get(s.urlFront + "/stream")
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return d
	}
	one() // Init
	for b.Loop() {
		ttfb = append(ttfb, one())
	}
	sort.Slice(ttfb, func(i, j int) bool { return ttfb[i] < ttfb[j] })
	b.ReportMetric(micros(ttfb[len(ttfb)/2]), "ttfb-p50-µs")
	b.ReportMetric(micros(ttfb[len(ttfb)*99/100]), "ttfb-p99-µs")
	b.ReportMetric(0, "ns/op")
}
