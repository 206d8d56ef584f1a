package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goRIE runs the aws-lambda-go test function under lambdabox rie.
func goRIE(t *testing.T, flags ...string) *emulator {
	return startRIE(t, rieOpts{flags: flags, command: []string{goFnBin}})
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", body, err)
	}
	return m
}

func wantFunctionError(t *testing.T, resp *http.Response, body, errorType, msgPart string) {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Amz-Function-Error"); got != "Unhandled" {
		t.Errorf("X-Amz-Function-Error = %q, want Unhandled", got)
	}
	m := decode(t, body)
	if m["errorType"] != errorType {
		t.Errorf("errorType = %v, want %s (body %s)", m["errorType"], errorType, body)
	}
	if msg, _ := m["errorMessage"].(string); !strings.Contains(msg, msgPart) {
		t.Errorf("errorMessage = %q, want it to contain %q", msg, msgPart)
	}
}

func wantAPIError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("X-Amzn-ErrorType"); got != code {
		t.Errorf("X-Amzn-ErrorType = %q, want %q", got, code)
	}
	m := decode(t, body)
	if m["Type"] == nil || m["Message"] == nil {
		t.Errorf("body %s lacks Type or Message", body)
	}
}

var reportRE = regexp.MustCompile(`REPORT RequestId: (\S+)\tDuration: [0-9.]+ ms\tBilled Duration: \d+ ms\tMemory Size: (\d+) MB\tMax Memory Used: (\d+) MB(\tInit Duration: [0-9.]+ ms)?`)

func TestGoEcho(t *testing.T) {
	e := goRIE(t, "--memory-size", "512")
	for i, wantInit := range []bool{true, false} {
		resp, body := e.invoke(t, "function", fmt.Sprintf(`{"data":{"n":%d}}`, i))
		if resp.StatusCode != 200 || body != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("invoke %d: %d %s", i, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if v := resp.Header.Get("X-Amz-Executed-Version"); v != "$LATEST" {
			t.Errorf("X-Amz-Executed-Version = %q", v)
		}
		if resp.Header.Get("X-Amz-Function-Error") != "" {
			t.Errorf("unexpected X-Amz-Function-Error")
		}
		id := resp.Header.Get("X-Amzn-Requestid")
		var m []string
		waitFor(t, "the REPORT line", func() bool {
			for _, mm := range reportRE.FindAllStringSubmatch(e.Stdout.String(), -1) {
				if mm[1] == id {
					m = mm
				}
			}
			return m != nil
		})
		if !strings.Contains(e.Stdout.String(), "START RequestId: "+id+" Version: $LATEST") {
			t.Errorf("no START line for %s", id)
		}
		if m[2] != "512" {
			t.Errorf("Memory Size = %s, want 512", m[2])
		}
		if used, _ := strconv.Atoi(m[3]); used < 1 || used >= 512 {
			t.Errorf("Max Memory Used = %d MB, want a measured figure", used)
		}
		if (m[4] != "") != wantInit {
			t.Errorf("invoke %d: Init Duration present = %v, want %v", i, m[4] != "", wantInit)
		}
	}
}

func TestGoHandlerErrorAndPanic(t *testing.T) {
	e := goRIE(t)
	resp, body := e.invoke(t, "function", `{"op":"error","name":"x"}`)
	wantFunctionError(t, resp, body, "errorString", "boom: x")

	resp, body = e.invoke(t, "function", `{"op":"panic","name":"p"}`)
	if resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(body, "panic: p") {
		t.Errorf("panic: %v %s", resp.Header, body)
	}
	// aws-lambda-go exits after a panic; the next invoke runs a new Init.
	resp, body = e.invoke(t, "function", `{"data":"again"}`)
	if resp.StatusCode != 200 || body != `"again"` {
		t.Errorf("after panic: %d %s", resp.StatusCode, body)
	}
}

func TestGoExitMidInvoke(t *testing.T) {
	e := goRIE(t)
	resp, body := e.invoke(t, "function", `{"op":"exit"}`)
	wantFunctionError(t, resp, body, "Runtime.ExitError", "Runtime exited with error: exit status 3")
	if id := resp.Header.Get("X-Amzn-Requestid"); !strings.Contains(body, "RequestId: "+id) {
		t.Errorf("error %s does not name request %s", body, id)
	}
	resp, body = e.invoke(t, "function", `{"data":1}`)
	if resp.StatusCode != 200 || body != "1" {
		t.Errorf("after exit: %d %s", resp.StatusCode, body)
	}
}

func TestGoTimeout(t *testing.T) {
	e := goRIE(t, "--timeout", "1s")
	start := time.Now()
	resp, body := e.invoke(t, "function", `{"op":"sleep","ms":5000}`)
	wantFunctionError(t, resp, body, "Sandbox.Timedout", "Task timed out after 1.00 seconds")
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("timeout answered after %v", d)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	waitFor(t, "the timeout log line", func() bool {
		return strings.Contains(e.Stdout.String(), id+" Task timed out after 1.00 seconds")
	})
	resp, body = e.invoke(t, "function", `{"data":"fresh"}`)
	if resp.StatusCode != 200 || body != `"fresh"` {
		t.Errorf("after timeout: %d %s", resp.StatusCode, body)
	}
}

func TestGoPayloadLimits(t *testing.T) {
	e := goRIE(t)
	resp, body := e.invoke(t, "function", `{"op":"big","size":7000000}`)
	wantFunctionError(t, resp, body, "Function.ResponseSizeTooLarge", "exceeded maximum allowed payload size (6291556 bytes)")

	// A request at exactly the limit goes through whole; one byte more is refused.
	data := strings.Repeat("y", 6291456-len(`{"data":""}`))
	resp, body = e.invoke(t, "function", `{"data":"`+data+`"}`)
	if resp.StatusCode != 200 || body != `"`+data+`"` {
		t.Errorf("limit-sized request: status %d, %d bytes back", resp.StatusCode, len(body))
	}
	resp, body = e.invoke(t, "function", `{"data":"`+data+`y"}`)
	wantAPIError(t, resp, body, 413, "RequestTooLargeException")
}

func TestGoLogTail(t *testing.T) {
	e := goRIE(t)
	resp, _ := e.invoke(t, "function", `{"data":"tailme"}`, "X-Amz-Log-Type", "Tail")
	b, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	id := resp.Header.Get("X-Amzn-Requestid")
	for _, want := range []string{"START RequestId: " + id, "echo: tailme", "END RequestId: " + id, "REPORT RequestId: " + id} {
		if !strings.Contains(log, want) {
			t.Errorf("log tail lacks %q:\n%s", want, log)
		}
	}
	if resp, _ := e.invoke(t, "function", `{}`); resp.Header.Get("X-Amz-Log-Result") != "" {
		t.Errorf("X-Amz-Log-Result without LogType Tail")
	}
}

func TestGoContext(t *testing.T) {
	e := goRIE(t, "--timeout", "30s", "--function-name", "ctxfn")
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"},"client":{"installation_id":"i1"}}`))
	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	resp, body := e.invoke(t, "ctxfn", `{"op":"context"}`,
		"X-Amz-Client-Context", cc, "X-Amzn-Trace-Id", trace,
		"X-Lambdabox-Cognito-Identity", `{"cognitoIdentityId":"id1","cognitoIdentityPoolId":"pool1"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	m := decode(t, body)
	if m["requestId"] != resp.Header.Get("X-Amzn-Requestid") {
		t.Errorf("requestId %v != x-amzn-RequestId %s", m["requestId"], resp.Header.Get("X-Amzn-Requestid"))
	}
	if m["functionArn"] != "arn:aws:lambda:us-east-1:012345678912:function:ctxfn" {
		t.Errorf("functionArn = %v", m["functionArn"])
	}
	if ms := m["remainingMs"].(float64); ms < 28000 || ms > 30000 {
		t.Errorf("remaining time %v ms, want about 30000", ms)
	}
	if m["traceId"] != trace || m["xrayEnv"] != trace {
		t.Errorf("trace id: ctx %v, env %v", m["traceId"], m["xrayEnv"])
	}
	ccGot, _ := json.Marshal(m["clientContext"])
	if !strings.Contains(string(ccGot), `"k":"v"`) || !strings.Contains(string(ccGot), "i1") {
		t.Errorf("client context = %s", ccGot)
	}
	if id, _ := json.Marshal(m["identity"]); !strings.Contains(string(id), "pool1") {
		t.Errorf("cognito identity = %s", id)
	}

	// Without a trace header one is generated.
	_, body = e.invoke(t, "ctxfn", `{"op":"context"}`)
	if tr, _ := decode(t, body)["traceId"].(string); !regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`).MatchString(tr) {
		t.Errorf("generated trace id %q", tr)
	}
}

func TestGoEnvironment(t *testing.T) {
	e := startRIE(t, rieOpts{
		flags:   []string{"--env", "WITH_EQUALS=a=b=c", "--env", "AWS_LAMBDA_FUNCTION_NAME=hijack"},
		command: []string{goFnBin, "my.handler"},
		env:     []string{"FROM_PARENT=x=y", "AWS_LAMBDA_FUNCTION_NAME=envfn", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"},
	})
	for name, want := range map[string]string{
		"WITH_EQUALS":                     "a=b=c",
		"FROM_PARENT":                     "x=y",
		"AWS_LAMBDA_FUNCTION_NAME":        "envfn",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/envfn",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      "us-east-1",
		"_HANDLER":                        "my.handler",
		"LAMBDA_RUNTIME_DIR":              "/var/runtime",
	} {
		_, body := e.invoke(t, "envfn", `{"op":"env","name":"`+name+`"}`)
		if got := decode(t, body)["value"]; got != want {
			t.Errorf("%s = %v, want %q", name, got, want)
		}
	}
	_, body := e.invoke(t, "envfn", `{"op":"env","name":"AWS_LAMBDA_LOG_STREAM_NAME"}`)
	if v, _ := decode(t, body)["value"].(string); !regexp.MustCompile(`^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$`).MatchString(v) {
		t.Errorf("log stream name %q", v)
	}
	_, body = e.invoke(t, "envfn", `{"op":"env","name":"AWS_LAMBDA_RUNTIME_API"}`)
	if v, _ := decode(t, body)["value"].(string); !strings.HasPrefix(v, "127.0.0.1:") {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q", v)
	}
}

func TestInvokeBadInput(t *testing.T) {
	e := goRIE(t)
	cases := []struct {
		name, fn, body string
		headers        []string
		status         int
		code           string
	}{
		{"unknown function", "nope", `{}`, nil, 404, "ResourceNotFoundException"},
		{"unknown qualifier", "function:v9", `{}`, nil, 404, "ResourceNotFoundException"},
		{"invalid JSON", "function", `{"a":`, nil, 400, "InvalidRequestContentException"},
		{"client context not base64", "function", `{}`, []string{"X-Amz-Client-Context", "%%%"}, 400, "InvalidParameterValueException"},
		{"client context not JSON", "function", `{}`, []string{"X-Amz-Client-Context", base64.StdEncoding.EncodeToString([]byte("nope"))}, 400, "InvalidParameterValueException"},
		{"client context too large", "function", `{}`, []string{"X-Amz-Client-Context", base64.StdEncoding.EncodeToString([]byte(`{"a":"` + strings.Repeat("a", 3000) + `"}`))}, 400, "InvalidParameterValueException"},
		{"unknown invocation type", "function", `{}`, []string{"X-Amz-Invocation-Type", "Sometimes"}, 400, "InvalidParameterValueException"},
		{"unknown log type", "function", `{}`, []string{"X-Amz-Log-Type", "All"}, 400, "InvalidParameterValueException"},
		{"tail on event", "function", `{}`, []string{"X-Amz-Invocation-Type", "Event", "X-Amz-Log-Type", "Tail"}, 400, "InvalidParameterValueException"},
		{"async too large", "function", `"` + strings.Repeat("a", 1048576) + `"`, []string{"X-Amz-Invocation-Type", "Event"}, 413, "RequestTooLargeException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.invoke(t, c.fn, c.body, c.headers...)
			wantAPIError(t, resp, body, c.status, c.code)
		})
	}
	resp, body := e.do(t, http.MethodGet, "/2015-03-31/functions/function/invocations", nil)
	if resp.StatusCode < 400 {
		t.Errorf("GET invocations: %d %s", resp.StatusCode, body)
	}
	// The server survived all of it.
	if resp, body := e.invoke(t, "function", `{"data":"ok"}`); body != `"ok"` {
		t.Fatalf("after bad input: %d %s", resp.StatusCode, body)
	}
}

func TestInvokeNames(t *testing.T) {
	e := goRIE(t, "--function-name", "named")
	for _, name := range []string{
		"named", "function", "named:$LATEST",
		"arn:aws:lambda:us-east-1:012345678912:function:named",
		"arn:aws:lambda:us-east-1:012345678912:function:named:$LATEST",
		"012345678912:function:named",
	} {
		resp, body := e.invoke(t, name, `{"data":1}`)
		if resp.StatusCode != 200 || body != "1" {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body := e.do(t, http.MethodPost, "/2015-03-31/functions/named/invocations?Qualifier=%24LATEST", strings.NewReader(`{"data":2}`))
	if resp.StatusCode != 200 || body != "2" {
		t.Errorf("Qualifier=$LATEST: %d %s", resp.StatusCode, body)
	}
}

func TestInvocationTypes(t *testing.T) {
	e := goRIE(t)
	resp, _ := e.invoke(t, "function", `{}`, "X-Amz-Invocation-Type", "DryRun")
	if resp.StatusCode != 204 {
		t.Errorf("DryRun: %d", resp.StatusCode)
	}
	resp, _ = e.invoke(t, "function", `{"data":"async-marker"}`, "X-Amz-Invocation-Type", "Event")
	if resp.StatusCode != 202 {
		t.Errorf("Event: %d", resp.StatusCode)
	}
	waitFor(t, "the async invoke to run", func() bool { return strings.Contains(e.Stdout.String(), "echo: async-marker") })
}

func TestMisbehavingRuntime(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[string]string{
		"badid":     `FAKE badid status=400 body={"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}`,
		"twice":     `FAKE twice first=202 second=403 body={"errorMessage":`,
		"nextagain": `FAKE nextagain status=403 body={"errorMessage":`,
	} {
		t.Run(mode, func(t *testing.T) {
			e := startRIE(t, rieOpts{command: []string{self}, env: []string{"LAMBDABOX_TEST_RUNTIME=" + mode}})
			resp, body := e.invoke(t, "function", `{}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Errorf("invoke: %d %v %s", resp.StatusCode, resp.Header, body)
			}
			waitFor(t, "the fake runtime's report", func() bool { return strings.Contains(e.Stdout.String(), want) })
			if mode == "twice" && body != `"first"` {
				t.Errorf("body = %s, want the first response", body)
			}
			// The server survives and keeps serving.
			if resp, _ := e.invoke(t, "function", `{}`); resp.StatusCode != 200 {
				t.Errorf("second invoke: %d", resp.StatusCode)
			}
		})
	}
	t.Run("badtype", func(t *testing.T) {
		e := startRIE(t, rieOpts{command: []string{self}, env: []string{"LAMBDABOX_TEST_RUNTIME=badtype"}})
		resp, body := e.invoke(t, "function", `{}`)
		if resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || body != `{"errorMessage":"m","errorType":"x"}` {
			t.Errorf("error body not passed through: %v %s", resp.Header, body)
		}
	})
}

func TestInvalidEntrypoint(t *testing.T) {
	notExec := t.TempDir() + "/bootstrap"
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]string{"missing": "/nonexistent/bootstrap", "not executable": notExec} {
		t.Run(name, func(t *testing.T) {
			e := startRIE(t, rieOpts{command: []string{cmd}})
			resp, body := e.invoke(t, "function", `{}`)
			wantFunctionError(t, resp, body, "Runtime.InvalidEntrypoint", cmd)
		})
	}
}

func TestDropInCommandLine(t *testing.T) {
	// Under the name aws-lambda-rie, with flags after the bootstrap.
	e := startRIE(t, rieOpts{argv0: "aws-lambda-rie", command: []string{goFnBin, "--log-level", "debug", "h.handler"}})
	_, body := e.invoke(t, "function", `{"op":"env","name":"_HANDLER"}`)
	if got := decode(t, body)["value"]; got != "h.handler" {
		t.Errorf("_HANDLER = %v", got)
	}
	for _, args := range [][]string{{"rie", "--help"}, {"rie", "-h"}} {
		out, err := exec.Command(lambdaboxBin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--runtime-interface-emulator-address") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

func TestSIGTERMShutdown(t *testing.T) {
	e := goRIE(t)
	_, body := e.invoke(t, "function", `{"op":"env","name":"AWS_LAMBDA_RUNTIME_API"}`)
	if body == "" {
		t.Fatal("no answer")
	}
	e.stop(t)
	if !e.cmd.ProcessState.Success() {
		t.Errorf("exit after SIGTERM: %v\n%s", e.cmd.ProcessState, e.Stderr)
	}
	// The runtime went with it.
	if ps := pids(t, goFnBin); len(ps) > 0 {
		t.Errorf("runtime still running after shutdown: pids %v", ps)
	}
}

func TestInitAtStart(t *testing.T) {
	e := goRIE(t, "--init-at-start")
	// The runtime is up before any invoke: its Runtime API has been called.
	waitFor(t, "a runtime running after --init-at-start", func() bool { return len(pids(t, goFnBin)) == 1 })
	if resp, body := e.invoke(t, "function", `{"data":1}`); body != "1" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}
