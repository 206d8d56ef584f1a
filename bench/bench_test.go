package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/service"
)

// The function under test: examples/hello-go, an aws-lambda-go handler
// that answers {"message":"Hello, <name>!","requestId":...}.
const (
	helloPkg     = "github.com/lambdabox/lambdabox/examples/hello-go"
	helloPayload = `{"name":"bench"}`
	helloAnswer  = `"message":"Hello, bench!"`
)

var (
	tmpDir string // removed by TestMain

	buildOnce sync.Once
	bootstrap string // the built function, tmpDir/hello-go/bootstrap
	buildErr  error

	// baselineP50 is the p50 of the last BenchmarkBaselineEcho run, so the
	// lambdabox benchmarks that follow it can report their ratio to it.
	baselineMu  sync.Mutex
	baselineP50 time.Duration
)

func TestMain(m *testing.M) {
	// TestChaosSoak starts us as its runtime or as a setsid child, and
	// BenchmarkVersusFloor as the floor's relay.
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case chaosRuntimeArg:
			runChaosRuntime(os.Args[2])
			os.Exit(0)
		case chaosChildArg:
			runChaosChild()
			os.Exit(0)
		case floorRelayArg:
			if err := runFloorRelay(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "floor relay:", err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	dir, err := os.MkdirTemp("", "lambdabox-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	tmpDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// helloBootstrap builds examples/hello-go once, as a static binary named
// bootstrap, and returns its path.
func helloBootstrap(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		out := filepath.Join(tmpDir, "hello-go", "bootstrap")
		cmd := exec.Command("go", "build", "-o", out, helloPkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", helloPkg, err, b)
			return
		}
		bootstrap = out
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return bootstrap
}

var (
	lambdaboxOnce sync.Once
	lambdaboxBin  string // cmd/lambdabox, built once
	lambdaboxErr  error
)

// lambdaboxBinary builds cmd/lambdabox once, as a static binary in tmpDir.
func lambdaboxBinary(tb testing.TB) string {
	tb.Helper()
	lambdaboxOnce.Do(func() {
		lambdaboxBin = filepath.Join(tmpDir, "lambdabox")
		cmd := exec.Command("go", "build", "-o", lambdaboxBin, "../cmd/lambdabox")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			lambdaboxErr = fmt.Errorf("go build lambdabox: %v\n%s", err, b)
		}
	})
	if lambdaboxErr != nil {
		tb.Fatal(lambdaboxErr)
	}
	return lambdaboxBin
}

// startRIE runs `lambdabox rie` as its own process, as users run it, serving
// the hello-go function with the given extra flags on free loopback ports,
// and returns the invocations URL. It is stopped when tb ends.
func startRIE(tb testing.TB, flags ...string) string {
	tb.Helper()
	bin := lambdaboxBinary(tb)
	boot := helloBootstrap(tb)
	addr := freeAddr(tb)
	args := append([]string{"rie", "--runtime-interface-emulator-address", addr, "--runtime-api-address", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(bin, append(args, boot)...)
	cmd.Dir = filepath.Dir(boot)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitListening(tb, addr)
	return "http://" + addr + "/2015-03-31/functions/function/invocations"
}

// waitListening waits up to 10 s until something accepts on addr.
func waitListening(tb testing.TB, addr string) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing listens on %s after 10 s", addr)
		}
	}
}

// startLambdabox serves the hello-go function in-process, with up to
// maxConcurrency environments; see serveFunction. stop shuts the service
// down (the test's cleanup does it too).
func startLambdabox(tb testing.TB, maxConcurrency int) (url string, stop func() error) {
	tb.Helper()
	srv := serveFunction(tb, helloBootstrap(tb), maxConcurrency, false)
	return srv.invokeURL, srv.stop
}

// served is a function served in-process.
type served struct {
	invokeURL string // the Invoke API's invocations URL of the function
	baseURL   string // the Invoke API's root
	urlFront  string // the function URL (RESPONSE_STREAM mode)
	// stop shuts the service down and returns what Run returned; later
	// calls return nil.
	stop func() error
}

// serveFunction serves the function boot in-process as `lambdabox rie`
// does, through internal/service: the Invoke API and a streaming function
// URL, on free loopback ports, with up to maxConcurrency environments on
// the process driver. Everything is shut down when tb ends.
func serveFunction(tb testing.TB, boot string, maxConcurrency int, shaping bool) served {
	tb.Helper()
	svc, err := service.New(service.Config{
		InvokeAddr: "127.0.0.1:0",
		Driver:     processDriver(tb),
		Output:     io.Discard,
	})
	if err != nil {
		tb.Fatal(err)
	}
	err = svc.Add(context.Background(), service.FunctionSpec{
		Function: function.Config{
			Name:    "bench_function",
			Command: []string{boot},
			Dir:     filepath.Dir(boot),
			Timeout: 60 * time.Second,
		},
		MaxConcurrency: maxConcurrency,
		Queue:          true,
		StreamShaping:  shaping,
		FunctionURL:    "127.0.0.1:0",
		URLStreaming:   true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		tb.Fatalf("serving: %v", err)
	}
	var once sync.Once
	var runErr error
	s := served{
		baseURL:  "http://" + svc.InvokeAddr(),
		urlFront: "http://" + svc.FunctionURLAddr("bench_function"),
		stop: func() error {
			first := false
			once.Do(func() {
				first = true
				cancel()
				runErr = <-done
			})
			if !first {
				return nil
			}
			return runErr
		},
	}
	s.invokeURL = s.baseURL + "/2015-03-31/functions/function/invocations"
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("shutting lambdabox down: %v", err)
		}
	})
	return s
}

// startEcho serves a plain net/http handler that answers with the request
// body: the floor any HTTP front can reach on this machine.
func startEcho(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/2015-03-31/functions/function/invocations"
}

// checkHello accepts only the function's greeting.
func checkHello(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" ||
		!bytes.Contains(body, []byte(helloAnswer)) {
		return fmt.Errorf("status %d, function error %q: %.200s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
	}
	return nil
}

// runLoad runs b.N requests from clients clients, after warm-up requests,
// fails on any error, and reports p50-µs, p99-µs and <unit>/s.
func runLoad(b *testing.B, cfg Config, warmup int, rateUnit string) Stats {
	b.Helper()
	cfg.Client = NewClient(cfg.Concurrency)
	defer cfg.Client.CloseIdleConnections()
	ctx := context.Background()
	if warmup > 0 {
		w := cfg
		w.Requests = warmup
		st, err := Run(ctx, w)
		if err != nil {
			b.Fatal(err)
		}
		if st.Errors > 0 {
			b.Fatalf("warm-up: %d of %d requests failed; first: %v", st.Errors, st.Requests, st.FirstError)
		}
	}
	cfg.Requests = b.N
	b.ResetTimer()
	st, err := Run(ctx, cfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if st.Errors > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", st.Errors, st.Requests, st.FirstError)
	}
	b.ReportMetric(micros(st.Percentile(0.50)), "p50-µs")
	b.ReportMetric(micros(st.Percentile(0.99)), "p99-µs")
	b.ReportMetric(st.Throughput(), rateUnit)
	return st
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// reportRatio reports p50 as a multiple of the baseline's p50, when
// BenchmarkBaselineEcho ran earlier in the same run.
func reportRatio(b *testing.B, st Stats) {
	baselineMu.Lock()
	base := baselineP50
	baselineMu.Unlock()
	if base > 0 {
		b.ReportMetric(float64(st.Percentile(0.50))/float64(base), "p50-x-baseline")
	}
}

// BenchmarkBaselineEcho: one sequential keep-alive client POSTing a small
// JSON payload to a plain Go echo server on loopback.
func BenchmarkBaselineEcho(b *testing.B) {
	url := startEcho(b)
	st := runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 1}, 100, "req/s")
	baselineMu.Lock()
	baselineP50 = st.Percentile(0.50)
	baselineMu.Unlock()
}

// BenchmarkInvokeSequential: one sequential keep-alive client invoking the
// warm aws-lambda-go hello function through lambdabox.
func BenchmarkInvokeSequential(b *testing.B) {
	url := startRIE(b)
	st := runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 1, Check: checkHello}, 100, "invokes/s")
	reportRatio(b, st)
}

// BenchmarkInvokeParallel8: eight clients against eight warm environments.
func BenchmarkInvokeParallel8(b *testing.B) {
	url := startRIE(b, "--max-concurrency", "8", "--provisioned", "8")
	runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 8, Check: checkHello}, 200, "invokes/s")
}

// TestBenchWiring checks, quickly, that the servers and the load loop the
// benchmarks rely on work.
func TestBenchWiring(t *testing.T) {
	ctx := context.Background()
	echo := startEcho(t)
	st, err := Run(ctx, Config{URL: echo, Payload: []byte(helloPayload), Concurrency: 2, Requests: 10,
		Check: func(resp *http.Response, body []byte) error {
			if string(body) != helloPayload {
				return fmt.Errorf("echo answered %q", body)
			}
			return nil
		}})
	if err != nil || st.Errors > 0 || st.Requests != 10 {
		t.Fatalf("echo: %d requests, %d errors, err %v, first %v", st.Requests, st.Errors, err, st.FirstError)
	}

	url, _ := startLambdabox(t, 2)
	st, err = Run(ctx, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 2, Requests: 6, Duration: 30 * time.Second, Check: checkHello})
	if err != nil || st.Errors > 0 || st.Requests != 6 {
		t.Fatalf("lambdabox: %d requests, %d errors, err %v, first %v", st.Requests, st.Errors, err, st.FirstError)
	}
	if st.Percentile(0.5) <= 0 || st.Max() < st.Percentile(0.99) || st.Throughput() <= 0 {
		t.Errorf("implausible stats: %+v", st)
	}

	// The default check counts a function error as a failure.
	st, err = Run(ctx, Config{URL: url, Payload: []byte(`"not an object"`), Requests: 1})
	if err != nil || st.Errors != 1 {
		t.Errorf("function error: %d errors (want 1), err %v", st.Errors, err)
	}
	if _, err := Run(ctx, Config{URL: url}); err == nil {
		t.Error("an unbounded run was accepted")
	}
}
