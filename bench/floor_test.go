package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
)

// startFloor serves the least any emulator must do per invoke, with nothing
// else: an Invoke endpoint that hands the payload to the runtime's next and
// answers with its response. No validation, no logs, no lifecycle. Its
// figures are the floor for the real aws-lambda-go runtime on this machine.
func startFloor(tb testing.TB) string { return startFloorN(tb, 1) }

// startFloorN is startFloor with n runtime processes polling one Runtime
// API endpoint; each answer goes to the client of its request id. The
// relay runs in this process, beside the load's clients.
func startFloorN(tb testing.TB, n int) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	stop, err := serveFloor(ln, helloBootstrap(tb), n, floorBare)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return "http://" + ln.Addr().String() + "/invoke"
}

// floorRelayArg, as the test binary's first argument, makes it the floor's
// relay in a process of its own (see TestMain): a listening address, the
// bootstrap, the number of runtimes and "logs" or "nologs" follow.
const floorRelayArg = "lambdabox-floor-relay"

// floorMode says what a floor relay does beside relaying.
type floorMode string

// The floor relays.
const (
	// floorBare relays and does nothing else: the floor.
	floorBare floorMode = "bare"
	// floorLogs adds the least of Lambda's log contract: the runtimes'
	// output read from a pipe and copied out, and a START, END and REPORT
	// line per invoke (to /dev/null, where lambdabox's output goes in
	// these benchmarks).
	floorLogs floorMode = "logs"
	// floorContract does, per invoke, only what the Runtime and Invoke
	// APIs and Lambda's execution model oblige every emulator to do,
	// each the cheapest way: the log contract of floorLogs; a random
	// request id (a UUID, also on the client's answer) and
	// Invocation-Id nonce; a deadline timer per runtime, reset on each
	// invoke; the Duration and Max Memory Used of REPORT, the latter from
	// the environment's memory cgroup peak; and each runtime started as
	// lambdabox starts it (sandbox/process: contained, memory limited),
	// with a Runtime API endpoint of its own so that REPORT names the
	// environment that ran the invoke. No validation, no state machine,
	// no Telemetry, no hardening.
	floorContract floorMode = "contract"
)

// startFloorProcess is startFloorN with the relay in a process of its own,
// as every emulator is: the clients and the relay no longer share one Go
// scheduler. mode adds to the relay's work.
func startFloorProcess(tb testing.TB, n int, mode floorMode) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	cmd := exec.Command(self, floorRelayArg, addr, helloBootstrap(tb), strconv.Itoa(n), string(mode))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the benchmark
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	waitListening(tb, addr)
	return "http://" + addr + "/invoke"
}

// runFloorRelay serves the floor on addr until SIGINT or SIGTERM; args
// are startFloorProcess's.
func runFloorRelay(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want ADDR BOOTSTRAP RUNTIMES MODE, got %q", args)
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	if n == 1 {
		// What lambdabox rie does when one invoke runs at a time: one P
		// costs less CPU per invoke there.
		runtime.GOMAXPROCS(1)
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	stop, err := serveFloor(ln, args[1], n, floorMode(args[3]))
	if err != nil {
		return err
	}
	defer stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// The floor's function, as its runtimes and REPORT lines see it.
const (
	floorMemoryMB = 3008 // lambdabox rie's default
	floorTimeout  = time.Minute
	floorARN      = "arn:aws:lambda:us-east-1:012345678912:function:floor"
)

// serveFloor serves the floor relay on ln with n runtimes of bootstrap,
// doing what mode says; stop ends the runtimes and the server.
func serveFloor(ln net.Listener, bootstrap string, n int, mode floorMode) (stop func(), err error) {
	switch mode {
	case floorBare, floorLogs, floorContract:
	default:
		return nil, fmt.Errorf("unknown floor mode %q", mode)
	}
	type event struct {
		body   []byte
		id     string // the request id, with floorContract
		answer chan []byte
	}
	type pending struct {
		answer chan []byte
		start  time.Time
	}
	var out *os.File // the log's destination, but with floorBare
	if mode != floorBare {
		if out, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return nil, err
		}
	}
	events := make(chan event)
	// Invokes wait until every runtime has started: the handlers then
	// read envs without a lock.
	ready := make(chan struct{})
	var waiting sync.Map // request id → pending
	var id atomic.Int64
	// With floorContract, each runtime has an endpoint and an environment
	// of its own: byAddr maps the endpoint to its runtime's index.
	var (
		envs   []sandbox.Env
		timers []*time.Timer
		byAddr = map[string]int{}
	)
	type envKey struct{}
	runtimeOf := func(r *http.Request) int { i, _ := r.Context().Value(envKey{}).(int); return i }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case <-ready:
		case <-r.Context().Done():
			return
		}
		ev := event{body: b, answer: make(chan []byte, 1)}
		if mode == floorContract {
			ev.id = uuid.NewString()
			w.Header().Set("X-Amzn-Requestid", ev.id)
		}
		events <- ev
		a := <-ev.answer
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(a)
	})
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		var ev event
		select {
		case ev = <-events:
		case <-r.Context().Done():
			return
		}
		rid := ev.id
		if rid == "" {
			rid = strconv.FormatInt(id.Add(1), 10)
		}
		start := time.Now()
		waiting.Store(rid, pending{ev.answer, start})
		h := w.Header()
		if mode == floorContract {
			timers[runtimeOf(r)].Reset(floorTimeout)
			h.Set("Lambda-Runtime-Invocation-Id", strconv.FormatUint(rand.Uint64(), 16))
		}
		if out != nil {
			_, _ = out.WriteString("START RequestId: " + rid + " Version: $LATEST\n")
		}
		h.Set("Lambda-Runtime-Aws-Request-Id", rid)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(start.Add(floorTimeout).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", floorARN)
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		_, _ = w.Write(ev.body)
	})
	// A function error is relayed as a response is: the client sees its
	// body (and its check fails) instead of waiting for ever.
	answer := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rid := r.PathValue("id")
		v, ok := waiting.LoadAndDelete(rid)
		if !ok {
			return
		}
		p := v.(pending)
		switch mode {
		case floorLogs:
			_, _ = out.WriteString("END RequestId: " + rid + "\nREPORT RequestId: " + rid + "\tDuration: 1.00 ms\n")
		case floorContract:
			i := runtimeOf(r)
			timers[i].Stop()
			ms := float64(time.Since(p.start).Microseconds()) / 1000
			var mem uint64
			if m, ok := envs[i].(sandbox.MemoryReporter); ok {
				mem, _ = m.MaxMemory()
			}
			_, _ = fmt.Fprintf(out, "END RequestId: %s\nREPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t\n",
				rid, rid, ms, int64(math.Ceil(ms)), floorMemoryMB, mem>>20)
		}
		p.answer <- b
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", answer)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", answer)
	srv := &http.Server{Handler: mux}
	lns := []net.Listener{ln}
	if mode == floorContract {
		for i := range n {
			api, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				closeAll(lns[1:])
				out.Close()
				return nil, err
			}
			lns = append(lns, api)
			byAddr[api.Addr().String()] = i
			timers = append(timers, time.AfterFunc(time.Hour, func() {}))
			timers[i].Stop()
		}
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, envKey{}, byAddr[c.LocalAddr().String()])
		}
	}
	for _, l := range lns {
		go func() { _ = srv.Serve(l) }()
	}
	var (
		cmds    []*exec.Cmd
		copying sync.WaitGroup // the contract's log pipes
		driver  *process.Driver
	)
	stop = func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, env := range envs {
			_ = env.Stop(ctx)
		}
		if driver != nil {
			_ = driver.Close(ctx)
		}
		srv.Close()
		copying.Wait()
		if out != nil {
			out.Close()
		}
	}
	environ := func(api string) []string {
		return append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+api, "AWS_LAMBDA_FUNCTION_NAME=floor",
			"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(floorMemoryMB))
	}
	if mode == floorContract {
		if driver, err = process.New(process.Config{}); err != nil {
			stop()
			return nil, err
		}
	}
	for i := range n {
		if mode != floorContract {
			cmd := exec.Command(bootstrap)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			cmd.Env = environ(ln.Addr().String())
			if out != nil {
				// An io.Writer that is not an *os.File: os/exec makes the
				// pipe and copies it, in a goroutine of its own, to out.
				cmd.Stdout = struct{ io.Writer }{out}
			}
			if err := cmd.Start(); err != nil {
				stop()
				return nil, err
			}
			cmds = append(cmds, cmd)
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			stop()
			return nil, err
		}
		copying.Add(1)
		go func() {
			defer copying.Done()
			_, _ = io.Copy(out, pr)
			pr.Close()
		}()
		env, err := driver.Start(context.Background(), sandbox.Spec{
			Path: bootstrap, Env: environ(lns[i+1].Addr().String()), MemoryLimit: floorMemoryMB << 20,
			Output: func(sandbox.Process) (*os.File, error) { return pw, nil },
		})
		if err != nil { // it closed pw
			stop()
			return nil, err
		}
		envs = append(envs, env)
	}
	close(ready)
	return stop, nil
}

// BenchmarkFloorSequential measures the minimal platform of startFloor with
// one sequential client: what an emulator costs when it costs nothing.
func BenchmarkFloorSequential(b *testing.B) {
	url := startFloor(b)
	st := runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 1, Check: checkHello}, 100, "invokes/s")
	reportRatio(b, st)
}

// BenchmarkFloorParallel measures the minimal platform of startFloorN with
// eight runtimes on one Runtime API endpoint and eight clients.
func BenchmarkFloorParallel(b *testing.B) {
	url := startFloorN(b, 8)
	runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 8, Check: checkHello}, 200, "invokes/s")
}

// loadCases are the loads BenchmarkVersusFloor and BenchmarkInvokeAllocs
// put on lambdabox rie: seq, one client on one environment; par8, eight
// clients on a pool of eight; lmi8, eight clients on one Managed Instances
// environment of eight slots (aws-lambda-go's eight workers).
var loadCases = []struct {
	name    string
	clients int
	flags   []string // lambdabox rie's
}{
	{"seq", 1, nil},
	{"par8", 8, []string{"--max-concurrency", "8", "--provisioned", "8"}},
	{"lmi8", 8, []string{"--max-concurrency", "1", "--per-environment-concurrency", "8", "--init-at-start"}},
}

// BenchmarkVersusFloor measures lambdabox (`lambdabox rie`, its own
// process) and the floors in the same run, alternating in rounds of b.N
// invokes (LAMBDABOX_FLOOR_ROUNDS, default 5), and reports each ratio as
// the median of its rounds' ratios: x-floor is lambdabox's throughput as
// a fraction of the floor (startFloorN: the bare relay in this
// process); x-floor-process, -logged and -contract are the same against
// the relay in a process of its own (startFloorProcess) bare, with the
// log contract and with the whole per-invoke contract (see floorMode);
// logged-x-floor and contract-x-floor are those relays' own fractions of
// the floor: the most any emulator that keeps that contract can
// reach. seq: one client, one environment; par8: eight clients, a pool of
// eight; lmi8: eight clients on one Managed Instances environment of
// eight slots (aws-lambda-go's eight workers).
func BenchmarkVersusFloor(b *testing.B) {
	rounds := 5
	if v := os.Getenv("LAMBDABOX_FLOOR_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LAMBDABOX_FLOOR_ROUNDS=%q: want a count of rounds", v)
		}
		rounds = n
	}
	for _, tc := range loadCases {
		b.Run(tc.name, func(b *testing.B) {
			urls := []string{ // in the order of rates' columns
				startFloorN(b, tc.clients),
				startFloorProcess(b, tc.clients, floorBare),
				startFloorProcess(b, tc.clients, floorLogs),
				startFloorProcess(b, tc.clients, floorContract),
				startRIE(b, tc.flags...),
			}
			const floor, proc, logged, contract, box = 0, 1, 2, 3, 4
			rates := make([][]float64, rounds)
			for r := range rates {
				for _, url := range urls {
					rates[r] = append(rates[r], measure(b, url, tc.clients, b.N))
				}
			}
			ratio := func(num, den int) float64 {
				rs := make([]float64, rounds)
				for r, rate := range rates {
					rs[r] = rate[num] / rate[den]
				}
				return median(rs)
			}
			var floorRate, boxRate float64
			for _, rate := range rates {
				floorRate += rate[floor] / float64(rounds)
				boxRate += rate[box] / float64(rounds)
			}
			b.ReportMetric(floorRate, "floor-invokes/s")
			b.ReportMetric(boxRate, "invokes/s")
			b.ReportMetric(ratio(box, floor), "x-floor")
			b.ReportMetric(ratio(box, proc), "x-floor-process")
			b.ReportMetric(ratio(box, logged), "x-floor-logged")
			b.ReportMetric(ratio(box, contract), "x-floor-contract")
			b.ReportMetric(ratio(logged, floor), "logged-x-floor")
			b.ReportMetric(ratio(contract, floor), "contract-x-floor")
		})
	}
}

// measure runs n invokes from clients clients against url, after a
// warm-up, and returns the throughput; any error fails b.
func measure(b *testing.B, url string, clients, n int) float64 {
	return measureAfter(b, url, clients, n, nil)
}

// measureAfter is measure that calls before, when not nil, between the
// warm-up and the measured invokes.
func measureAfter(b *testing.B, url string, clients, n int, before func()) float64 {
	b.Helper()
	cfg := Config{URL: url, Payload: []byte(helloPayload), Concurrency: clients, Check: checkHello, Client: NewClient(clients)}
	defer cfg.Client.CloseIdleConnections()
	var rate float64
	for _, reqs := range []int{200, n} {
		if reqs == n && before != nil {
			before()
		}
		cfg.Requests = reqs
		st, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if st.Errors > 0 {
			b.Fatalf("%s: %d of %d requests failed; first: %v", url, st.Errors, st.Requests, st.FirstError)
		}
		rate = st.Throughput()
	}
	return rate
}

// BenchmarkInvokeAllocs measures what lambdabox (`lambdabox rie`, its own
// process) allocates per invoke, from its own runtime.MemStats (read off
// --debug-addr's heap profile before and after b.N invokes): allocs/invoke
// (heap objects) and B/invoke, under each of loadCases.
func BenchmarkInvokeAllocs(b *testing.B) {
	for _, tc := range loadCases {
		b.Run(tc.name, func(b *testing.B) {
			debug := freeAddr(b)
			url := startRIE(b, append(tc.flags, "--debug-addr", debug)...)
			measure(b, url, tc.clients, 200) // warm: Init, pools, buffers
			// Reading the figures allocates too: what one reading
			// costs is taken off.
			var mallocs0, bytes0, mallocs1, bytes1 uint64
			measureAfter(b, url, tc.clients, b.N, func() {
				mallocs0, bytes0 = memStats(b, debug)
				mallocs1, bytes1 = memStats(b, debug)
			})
			mallocs2, bytes2 := memStats(b, debug)
			b.ReportMetric(float64(mallocs2-mallocs1-(mallocs1-mallocs0))/float64(b.N), "allocs/invoke")
			b.ReportMetric(float64(bytes2-bytes1-(bytes1-bytes0))/float64(b.N), "B/invoke")
		})
	}
}

// memStats returns the Mallocs and TotalAlloc of the process serving
// net/http/pprof on addr: the heap profile's text form ends with its
// runtime.MemStats.
func memStats(tb testing.TB, addr string) (mallocs, totalAlloc uint64) {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var found int
	for _, line := range strings.Split(string(body), "\n") {
		var v uint64
		if _, err := fmt.Sscanf(line, "# Mallocs = %d", &v); err == nil {
			mallocs, found = v, found+1
		} else if _, err := fmt.Sscanf(line, "# TotalAlloc = %d", &v); err == nil {
			totalAlloc, found = v, found+1
		}
	}
	if found != 2 {
		tb.Fatalf("no Mallocs and TotalAlloc in %s's heap profile", addr)
	}
	return mallocs, totalAlloc
}

// closeAll closes every listener of lns.
func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestFloorRelays runs each floor relay with four runtimes and loads it
// from the moment its invoke endpoint accepts, as BenchmarkVersusFloor
// does: every invoke gets the function's answer. The contract relay once
// let invokes reach a runtime before its environment was recorded (a
// data race under -race, an index out of range without).
func TestFloorRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("starts runtimes")
	}
	for _, mode := range []floorMode{floorBare, floorLogs, floorContract} {
		t.Run(string(mode), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			bootstrap := helloBootstrap(t)
			url := "http://" + ln.Addr().String() + "/invoke"
			loaded := make(chan Stats, 1)
			go func() { // while serveFloor starts the runtimes
				st, _ := Run(context.Background(), Config{URL: url, Payload: []byte(helloPayload), Concurrency: 8,
					Requests: 200, Duration: 30 * time.Second, Check: checkHello})
				loaded <- st
			}()
			stop, err := serveFloor(ln, bootstrap, 4, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if st := <-loaded; st.Errors > 0 || st.Requests != 200 {
				t.Fatalf("%d requests, %d errors; first: %v", st.Requests, st.Errors, st.FirstError)
			}
			// A payload the handler cannot decode: the runtime posts an
			// error, which reaches the client.
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Post(url, "application/json", strings.NewReader("not json"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "errorMessage") {
				t.Errorf("function error: %d %s, want the runtime's error", resp.StatusCode, b)
			}
		})
	}
	if _, err := serveFloor(nil, "", 1, "fast"); err == nil {
		t.Error("an unknown mode was accepted")
	}
}
