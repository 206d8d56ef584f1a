package service

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// fakeRuntimeEnv makes the test binary, re-executed by the process driver,
// a runtime (see TestMain).
const fakeRuntimeEnv = "LAMBDABOX_SERVICE_FAKE_RUNTIME"

// fakeEvent is what the fake runtime does with an invocation.
type fakeEvent struct {
	Op   string `json:"op"`   // "" (echo), "sleep", "linger", "env", "error", "exit", "stream", "streamerror"
	MS   int    `json:"ms"`   // for sleep, and linger: after the answer, before next
	Name string `json:"name"` // for env: the variable answered as data
	Data any    `json:"data"` // echoed
}

// fakeAnswer is the fake runtime's response: the data it was given and the
// FAKE_VERSION of its environment, so tests can tell which code ran.
type fakeAnswer struct {
	Version string `json:"v"`
	PID     int    `json:"pid"`
	Data    any    `json:"data"`
}

// runFakeRuntime is a Runtime API client: GET next, act, POST the answer.
func runFakeRuntime() {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	version := os.Getenv("FAKE_VERSION")
	for {
		resp, err := http.Get(base + "next")
		if err != nil {
			os.Exit(2)
		}
		payload, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var ev fakeEvent
		_ = json.Unmarshal(payload, &ev)
		var http struct {
			Body string `json:"body"`
		}
		if ev.Op == "" && json.Unmarshal(payload, &http) == nil && http.Body != "" {
			_ = json.Unmarshal([]byte(http.Body), &ev) // a function URL's or route's event
		}
		if ev.Op == "env" {
			ev.Data = os.Getenv(ev.Name)
		}
		answer, _ := json.Marshal(fakeAnswer{Version: version, PID: os.Getpid(), Data: ev.Data})
		fmt.Printf("fake runtime %s: %s\n", version, ev.Op)
		switch ev.Op {
		case "sleep":
			time.Sleep(time.Duration(ev.MS) * time.Millisecond)
		case "error":
			post(base+id+"/error", `{"errorType":"Fake.Error","errorMessage":"asked to fail"}`, nil)
			continue
		case "exit":
			os.Exit(3)
		case "stream", "streamerror":
			stream(base+id+"/response", ev.Op == "streamerror")
			continue
		}
		post(base+id+"/response", string(answer), nil)
		if ev.Op == "linger" {
			time.Sleep(time.Duration(ev.MS) * time.Millisecond)
		}
	}
}

// post sends body to url with the headers h.
func post(url, body string, h http.Header) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		os.Exit(2)
	}
	resp.Body.Close()
}

// stream posts a streamed response in three chunks, 50 ms apart; with
// fail, it ends with an error in the trailers.
func stream(url string, fail bool) {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Header.Set("Content-Type", "text/plain")
	if fail {
		req.Trailer = http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
	}
	go func() {
		for i := range 3 {
			fmt.Fprintf(pw, "chunk%d;", i)
			time.Sleep(50 * time.Millisecond)
		}
		if fail {
			req.Trailer.Set("Lambda-Runtime-Function-Error-Type", "Fake.StreamError")
			req.Trailer.Set("Lambda-Runtime-Function-Error-Body", base64.StdEncoding.EncodeToString([]byte(`{"errorType":"Fake.StreamError","errorMessage":"mid-stream"}`)))
		}
		pw.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		os.Exit(2)
	}
	resp.Body.Close()
}
