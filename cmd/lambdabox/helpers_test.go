package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers shared by the tests that drive real third-party software (the
// Python and Node.js Runtime Interface Clients, the AWS CLI, boto3). These
// tests never skip: CI installs every tool (see .ci/run), so a missing tool
// is a failure that names what to install.

// requireTool returns the path of an executable on PATH, or fails the test
// saying how to install it.
func requireTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH (%v); install it with: %s (.ci/run does this)", name, err, install)
	}
	return p
}

var pyModules sync.Map // module name -> error string ("" when importable)

// requirePython returns the path of python3 after checking that each module
// imports, or fails naming the pip package to install.
func requirePython(t testing.TB, modules ...string) string {
	t.Helper()
	py := requireTool(t, "python3", "apt-get install -y python3 python3-pip")
	for _, m := range modules {
		v, ok := pyModules.Load(m)
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			out, err := exec.CommandContext(ctx, py, "-c", "import "+m).CombinedOutput()
			cancel()
			msg := ""
			if err != nil {
				msg = strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
			}
			v, _ = pyModules.LoadOrStore(m, msg)
		}
		if msg := v.(string); msg != "" {
			pkg := map[string]string{"awslambdaric": "awslambdaric", "boto3": "boto3"}[m]
			t.Fatalf("%s cannot import %s: %s\ninstall it with: python3 -m pip install %s (.ci/run does this)", py, m, msg, pkg)
		}
	}
	return py
}

// testdataDir returns the absolute path of testdata/<name>.
func testdataDir(t testing.TB, name string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// cmdResult is what a finished client command printed.
type cmdResult struct {
	stdout, stderr string
	err            error
}

// runTool runs a command with a bounded run time and returns its output.
func runTool(t testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %v\nstdout:\n%s\nstderr:\n%s", name, args, timeout, stdout.String(), stderr.String())
	}
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// awsClientEnv is the environment for an AWS client (CLI, boto3) talking to
// lambdabox: the test's environment without any AWS settings, plus dummy
// credentials and a region, and no shared config, metadata service or pager.
func awsClientEnv(t testing.TB) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	return append(env,
		"AWS_ACCESS_KEY_ID=AKIDLAMBDABOXTEST",
		"AWS_SECRET_ACCESS_KEY=lambdabox-test-secret",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+none,
		"AWS_SHARED_CREDENTIALS_FILE="+none,
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
	)
}
