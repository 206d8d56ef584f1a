package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	stop, err := serveFloor(ln, helloBootstrap(tb), n, false)
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

// startFloorProcess is startFloorN with the relay in a process of its own,
// as every emulator is: the clients and the relay no longer share one Go
// scheduler. With logs, it also keeps the least of Lambda's log contract:
// the runtimes' output read from a pipe, and START, END and REPORT lines
// written (to /dev/null, where lambdabox's output goes in these benchmarks).
func startFloorProcess(tb testing.TB, n int, logs bool) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	mode := "nologs"
	if logs {
		mode = "logs"
	}
	cmd := exec.Command(self, floorRelayArg, addr, helloBootstrap(tb), strconv.Itoa(n), mode)
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
		return fmt.Errorf("want ADDR BOOTSTRAP RUNTIMES logs|nologs, got %q", args)
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	stop, err := serveFloor(ln, args[1], n, args[3] == "logs")
	if err != nil {
		return err
	}
	defer stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// serveFloor serves the floor relay on ln with n runtimes of bootstrap,
// with or without the log contract (see startFloorProcess); stop ends the
// runtimes and the server.
func serveFloor(ln net.Listener, bootstrap string, n int, logs bool) (stop func(), err error) {
	type event struct {
		body   []byte
		answer chan []byte
	}
	var out *os.File // the log's destination, with logs
	if logs {
		if out, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return nil, err
		}
	}
	events := make(chan event)
	var waiting sync.Map // request id → chan []byte
	var id atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ev := event{b, make(chan []byte, 1)}
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
		rid := strconv.FormatInt(id.Add(1), 10)
		waiting.Store(rid, ev.answer)
		if logs {
			_, _ = out.WriteString("START RequestId: " + rid + " Version: $LATEST\n")
		}
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", rid)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:012345678912:function:floor")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		_, _ = w.Write(ev.body)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rid := r.PathValue("id")
		if logs {
			_, _ = out.WriteString("END RequestId: " + rid + "\nREPORT RequestId: " + rid + "\tDuration: 1.00 ms\n")
		}
		if ch, ok := waiting.LoadAndDelete(rid); ok {
			ch.(chan []byte) <- b
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	var cmds []*exec.Cmd
	stop = func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		srv.Close()
		if out != nil {
			out.Close()
		}
	}
	for range n {
		cmd := exec.Command(bootstrap)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_LAMBDA_FUNCTION_NAME=floor",
			"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128")
		if logs {
			// An io.Writer that is not an *os.File: os/exec makes the
			// pipe and copies it, in a goroutine of its own, to out.
			cmd.Stdout = struct{ io.Writer }{out}
		}
		if err := cmd.Start(); err != nil {
			stop()
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
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
// process) and the floor in the same run, alternating in rounds of b.N
// invokes, and reports lambdabox's throughput as a fraction of the
// floor's (x-floor; 1 is the floor). seq: one client, one environment;
// par8: eight clients, a pool of eight; lmi8: eight clients on one Managed
// Instances environment of eight slots (aws-lambda-go's eight workers).
func BenchmarkVersusFloor(b *testing.B) {
	for _, tc := range loadCases {
		b.Run(tc.name, func(b *testing.B) {
			floor := startFloorN(b, tc.clients)
			proc := startFloorProcess(b, tc.clients, false)
			logged := startFloorProcess(b, tc.clients, true)
			box := startRIE(b, tc.flags...)
			var floorRate, procRate, loggedRate, boxRate float64
			const rounds = 3
			for range rounds {
				floorRate += measure(b, floor, tc.clients, b.N)
				procRate += measure(b, proc, tc.clients, b.N)
				loggedRate += measure(b, logged, tc.clients, b.N)
				boxRate += measure(b, box, tc.clients, b.N)
			}
			b.ReportMetric(floorRate/rounds, "floor-invokes/s")
			b.ReportMetric(boxRate/rounds, "invokes/s")
			b.ReportMetric(boxRate/floorRate, "x-floor")
			b.ReportMetric(boxRate/procRate, "x-floor-process")
			b.ReportMetric(boxRate/loggedRate, "x-floor-logged")
			b.ReportMetric(loggedRate/floorRate, "logged-x-floor")
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
