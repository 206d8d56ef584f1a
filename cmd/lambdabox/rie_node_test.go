package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests running the official Node.js Runtime Interface Client (npm package
// aws-lambda-ric 3.3.0, on Node 20) under lambdabox rie, with the function
// in testdata/node. The RIC is installed by "npm ci" in testdata/node.

const nodeInstallHint = "Node.js 20 (NodeSource nodejs 20.x; Debian's own nodejs is 18) and apt-get install -y cmake autoconf automake libtool g++ make, then (cd cmd/lambdabox/testdata/node && npm ci --no-audit --no-fund)"

// nodeRIE runs "aws-lambda-ric <handler>" in testdata/node.
func nodeRIE(t *testing.T, handler string, flags ...string) *emulator {
	t.Helper()
	requireTool(t, "node", nodeInstallHint)
	dir := testdataDir(t, "node")
	pkg := filepath.Join(dir, "node_modules", "aws-lambda-ric")
	b, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	var meta struct{ Version string }
	if err == nil {
		err = json.Unmarshal(b, &meta)
	}
	if err != nil || meta.Version != "3.3.0" {
		t.Fatalf("aws-lambda-ric 3.3.0 is not installed in %s (version %q, %v); install it with: %s (.ci/run does this)", dir, meta.Version, err, nodeInstallHint)
	}
	if _, err := os.Stat(filepath.Join(pkg, "dist", "rapid-client.node")); err != nil {
		t.Fatalf("aws-lambda-ric's native addon was not built (%v): its npm install scripts need cmake autoconf automake libtool g++ make; reinstall with: %s (.ci/run does this)", err, nodeInstallHint)
	}
	return startRIE(t, rieOpts{
		flags:   flags,
		command: []string{filepath.Join(dir, "node_modules", ".bin", "aws-lambda-ric"), handler},
		dir:     dir,
	})
}

func TestNodeEcho(t *testing.T) {
	e := nodeRIE(t, "index.handler")
	for i, c := range []struct{ payload, want string }{
		{`{"data":{"n":1,"s":"héllo","l":[1,2,3]}}`, `{"n":1,"s":"héllo","l":[1,2,3]}`},
		{`{"data":"again"}`, `"again"`},
	} {
		resp, body := e.invoke(t, "function", c.payload, "X-Amz-Log-Type", "Tail")
		if resp.StatusCode != 200 || body != c.want {
			t.Fatalf("invoke %d: %d %s, want %s\nstdout:\n%s\nstderr:\n%s", i, resp.StatusCode, body, c.want, e.Stdout, e.Stderr)
		}
		if fe := resp.Header.Get("X-Amz-Function-Error"); fe != "" {
			t.Errorf("unexpected X-Amz-Function-Error %q", fe)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		// console.log lines carry the Node RIC's own prefix (time, request id, level).
		logb, _ := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
		id := resp.Header.Get("X-Amzn-Requestid")
		if want := "\t" + id + "\tINFO\tnode echo: " + c.want; !strings.Contains(string(logb), want) {
			t.Errorf("invoke %d: log tail lacks %q:\n%s", i, want, logb)
		}
	}
}

func TestNodeHandlerError(t *testing.T) {
	e := nodeRIE(t, "index.handler")
	resp, body := e.invoke(t, "function", `{"op":"error","name":"js"}`)
	wantFunctionError(t, resp, body, "HandlerFailure", "boom: js")
	m := decode(t, body)
	// The Node RIC puts the stack under "trace"; the body is passed through.
	trace, _ := json.Marshal(m["trace"])
	if !strings.Contains(string(trace), "HandlerFailure: boom: js") || !strings.Contains(string(trace), "index.js") {
		t.Errorf("trace = %s, want the handler's stack", trace)
	}
	if _, ok := m["stackTrace"]; ok {
		t.Errorf("body has a stackTrace key the Node RIC does not send: %s", body)
	}
	if resp, body := e.invoke(t, "function", `{"data":2}`); resp.StatusCode != 200 || body != "2" {
		t.Errorf("after the error: %d %s", resp.StatusCode, body)
	}
}

func TestNodeHandlerNotFound(t *testing.T) {
	e := nodeRIE(t, "index.nosuchfunction")
	for i := 1; i <= 2; i++ {
		resp, body := e.invoke(t, "function", `{}`)
		wantFunctionError(t, resp, body, "Runtime.HandlerNotFound", "index.nosuchfunction is undefined or not exported")
	}
}

func TestNodeContext(t *testing.T) {
	e := nodeRIE(t, "index.handler", "--timeout", "30s", "--function-name", "nodectx")
	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	resp, body := e.invoke(t, "nodectx", `{"op":"context"}`, "X-Amzn-Trace-Id", trace)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("%d %v %s\nstdout:\n%s", resp.StatusCode, resp.Header, body, e.Stdout)
	}
	m := decode(t, body)
	if id := resp.Header.Get("X-Amzn-Requestid"); id == "" || m["requestId"] != id {
		t.Errorf("context.awsRequestId = %v, want %s", m["requestId"], id)
	}
	if m["functionArn"] != "arn:aws:lambda:us-east-1:012345678912:function:nodectx" {
		t.Errorf("context.invokedFunctionArn = %v", m["functionArn"])
	}
	if m["functionName"] != "nodectx" {
		t.Errorf("context.functionName = %v", m["functionName"])
	}
	if ms, _ := m["remainingMs"].(float64); ms < 28000 || ms > 30000 {
		t.Errorf("context.getRemainingTimeInMillis() = %v, want about 30000", m["remainingMs"])
	}
	if m["xrayEnv"] != trace {
		t.Errorf("process.env._X_AMZN_TRACE_ID = %v, want %s", m["xrayEnv"], trace)
	}
}
