package bench

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// startFloor serves the least any emulator must do per invoke, with nothing
// else: an Invoke endpoint that hands the payload to the runtime's next and
// answers with its response. No validation, no logs, no lifecycle. Its
// figures are the floor for the real aws-lambda-go runtime on this machine.
func startFloor(tb testing.TB) string {
	tb.Helper()
	type answer struct{ body []byte }
	events := make(chan []byte)
	answers := make(chan answer)
	id := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		events <- b
		a := <-answers
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(a.body)
	})
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		var b []byte
		select {
		case b = <-events:
		case <-r.Context().Done():
			return
		}
		id++
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", strconv.Itoa(id))
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:012345678912:function:floor")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		answers <- answer{b}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	cmd := exec.Command(helloBootstrap(tb))
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_LAMBDA_FUNCTION_NAME=floor",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		srv.Close()
	})
	return "http://" + ln.Addr().String() + "/invoke"
}

// BenchmarkFloorSequential measures the minimal platform of startFloor with
// one sequential client: what an emulator costs when it costs nothing.
func BenchmarkFloorSequential(b *testing.B) {
	url := startFloor(b)
	st := runLoad(b, Config{URL: url, Payload: []byte(helloPayload), Concurrency: 1, Check: checkHello}, 100, "invokes/s")
	reportRatio(b, st)
}
