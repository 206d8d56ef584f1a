package controlplane_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// aws runs the AWS CLI against l; it returns stdout, stderr and whether
// the command succeeded.
func awsCLI(t *testing.T, l *local, dir string, args ...string) (string, string, bool) {
	t.Helper()
	path, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the AWS CLI is needed: python3 -m pip install awscli (.ci/run does this)")
	}
	cmd := exec.Command(path, append([]string{"--endpoint-url", l.URL, "--output", "json", "lambda"}, args...)...)
	cmd.Env, cmd.Dir = cmdEnv(t), dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("aws lambda %s: no answer within 90s", strings.Join(args, " "))
	}
	return stdout.String(), stderr.String(), err == nil
}

func mustAWS(t *testing.T, l *local, dir string, args ...string) map[string]any {
	t.Helper()
	out, errOut, ok := awsCLI(t, l, dir, args...)
	if !ok {
		t.Fatalf("aws lambda %s: %s%s", strings.Join(args, " "), out, errOut)
	}
	var v map[string]any
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("aws lambda %s: %v: %s", args[0], err, out)
		}
	}
	return v
}

// cliInvoke invokes through the CLI and returns the answer and the
// executed version.
func cliInvoke(t *testing.T, l *local, dir string, args ...string) (answer, string) {
	t.Helper()
	meta := mustAWS(t, l, dir, append([]string{"invoke", "--payload", `{"a":1}`}, append(args, "out.json")...)...)
	b, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil || meta["FunctionError"] != nil {
		t.Fatalf("invoke %v: %s %v", args, b, meta)
	}
	v, _ := meta["ExecutedVersion"].(string)
	return a, v
}

// The brief's flow through the AWS CLI.
func TestAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the AWS CLI about 20 times")
	}
	l := startLocal(t, "")
	dir := t.TempDir()
	zipFiles(t, filepath.Join(dir, "v1.zip"), pyApp("v1"))
	zipFiles(t, filepath.Join(dir, "v2.zip"), pyApp("v2"))

	created := mustAWS(t, l, dir, "create-function", "--function-name", "clifn", "--runtime", "python3.12", "--handler", "app.handler",
		"--role", "arn:aws:iam::123456789012:role/lambda", "--zip-file", "fileb://v1.zip")
	if created["State"] != "Pending" || created["FunctionArn"] != "arn:aws:lambda:us-east-1:123456789012:function:clifn" {
		t.Errorf("create-function: %v", created)
	}
	mustAWS(t, l, dir, "wait", "function-active-v2", "--function-name", "clifn")
	if a, v := cliInvoke(t, l, dir, "--function-name", "clifn"); a.Code != "v1" || v != "$LATEST" {
		t.Errorf("invoke: %+v on %s", a, v)
	}
	mustAWS(t, l, dir, "update-function-code", "--function-name", "clifn", "--zip-file", "fileb://v2.zip")
	mustAWS(t, l, dir, "wait", "function-updated-v2", "--function-name", "clifn")
	if a, _ := cliInvoke(t, l, dir, "--function-name", "clifn"); a.Code != "v2" {
		t.Errorf("invoke after update-function-code: %+v", a)
	}
	if v := mustAWS(t, l, dir, "publish-version", "--function-name", "clifn"); v["Version"] != "1" {
		t.Errorf("publish-version: %v", v)
	}
	mustAWS(t, l, dir, "update-function-code", "--function-name", "clifn", "--zip-file", "fileb://v1.zip")
	mustAWS(t, l, dir, "wait", "function-updated-v2", "--function-name", "clifn")
	if a := mustAWS(t, l, dir, "create-alias", "--function-name", "clifn", "--name", "live", "--function-version", "1"); a["AliasArn"] != "arn:aws:lambda:us-east-1:123456789012:function:clifn:live" {
		t.Errorf("create-alias: %v", a)
	}
	if a, v := cliInvoke(t, l, dir, "--function-name", "clifn", "--qualifier", "live"); a.Code != "v2" || v != "1" {
		t.Errorf("invoke --qualifier live: %+v on %s", a, v)
	}
	if a, v := cliInvoke(t, l, dir, "--function-name", "clifn"); a.Code != "v1" || v != "$LATEST" {
		t.Errorf("invoke of $LATEST: %+v on %s", a, v)
	}

	// Errors.
	if _, errOut, ok := awsCLI(t, l, dir, "create-function", "--function-name", "clifn", "--runtime", "python3.12", "--handler", "app.handler",
		"--role", "arn:aws:iam::123456789012:role/r", "--zip-file", "fileb://v1.zip"); ok || !strings.Contains(errOut, "ResourceConflictException") {
		t.Errorf("create twice: ok=%v %s", ok, errOut)
	}
	if _, errOut, ok := awsCLI(t, l, dir, "create-function", "--function-name", "other", "--runtime", "python0.1", "--handler", "app.handler",
		"--role", "arn:aws:iam::123456789012:role/r", "--zip-file", "fileb://v1.zip"); ok || !strings.Contains(errOut, "InvalidParameterValueException") {
		t.Errorf("bad runtime: ok=%v %s", ok, errOut)
	}
	if _, errOut, ok := awsCLI(t, l, dir, "invoke", "--function-name", "nope", "out.json"); ok || !strings.Contains(errOut, "ResourceNotFoundException") {
		t.Errorf("invoke of an unknown function: ok=%v %s", ok, errOut)
	}

	mustAWS(t, l, dir, "delete-function", "--function-name", "clifn")
	if _, errOut, ok := awsCLI(t, l, dir, "invoke", "--function-name", "clifn", "--qualifier", "live", "out.json"); ok || !strings.Contains(errOut, "ResourceNotFoundException") {
		t.Errorf("invoke after delete-function: ok=%v %s", ok, errOut)
	}
	if out := mustAWS(t, l, dir, "list-functions"); len(out["Functions"].([]any)) != 0 {
		t.Errorf("list-functions after delete: %v", out)
	}
}

// The same flow through boto3 (testdata/boto3_flow.py), then a restart.
func TestBoto3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs boto3 twice, with waiters")
	}
	l := startLocal(t, "")
	dir := t.TempDir()
	zipFiles(t, filepath.Join(dir, "v1.zip"), pyApp("v1"))
	zipFiles(t, filepath.Join(dir, "v2.zip"), pyApp("v2"))
	script, err := filepath.Abs("testdata/boto3_flow.py")
	if err != nil {
		t.Fatal(err)
	}
	run := func(step string) {
		t.Helper()
		cmd := exec.Command(requirePython(t), script, l.URL, dir, step)
		cmd.Env = cmdEnv(t)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "OK") {
			t.Fatalf("boto3 %s: %v\n%s", step, err, out)
		}
	}
	run("flow")
	l.stop(t)
	l = startLocal(t, l.dir)
	run("after-restart")
}
