package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
)

var initDurationRE = regexp.MustCompile(`Init Duration: ([0-9.]+) ms`)

// BenchmarkColdStart measures a new execution environment's first invoke,
// from the request to the response, and the function's own Init within it
// (from exec to its first call of next, as REPORT's Init Duration). The
// difference is lambdabox's cold-start overhead.
func BenchmarkColdStart(b *testing.B) {
	boot := helloBootstrap(b)
	cfg := function.Config{Name: "cold", Command: []string{boot}, Dir: filepath.Dir(boot), Timeout: 30 * time.Second}.WithDefaults()
	var total, inits, overhead []time.Duration
	drv := processDriver(b)
	for b.Loop() {
		var out bytes.Buffer
		env, err := environment.New(environment.Config{Function: cfg, Driver: drv, Output: &out})
		if err != nil {
			b.Fatal(err)
		}
		req := &function.Request{Invocation: runtimeapi.Invocation{
			ID: uuid.NewString(), Payload: []byte(helloPayload), FunctionARN: cfg.ARN(), TraceID: "Root=1-00000000-000000000000000000000000",
		}}
		start := time.Now()
		res := env.Invoke(context.Background(), req)
		d := time.Since(start)
		env.Settle()
		if res.Error {
			b.Fatalf("cold invoke failed: %s\nenvironment output:\n%s", res.Payload, out.Bytes())
		}
		m := initDurationRE.FindSubmatch(out.Bytes())
		if m == nil {
			b.Fatalf("no Init Duration in %s", out.Bytes())
		}
		ms, _ := strconv.ParseFloat(string(m[1]), 64)
		initDur := time.Duration(ms * float64(time.Millisecond))
		total = append(total, d)
		inits = append(inits, initDur)
		overhead = append(overhead, d-initDur)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = env.Close(ctx)
		cancel()
	}
	pct := func(ds []time.Duration, p float64) float64 {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(total, 0.5), "p50-ms")
	b.ReportMetric(pct(total, 0.99), "p99-ms")
	b.ReportMetric(pct(inits, 0.5), "init-p50-ms")
	b.ReportMetric(pct(overhead, 0.5), "overhead-p50-ms")
	b.ReportMetric(0, "ns/op")
}
