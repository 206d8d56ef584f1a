package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startFloor serves the least any emulator must do per invoke, with nothing
// else: an Invoke endpoint that hands the payload to the runtime's next and
// answers with its response. No validation, no logs, no lifecycle. Its
// figures are the floor for the real aws-lambda-go runtime on this machine.
func startFloor(tb testing.TB) string { return startFloorN(tb, 1) }

// startFloorN is startFloor with n runtime processes polling one Runtime
// API endpoint; each answer goes to the client of its request id.
func startFloorN(tb testing.TB, n int) string {
	tb.Helper()
	type event struct {
		body   []byte
		answer chan []byte
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
		if ch, ok := waiting.LoadAndDelete(r.PathValue("id")); ok {
			ch.(chan []byte) <- b
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	var cmds []*exec.Cmd
	tb.Cleanup(func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		srv.Close()
	})
	for range n {
		cmd := exec.Command(helloBootstrap(tb))
		cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_LAMBDA_FUNCTION_NAME=floor",
			"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128")
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	return "http://" + ln.Addr().String() + "/invoke"
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

// BenchmarkVersusFloor measures lambdabox (`lambdabox rie`, its own
// process) and the floor in the same run, alternating in rounds of b.N
// invokes, and reports lambdabox's throughput as a fraction of the
// floor's (x-floor; 1 is the floor). seq: one client, one environment;
// par8: eight clients, a pool of eight; lmi8: eight clients on one Managed
// Instances environment of eight slots (aws-lambda-go's eight workers).
func BenchmarkVersusFloor(b *testing.B) {
	for _, tc := range []struct {
		name    string
		clients int
		flags   []string
	}{
		{"seq", 1, nil},
		{"par8", 8, []string{"--max-concurrency", "8", "--provisioned", "8"}},
		{"lmi8", 8, []string{"--max-concurrency", "1", "--per-environment-concurrency", "8", "--init-at-start"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			floor := startFloorN(b, tc.clients)
			box := startRIE(b, tc.flags...)
			var floorRate, boxRate float64
			const rounds = 3
			for range rounds {
				floorRate += measure(b, floor, tc.clients, b.N)
				boxRate += measure(b, box, tc.clients, b.N)
			}
			b.ReportMetric(floorRate/rounds, "floor-invokes/s")
			b.ReportMetric(boxRate/rounds, "invokes/s")
			b.ReportMetric(boxRate/floorRate, "x-floor")
		})
	}
}

// measure runs n invokes from clients clients against url, after a
// warm-up, and returns the throughput; any error fails b.
func measure(b *testing.B, url string, clients, n int) float64 {
	b.Helper()
	cfg := Config{URL: url, Payload: []byte(helloPayload), Concurrency: clients, Check: checkHello, Client: NewClient(clients)}
	defer cfg.Client.CloseIdleConnections()
	for _, reqs := range []int{200, n} {
		cfg.Requests = reqs
		st, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if st.Errors > 0 {
			b.Fatalf("%s: %d of %d requests failed; first: %v", url, st.Errors, st.Requests, st.FirstError)
		}
		if reqs == n {
			return st.Throughput()
		}
	}
	return 0
}
