package sandboxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
)

// FakeKey is the environment variable that makes RunFake run: "runtime"
// for the fake runtime, or "extension" for a fake extension whose name is
// FakeNameKey's value.
const (
	FakeKey     = "LAMBDABOX_SANDBOXTEST_FAKE"
	FakeNameKey = "LAMBDABOX_SANDBOXTEST_NAME"
)

// RunFake runs the fake runtime or extension when FakeKey says to, and
// then exits; otherwise it returns at once. Call it first in TestMain, so
// that the test binary can be the process a driver under Conformance runs.
func RunFake() {
	switch os.Getenv(FakeKey) {
	case "runtime":
		os.Exit(runFakeRuntime(os.Getenv("AWS_LAMBDA_RUNTIME_API")))
	case "extension":
		os.Exit(RunExtension(context.Background(), os.Getenv("AWS_LAMBDA_RUNTIME_API"), os.Getenv(FakeNameKey), os.Stdout))
	}
}

// The fake runtime's answers, by payload:
//
//	"crash"       exits with status 3
//	"spawn"       starts a `sleep` in a session of its own and answers its pid
//	"memory"      touches 64 MiB, and keeps it
//	"ignore-term" ignores SIGTERM from now on
//	"api"         answers AWS_LAMBDA_RUNTIME_API
//	anything else is echoed
//
// It writes "runtime started" to stdout when it starts.
func runFakeRuntime(api string) int {
	fmt.Println("runtime started")
	base := "http://" + api + "/2018-06-01/runtime/invocation/"
	var kept [][]byte // what "memory" touched, kept resident
	defer runtimeKeepAlive(&kept)
	for {
		resp, err := http.Get(base + "next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			return 1
		}
		payload, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		answer := payload
		switch string(payload) {
		case `"crash"`:
			return 3
		case `"spawn"`:
			cmd := exec.Command("sleep", "600")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				answer = []byte(strconv.Quote(err.Error()))
			} else {
				answer = []byte(strconv.Itoa(cmd.Process.Pid))
			}
		case `"memory"`:
			b := make([]byte, 64<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			kept = append(kept, b)
		case `"ignore-term"`:
			signal.Ignore(syscall.SIGTERM)
		case `"api"`:
			answer = []byte(strconv.Quote(api))
		}
		r, err := http.Post(base+id+"/response", "application/json", bytes.NewReader(answer))
		if err != nil {
			fmt.Fprintln(os.Stderr, "response:", err)
			return 1
		}
		r.Body.Close()
	}
}

// runtimeKeepAlive keeps what the fake runtime touched from being
// collected before it exits.
func runtimeKeepAlive(kept *[][]byte) { goruntime.KeepAlive(*kept) }

// RunExtension is the fake external extension. It registers as name for
// INVOKE and SHUTDOWN at the Extensions API on api (host:port), writes
// "extension <name> started" to out, and waits for events until SHUTDOWN
// or ctx ends, returning its exit status: 0, or 1 when the API fails. An
// extension whose name contains "crash" exits with status 2 once it has
// registered.
func RunExtension(ctx context.Context, api, name string, out io.Writer) int {
	base := "http://" + api + "/2020-01-01/extension/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"register", strings.NewReader(`{"events":["INVOKE","SHUTDOWN"]}`))
	if err != nil {
		return 1
	}
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	fmt.Fprintf(out, "extension %s started\n", name)
	if strings.Contains(name, "crash") {
		return 2
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"event/next", nil)
		if err != nil {
			return 1
		}
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return 1
		}
		var ev struct {
			EventType string `json:"eventType"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		if err != nil {
			return 1
		}
		if ev.EventType == "SHUTDOWN" {
			return 0
		}
	}
}
