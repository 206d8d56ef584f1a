package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Tests driving lambdabox rie's Invoke API with real AWS clients: the AWS
// CLI and boto3, against the aws-lambda-go test function (testdata/gofn).

// awsCLI runs the aws command with dummy credentials; it fails the test
// when the command cannot run at all, and returns its outcome otherwise.
type awsCLI struct {
	path  string
	major string // "1" or "2"
	env   []string
}

func newAWSCLI(t *testing.T) *awsCLI {
	t.Helper()
	path := requireTool(t, "aws", "python3 -m pip install awscli (or install AWS CLI v2)")
	c := &awsCLI{path: path, env: awsClientEnv(t)}
	r := runTool(t, 60*time.Second, "", c.env, path, "--version")
	m := regexp.MustCompile(`aws-cli/(\d+)\.`).FindStringSubmatch(r.stdout + r.stderr)
	if r.err != nil || m == nil {
		t.Fatalf("aws --version: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	c.major = m[1]
	return c
}

// invoke runs "aws lambda invoke" and returns the CLI's JSON output (the
// response metadata) and the payload it wrote to the outfile.
func (c *awsCLI) invoke(t *testing.T, e *emulator, name, payload string, extra ...string) (map[string]any, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.json")
	args := []string{"lambda", "invoke", "--endpoint-url", e.URL, "--output", "json",
		"--function-name", name, "--payload", payload}
	if c.major != "1" {
		// v2 reads blob arguments as base64 unless told otherwise; v1 has no such flag.
		args = append(args, "--cli-binary-format", "raw-in-base64-out")
	}
	args = append(append(args, extra...), out)
	r := runTool(t, 90*time.Second, "", c.env, c.path, args...)
	if r.err != nil {
		t.Fatalf("aws %s: %v\nstdout:\n%s\nstderr:\n%s\nlambdabox stderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr, e.Stderr)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &meta); err != nil {
		t.Fatalf("aws lambda invoke printed %q, not JSON: %v", r.stdout, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("aws lambda invoke wrote no outfile: %v", err)
	}
	return meta, string(b)
}

func TestClientAWSCLI(t *testing.T) {
	cli := newAWSCLI(t)
	e := goRIE(t, "--function-name", "clifn")

	meta, payload := cli.invoke(t, e, "function", `{"data":"cli"}`, "--log-type", "Tail")
	if meta["StatusCode"] != float64(200) || payload != `"cli"` {
		t.Errorf("invoke: %v, payload %s", meta, payload)
	}
	if meta["ExecutedVersion"] != "$LATEST" {
		t.Errorf("ExecutedVersion = %v", meta["ExecutedVersion"])
	}
	if fe, ok := meta["FunctionError"]; ok {
		t.Errorf("unexpected FunctionError %v", fe)
	}
	lr, _ := meta["LogResult"].(string)
	logb, err := base64.StdEncoding.DecodeString(lr)
	if err != nil || lr == "" {
		t.Errorf("LogResult %q is not base64: %v", lr, err)
	}
	for _, want := range []string{"START RequestId: ", "echo: cli", "END RequestId: ", "REPORT RequestId: "} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("LogResult lacks %q:\n%s", want, logb)
		}
	}

	// The function's name and its ARN work as well as "function".
	for _, name := range []string{"clifn", "arn:aws:lambda:us-east-1:012345678912:function:clifn"} {
		if meta, payload := cli.invoke(t, e, name, `{"data":{"by":"name"}}`); meta["StatusCode"] != float64(200) || payload != `{"by":"name"}` {
			t.Errorf("invoke %s: %v, payload %s", name, meta, payload)
		}
	}

	meta, payload = cli.invoke(t, e, "function", `{"op":"error","name":"n"}`)
	if meta["StatusCode"] != float64(200) || meta["FunctionError"] != "Unhandled" {
		t.Errorf("error invoke: %v", meta)
	}
	if m := decode(t, payload); m["errorMessage"] != "boom: n" || m["errorType"] != "errorString" {
		t.Errorf("error payload = %s", payload)
	}
	if _, ok := meta["LogResult"]; ok {
		t.Errorf("LogResult without --log-type Tail: %v", meta)
	}

	// An unknown function is the CLI's ResourceNotFoundException.
	args := []string{"lambda", "invoke", "--endpoint-url", e.URL, "--function-name", "nope", "--payload", "{}", filepath.Join(t.TempDir(), "out.json")}
	r := runTool(t, 90*time.Second, "", cli.env, cli.path, args...)
	if r.err == nil || !strings.Contains(r.stderr, "ResourceNotFoundException") {
		t.Errorf("unknown function: err %v, want ResourceNotFoundException\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
}

func TestClientBoto3(t *testing.T) {
	py := requirePython(t, "boto3")
	e := goRIE(t, "--function-name", "b3fn")
	script := filepath.Join(testdataDir(t, "clients"), "boto3_invoke.py")
	r := runTool(t, 120*time.Second, "", awsClientEnv(t), py, script, e.URL, "b3fn")
	if r.err != nil {
		t.Fatalf("boto3_invoke.py: %v\nstdout:\n%s\nstderr:\n%s\nlambdabox stderr:\n%s", r.err, r.stdout, r.stderr, e.Stderr)
	}
	var res struct {
		OK, Error struct {
			StatusCode      int
			FunctionError   *string
			ExecutedVersion string
			Payload         string
			RequestID       string `json:"RequestId"`
			LogResult       *string
		}
		NotFound struct {
			Raised, Code, Message string
			Status                int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("boto3_invoke.py printed %q: %v\nstderr:\n%s", r.stdout, err, r.stderr)
	}

	ok := res.OK
	if ok.StatusCode != 200 || ok.Payload != `"boto3"` || ok.FunctionError != nil || ok.ExecutedVersion != "$LATEST" {
		t.Errorf("invoke: %+v", ok)
	}
	if ok.LogResult == nil {
		t.Errorf("no LogResult with LogType Tail")
	} else {
		for _, want := range []string{"START RequestId: " + ok.RequestID, "echo: boto3", "END RequestId: " + ok.RequestID, "REPORT RequestId: " + ok.RequestID} {
			if !strings.Contains(*ok.LogResult, want) {
				t.Errorf("LogResult lacks %q:\n%s", want, *ok.LogResult)
			}
		}
	}
	if ok.RequestID == "" {
		t.Errorf("boto3 saw no x-amzn-RequestId")
	}

	er := res.Error
	if er.StatusCode != 200 || er.FunctionError == nil || *er.FunctionError != "Unhandled" || er.ExecutedVersion != "$LATEST" {
		t.Errorf("error invoke: %+v", er)
	}
	if m := decode(t, er.Payload); m["errorMessage"] != "boom: b3" || m["errorType"] != "errorString" {
		t.Errorf("error payload = %s", er.Payload)
	}
	if er.LogResult != nil {
		t.Errorf("LogResult without LogType Tail: %q", *er.LogResult)
	}

	nf := res.NotFound
	if nf.Raised != "ResourceNotFoundException" || nf.Code != "ResourceNotFoundException" || nf.Status != 404 || !strings.Contains(nf.Message, "no-such-function") {
		t.Errorf("unknown function: %+v, want boto3 to raise ResourceNotFoundException (404) naming the function", nf)
	}
}
