package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Arguments that make the bench test binary play a part in TestChaosSoak
// instead of running tests (see TestMain). Both carry the soak's marker as
// their next argument, so that every process the soak started can be found
// in /proc.
const (
	chaosRuntimeArg = "lambdabox-chaos-runtime"
	chaosChildArg   = "lambdabox-chaos-child"
)

// chaosEvent is the payload TestChaosSoak sends; Action picks what the
// runtime does with it.
type chaosEvent struct {
	Action  string `json:"action"`
	N       int    `json:"n"`                  // a unique number, echoed back
	SleepMS int    `json:"sleep_ms,omitempty"` // for "echo" and "event": time to take
}

// Actions of the chaos runtime.
const (
	actEcho          = "echo"          // answer with the event
	actError         = "error"         // report a function error, Chaos.Error
	actPanic         = "panic"         // crash with an unrecovered panic
	actExit          = "exit"          // os.Exit(3) mid-invoke
	actTimeout       = "timeout"       // sleep past the function timeout
	actStream        = "stream"        // answer in streaming mode, in chunks
	actStreamTimeout = "streamtimeout" // start a streamed answer, then sleep past the timeout
	actSetsid        = "setsid"        // start a setsid child (holding stdout open), then echo
	actEvent         = "event"         // an Event invoke: record the request id, then answer
)

// streamChunks is what actStream sends, one chunk at a time.
var streamChunks = []string{`{"chunks":[`, `"one",`, `"two",`, `"three"`, `]}`}

// runChaosRuntime is a raw Runtime API client (no RIC) that misbehaves as
// each event asks. CHAOS_RUNS names the file Event invokes append their
// request ids to; the marker is passed on to setsid children.
func runChaosRuntime(marker string) {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	timeout := 2 * time.Second
	if v, err := time.ParseDuration(os.Getenv("CHAOS_TIMEOUT")); err == nil {
		timeout = v
	}
	post := func(path, contentType string, body io.Reader, header ...string) {
		req, err := http.NewRequest(http.MethodPost, base+path, body)
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos runtime:", err)
			os.Exit(2)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for {
		resp, err := http.Get(base + "next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos runtime: next:", err)
			os.Exit(2)
		}
		payload, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var ev chaosEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			post(id+"/error", "application/json", strings.NewReader(`{"errorType":"Chaos.BadEvent","errorMessage":"not a chaos event"}`))
			continue
		}
		fmt.Printf("chaos %s %d\n", ev.Action, ev.N)
		switch ev.Action {
		case actEcho:
			time.Sleep(time.Duration(ev.SleepMS) * time.Millisecond)
			post(id+"/response", "application/json", strings.NewReader(string(payload)))
		case actError:
			post(id+"/error", "application/json", strings.NewReader(`{"errorType":"Chaos.Error","errorMessage":"asked to fail"}`),
				"Lambda-Runtime-Function-Error-Type", "Chaos.Error")
		case actPanic:
			panic(fmt.Sprintf("chaos: asked to panic (%d)", ev.N))
		case actExit:
			os.Exit(3)
		case actTimeout:
			time.Sleep(3 * timeout)
			post(id+"/response", "application/json", strings.NewReader(`"too late"`))
		case actStream, actStreamTimeout:
			pr, pw := io.Pipe()
			go func() {
				for i, c := range streamChunks {
					if ev.Action == actStreamTimeout && i == 2 {
						time.Sleep(3 * timeout)
					}
					if _, err := io.WriteString(pw, c); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
				pw.Close()
			}()
			post(id+"/response", "application/json", pr, "Lambda-Runtime-Function-Response-Mode", "streaming")
		case actSetsid:
			// A daemon: its own session, outside the runtime's process
			// group, holding the runtime's stdout open.
			c := exec.Command(os.Args[0], chaosChildArg, marker)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				post(id+"/error", "application/json", strings.NewReader(`{"errorType":"Chaos.Setsid","errorMessage":"`+err.Error()+`"}`))
				continue
			}
			_ = c.Process.Release()
			post(id+"/response", "application/json", strings.NewReader(string(payload)))
		case actEvent:
			if f, err := os.OpenFile(os.Getenv("CHAOS_RUNS"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
				_, _ = f.WriteString(id + "\n")
				f.Close()
			}
			time.Sleep(time.Duration(ev.SleepMS) * time.Millisecond)
			post(id+"/response", "application/json", strings.NewReader(`"recorded"`))
		default:
			post(id+"/error", "application/json", strings.NewReader(`{"errorType":"Chaos.BadEvent","errorMessage":"unknown action"}`))
		}
	}
}

// runChaosChild is a setsid child, as stubborn as a nohup'ed daemon: it
// ignores SIGHUP, SIGTERM and SIGPIPE, and lives (writing to the stdout it
// inherited now and then) until killed, for at most ten minutes.
func runChaosChild() {
	signal.Ignore(syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE)
	for range 600 {
		time.Sleep(time.Second)
		fmt.Println("chaos child still alive")
	}
}
