package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// Tests running the official Python Runtime Interface Client (awslambdaric,
// from PyPI) under lambdabox rie, with the handlers in testdata/python.

// pythonRIE runs "python3 -m awslambdaric <handler>" in testdata/python.
func pythonRIE(t *testing.T, handler string, flags ...string) *emulator {
	t.Helper()
	py := requirePython(t, "awslambdaric")
	return startRIE(t, rieOpts{
		flags:   flags,
		command: []string{py, "-m", "awslambdaric", handler},
		dir:     testdataDir(t, "python"),
	})
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("%q is not JSON: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func jsonKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestPythonEcho(t *testing.T) {
	e := pythonRIE(t, "app.handler")
	for i, payload := range []string{`{"data":{"n":1,"s":"héllo","l":[1,2,3]}}`, `{"data":"again"}`} {
		resp, body := e.invoke(t, "function", payload)
		if resp.StatusCode != 200 {
			t.Fatalf("invoke %d: %d %s\nstderr:\n%s", i, resp.StatusCode, body, e.Stderr)
		}
		var want map[string]json.RawMessage
		_ = json.Unmarshal([]byte(payload), &want)
		if !sameJSON(t, body, string(want["data"])) {
			t.Errorf("invoke %d: body %s, want %s", i, body, want["data"])
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if fe := resp.Header.Get("X-Amz-Function-Error"); fe != "" {
			t.Errorf("unexpected X-Amz-Function-Error %q", fe)
		}
		if v := resp.Header.Get("X-Amz-Executed-Version"); v != "$LATEST" {
			t.Errorf("X-Amz-Executed-Version = %q", v)
		}
	}
}

func TestPythonHandlerException(t *testing.T) {
	e := pythonRIE(t, "app.handler")
	resp, body := e.invoke(t, "function", `{"op":"error","name":"py"}`)
	wantFunctionError(t, resp, body, "HandlerFailure", "boom: py")
	m := decode(t, body)
	// The RIC's body reaches the invoker untouched: its keys, its request
	// id, its stack trace, and Python's own JSON spacing.
	if keys := jsonKeys(m); !reflect.DeepEqual(keys, []string{"errorMessage", "errorType", "requestId", "stackTrace"}) {
		t.Errorf("error body keys = %v, want the RIC's errorMessage errorType requestId stackTrace", keys)
	}
	if id := resp.Header.Get("X-Amzn-Requestid"); m["requestId"] != id {
		t.Errorf("requestId = %v, want the invoke's id %s", m["requestId"], id)
	}
	if st, _ := json.Marshal(m["stackTrace"]); !strings.Contains(string(st), "app.py") || !strings.Contains(string(st), "raise HandlerFailure") {
		t.Errorf("stackTrace = %s, want the handler's frame", st)
	}
	if !strings.HasPrefix(body, `{"errorMessage": "boom: py", "errorType": "HandlerFailure"`) {
		t.Errorf("body was re-encoded, not passed through: %s", body)
	}
	// The runtime survives a handler exception.
	if resp, body := e.invoke(t, "function", `{"data":1}`); resp.StatusCode != 200 || body != "1" {
		t.Errorf("after the exception: %d %s", resp.StatusCode, body)
	}
}

func TestPythonInitErrors(t *testing.T) {
	for _, c := range []struct {
		name, handler, errorType, msg string
	}{
		{"module missing", "nosuchmodule.handler", "Runtime.ImportModuleError", "Unable to import module 'nosuchmodule': No module named 'nosuchmodule'"},
		{"import raises ImportError", "broken_import.handler", "Runtime.ImportModuleError", "Unable to import module 'broken_import': No module named 'lambdabox_no_such_dependency'"},
		{"function missing", "app.nosuchfunction", "Runtime.HandlerNotFound", "Handler 'nosuchfunction' missing on module 'app'"},
		{"malformed handler", "app", "Runtime.MalformedHandlerName", "Bad handler 'app'"},
		{"syntax error", "bad_syntax.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'bad_syntax'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := pythonRIE(t, c.handler)
			for i := 1; i <= 2; i++ {
				resp, body := e.invoke(t, "function", `{"data":1}`)
				wantFunctionError(t, resp, body, c.errorType, c.msg)
				m := decode(t, body)
				if keys := jsonKeys(m); !reflect.DeepEqual(keys, []string{"errorMessage", "errorType", "requestId", "stackTrace"}) {
					t.Errorf("invoke %d: error body keys = %v, want the RIC's own init error body", i, keys)
				}
				if !strings.HasPrefix(body, `{"errorMessage": `) {
					t.Errorf("invoke %d: body was re-encoded, not passed through: %s", i, body)
				}
				// Init is retried: the RIC reports the failure once per attempt.
				waitFor(t, fmt.Sprintf("init attempt %d in the log", i), func() bool {
					return strings.Count(e.Stdout.String()+e.Stderr.String(), "[ERROR] "+c.errorType) >= i
				})
			}
		})
	}
}

func TestPythonContext(t *testing.T) {
	e := pythonRIE(t, "app.handler", "--timeout", "30s", "--function-name", "pyctx")
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v","n":2},"client":{"installation_id":"inst-1"},"env":{"locale":"en"}}`))
	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	resp, body := e.invoke(t, "pyctx", `{"op":"context"}`, "X-Amz-Client-Context", cc, "X-Amzn-Trace-Id", trace)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("%d %v %s\nstdout:\n%s", resp.StatusCode, resp.Header, body, e.Stdout)
	}
	m := decode(t, body)
	if id := resp.Header.Get("X-Amzn-Requestid"); m["requestId"] != id {
		t.Errorf("context.aws_request_id = %v, want %s", m["requestId"], id)
	}
	if m["functionArn"] != "arn:aws:lambda:us-east-1:012345678912:function:pyctx" {
		t.Errorf("context.invoked_function_arn = %v", m["functionArn"])
	}
	if m["functionName"] != "pyctx" {
		t.Errorf("context.function_name = %v", m["functionName"])
	}
	if ms, _ := m["remainingMs"].(float64); ms < 28000 || ms > 30000 {
		t.Errorf("get_remaining_time_in_millis() = %v, want about 30000", m["remainingMs"])
	}
	if got, _ := json.Marshal(m["custom"]); string(got) != `{"k":"v","n":2}` {
		t.Errorf("context.client_context.custom = %s", got)
	}
	if m["installationId"] != "inst-1" {
		t.Errorf("context.client_context.client.installation_id = %v", m["installationId"])
	}
	if m["xrayEnv"] != trace {
		t.Errorf("_X_AMZN_TRACE_ID = %v, want %s", m["xrayEnv"], trace)
	}

	// Without the headers: no client context, and a generated trace id.
	_, body = e.invoke(t, "pyctx", `{"op":"context"}`)
	m = decode(t, body)
	if m["custom"] != nil || m["installationId"] != nil {
		t.Errorf("client context leaked into the next invoke: %s", body)
	}
	if tr, _ := m["xrayEnv"].(string); !strings.HasPrefix(tr, "Root=1-") || tr == trace {
		t.Errorf("_X_AMZN_TRACE_ID without a trace header = %q, want a new generated one", tr)
	}
}

func TestPythonLogTail(t *testing.T) {
	e := pythonRIE(t, "app.handler")
	resp, body := e.invoke(t, "function", `{"op":"print","text":"tail-marker-42"}`, "X-Amz-Log-Type", "Tail")
	if resp.StatusCode != 200 || body != `"printed"` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	b, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
	if err != nil {
		t.Fatalf("X-Amz-Log-Result is not base64: %v", err)
	}
	log := string(b)
	id := resp.Header.Get("X-Amzn-Requestid")
	start := strings.Index(log, "START RequestId: "+id)
	printed := strings.Index(log, "python says tail-marker-42\n")
	end := strings.Index(log, "END RequestId: "+id)
	report := strings.Index(log, "REPORT RequestId: "+id)
	if start < 0 || printed < 0 || end < 0 || report < 0 || !(start < printed && printed < end && end < report) {
		t.Errorf("log tail does not hold START, the print() output, END, REPORT in order:\n%s", log)
	}
}

func TestPythonTimeout(t *testing.T) {
	e := pythonRIE(t, "app.handler", "--timeout", "1s")
	begin := time.Now()
	resp, body := e.invoke(t, "function", `{"op":"sleep","ms":3000}`)
	wantFunctionError(t, resp, body, "Sandbox.Timedout", "Task timed out after 1.00 seconds")
	if d := time.Since(begin); d > 2800*time.Millisecond {
		t.Errorf("timeout answered after %v, want about 1s (not after the handler's 3s)", d)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	if !strings.Contains(body, "RequestId: "+id) {
		t.Errorf("timeout error %s does not name request %s", body, id)
	}
	waitFor(t, "the timeout log line", func() bool {
		return strings.Contains(e.Stdout.String(), id+" Task timed out after 1.00 seconds")
	})
	resp, body = e.invoke(t, "function", `{"data":"fresh"}`)
	if resp.StatusCode != 200 || body != `"fresh"` || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Errorf("after the timeout: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

func TestPythonEnvironment(t *testing.T) {
	e := pythonRIE(t, "app.handler", "--env", "WITH_EQUALS=a=b", "--env", "EMPTY=", "--function-name", "pyenv")
	for name, want := range map[string]any{
		"WITH_EQUALS":              "a=b",
		"EMPTY":                    "",
		"_HANDLER":                 "app.handler",
		"AWS_LAMBDA_FUNCTION_NAME": "pyenv",
		"AWS_REGION":               "us-east-1",
		"NOT_SET_ANYWHERE":         nil,
	} {
		_, body := e.invoke(t, "pyenv", `{"op":"env","name":"`+name+`"}`)
		if got := decode(t, body)["value"]; got != want {
			t.Errorf("os.environ[%s] = %#v, want %#v (body %s)", name, got, want, body)
		}
	}
}
