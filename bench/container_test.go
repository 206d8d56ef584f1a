package bench

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/container"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

const helloImage = "localhost/lambdabox-bench/hello-go:latest"

var (
	helloImageOnce sync.Once
	helloImageErr  error
)

// containerEngine connects to the engine of $DOCKER_HOST (or the
// default), with the static lambdabox as the containers' helper, and
// builds examples/hello-go on lambdabox's provided base into it with
// `lambdabox build`; the layer cache is TestBaseImages's. It skips
// without an engine.
func containerEngine(b *testing.B) *container.Engine {
	b.Helper()
	bin := lambdaboxBinary(b)
	e, err := container.Connect(context.Background(), container.Config{Helper: bin})
	if errors.Is(err, container.ErrNoEngine) {
		b.Skipf("%v (bash .ci/run starts Podman's service and sets DOCKER_HOST)", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close(context.Background()) })
	helloImageOnce.Do(func() {
		cache := filepath.Join(tmpDir, "base-cache")
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "lambdabox-tests")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "build", "../examples/hello-go", "--base", "provided", "--cache", cache,
			"-t", helloImage, "--load", "--engine", e.Kind())
		if out, err := cmd.CombinedOutput(); err != nil {
			helloImageErr = errors.New("lambdabox build examples/hello-go: " + err.Error() + "\n" + string(out))
		}
	})
	if helloImageErr != nil {
		b.Fatal(helloImageErr)
	}
	return e
}

// helloContainer is the hello function as its image runs it: the image's
// /lambda-entrypoint.sh with the handler, bootstrap.
func helloContainer() function.Config {
	return function.Config{Name: "cold", Command: []string{"/lambda-entrypoint.sh", "bootstrap"}, Timeout: 30 * time.Second, MemoryMB: 512}.WithDefaults()
}

// coldInvoke starts a new environment on d, times its first invoke from
// request to response, and closes it.
func coldInvoke(b *testing.B, d sandbox.Driver, cfg function.Config) time.Duration {
	var out syncbuf.Buffer
	env, err := environment.New(environment.Config{Function: cfg, Driver: d, Output: &out})
	if err != nil {
		b.Fatal(err)
	}
	req := &function.Request{Invocation: runtimeapi.Invocation{ID: uuid.NewString(), Payload: []byte(helloPayload), FunctionARN: cfg.ARN()}}
	start := time.Now()
	res := env.Invoke(context.Background(), req)
	took := time.Since(start)
	env.Settle()
	if res.Error {
		b.Fatalf("cold invoke failed: %s %s\nenvironment output:\n%s", res.ErrorType, res.Payload, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = env.Close(ctx)
	return took
}

func p50ms(ds []time.Duration) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2].Microseconds()) / 1000
}

// BenchmarkContainerColdStart measures the container driver's cold start
// of the Go hello image (lambdabox build on the provided base), from the
// request to the response (target p50 ≤ 300 ms): "first-p50-ms" with a
// new driver each time (the container is created, started, and the
// bootstrap run in it), "p50-ms" with one driver, which prepares the next
// environment's container while the function runs, as serve's pool does.
// The same-run floor is the process driver's cold start of the same
// bootstrap on the host (process-p50-ms).
func BenchmarkContainerColdStart(b *testing.B) {
	e := containerEngine(b)
	cfg := helloContainer()
	fn := container.Function{Image: helloImage, Name: "cold"}
	warm := e.Driver(fn)
	defer warm.Close(context.Background())
	boot := helloBootstrap(b)
	hostCfg := function.Config{Name: "cold", Command: []string{boot}, Dir: filepath.Dir(boot), Timeout: 30 * time.Second, MemoryMB: 512}.WithDefaults()
	proc := processDriver(b)
	coldInvoke(b, warm, cfg) // the first prepares the next
	var first, prepared, host []time.Duration
	for b.Loop() {
		d := e.Driver(fn)
		first = append(first, coldInvoke(b, d, cfg))
		_ = d.Close(context.Background())
		time.Sleep(300 * time.Millisecond) // the prepared container is ready again, as between cold starts
		prepared = append(prepared, coldInvoke(b, warm, cfg))
		host = append(host, coldInvoke(b, proc, hostCfg))
	}
	b.ReportMetric(p50ms(prepared), "p50-ms")
	b.ReportMetric(p50ms(first), "first-p50-ms")
	b.ReportMetric(p50ms(host), "process-p50-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkContainerWarm measures warm invokes, one after another, of
// the hello function in a container and, in the same run, as a host
// process (the process driver): invokes per second of each and their
// ratio (target ≥ 0.8).
func BenchmarkContainerWarm(b *testing.B) {
	e := containerEngine(b)
	d := e.Driver(container.Function{Image: helloImage, Name: "warm"})
	defer d.Close(context.Background())
	boot := helloBootstrap(b)
	hostCfg := function.Config{Name: "warm", Command: []string{boot}, Dir: filepath.Dir(boot), Timeout: 30 * time.Second, MemoryMB: 512}.WithDefaults()
	envs := map[string]*environment.Environment{}
	for name, c := range map[string]struct {
		d   sandbox.Driver
		cfg function.Config
	}{"container": {d, helloContainer()}, "process": {processDriver(b), hostCfg}} {
		env, err := environment.New(environment.Config{Function: c.cfg, Driver: c.d, Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = env.Close(ctx)
		})
		envs[name] = env
	}
	// Rounds of n invokes alternate between the two, so that what else
	// the machine does weighs on both alike.
	const n, rounds = 100, 10
	round := func(env *environment.Environment) time.Duration {
		start := time.Now()
		for range n {
			res := env.Invoke(context.Background(), &function.Request{Invocation: runtimeapi.Invocation{ID: uuid.NewString(), Payload: []byte(helloPayload)}})
			env.Settle()
			if res.Error {
				b.Fatalf("invoke: %s %s", res.ErrorType, res.Payload)
			}
		}
		return time.Since(start)
	}
	round(envs["container"]) // cold starts and warm-up
	round(envs["process"])
	var ct, pt time.Duration
	for b.Loop() {
		for range rounds {
			ct += round(envs["container"])
			pt += round(envs["process"])
		}
	}
	total := float64(n * rounds * b.N)
	c, p := total/ct.Seconds(), total/pt.Seconds()
	b.ReportMetric(c, "container-invokes/s")
	b.ReportMetric(p, "process-invokes/s")
	b.ReportMetric(c/p, "x-process")
	b.ReportMetric(0, "ns/op")
}
