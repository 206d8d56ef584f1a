package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// unlimited starts environments as its driver does, without a memory
// limit: the baseline of BenchmarkColdStartMemoryLimit.
type unlimited struct{ sandbox.Driver }

func (u unlimited) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	spec.MemoryLimit = 0
	return u.Driver.Start(ctx, spec)
}

// BenchmarkColdStartMemoryLimit measures what the memory limit adds to a
// cold start (a memory cgroup per environment; on a hybrid host the
// re-exec through lambdabox that joins the v1 one): cold invokes with the
// limit and without it alternate in one run, and the ratio of their
// medians is reported.
func BenchmarkColdStartMemoryLimit(b *testing.B) {
	drv := processDriver(b)
	if err := drv.MemoryLimited(); err != nil {
		b.Skip("memory is not limited on this machine:", err)
	}
	boot := helloBootstrap(b)
	cfg := function.Config{Name: "cold", Command: []string{boot}, Dir: filepath.Dir(boot), Timeout: 30 * time.Second, MemoryMB: 128}.WithDefaults()
	cold := func(d sandbox.Driver) time.Duration {
		var out bytes.Buffer
		env, err := environment.New(environment.Config{Function: cfg, Driver: d, Output: &out})
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = env.Close(ctx)
			cancel()
		}()
		req := &function.Request{Invocation: runtimeapi.Invocation{ID: uuid.NewString(), Payload: []byte(helloPayload), FunctionARN: cfg.ARN()}}
		start := time.Now()
		res := env.Invoke(context.Background(), req)
		d0 := time.Since(start)
		env.Settle()
		if res.Error {
			b.Fatalf("cold invoke failed: %s", res.Payload)
		}
		return d0
	}
	var limited, base []time.Duration
	for b.Loop() {
		limited = append(limited, cold(drv))
		base = append(base, cold(unlimited{drv}))
	}
	median := func(ds []time.Duration) float64 {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(limited), "limited-p50-ms")
	b.ReportMetric(median(base), "unlimited-p50-ms")
	b.ReportMetric(median(limited)/median(base), "ratio")
	b.ReportMetric(0, "ns/op")
}
