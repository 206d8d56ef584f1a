package service

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// answer decodes a fake runtime's answer.
func answer(t testing.TB, body string) fakeAnswer {
	t.Helper()
	var a fakeAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return a
}

// Moved from cmd/lambdabox TestPoolRunsInParallel (its bound on the
// elapsed time is now a count of the runtimes that answered): a pool of
// 20 runs 20 invokes on several environments at once.
func TestPoolRunsInParallel(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.MaxConcurrency = 20
	r := startService(t, Config{}, spec)
	resps, bodies := invokeAll(t, r, "f", 20, `{"op":"sleep","ms":200}`)
	pids := map[int]bool{}
	for i, resp := range resps {
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
			t.Errorf("invoke %d: %d %s", i, resp.StatusCode, bodies[i])
			continue
		}
		pids[answer(t, bodies[i]).PID] = true
	}
	if len(pids) < 2 {
		t.Errorf("%d runtimes answered, want several", len(pids))
	}
}

// Moved from cmd/lambdabox TestConcurrentInvokesOneEnvironment: with one
// environment, concurrent invokes wait their turn on it (one runtime
// answers them all), each with its own request id, and the service
// survives.
func TestConcurrentInvokesOneEnvironment(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("f", "v1"))
	r.invoke(t, "f", `{}`)
	const n = 8
	resps, bodies := invokeAll(t, r, "f", n, `{"op":"sleep","ms":100}`)
	ids, pids := map[string]bool{}, map[int]bool{}
	for i, resp := range resps {
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
			t.Errorf("concurrent invoke: %d %s", resp.StatusCode, bodies[i])
			continue
		}
		ids[resp.Header.Get("X-Amzn-Requestid")] = true
		pids[answer(t, bodies[i]).PID] = true
	}
	if len(ids) != n || len(pids) != 1 {
		t.Errorf("%d distinct request ids (want %d) from %d runtimes (want 1)", len(ids), n, len(pids))
	}
	if resp, _ := r.invoke(t, "f", `{}`); resp.StatusCode != 200 {
		t.Errorf("service did not survive: %d", resp.StatusCode)
	}
}

// Moved from cmd/lambdabox TestProvisionedEnvironments: pre-warmed
// environments start with the service, as provisioned concurrency.
func TestProvisionedEnvironments(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.MaxConcurrency, spec.Provisioned = 3, 2
	r := startService(t, Config{}, spec)
	waitFor(t, "two pre-warmed runtimes", func() bool { return len(runtimes(t)) == 2 })
	_, body := r.invoke(t, "f", `{"op":"env","name":"AWS_LAMBDA_INITIALIZATION_TYPE"}`)
	if v := answer(t, body).Data; v != "provisioned-concurrency" {
		t.Errorf("AWS_LAMBDA_INITIALIZATION_TYPE = %v", v)
	}
}

// runtimes lists the fake runtimes running: this test binary, re-executed.
func runtimes(t testing.TB) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, _ := os.ReadFile("/proc/" + d.Name() + "/environ")
		cmd, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if strings.HasPrefix(string(cmd), os.Args[0]+"\x00") && strings.Contains(string(env), fakeRuntimeEnv+"=1") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Moved from cmd/lambdabox TestFaultKilledRuntime: a runtime killed
// mid-invoke gives Runtime.ExitError, and the next invoke gets a fresh one.
func TestFaultKilledRuntime(t *testing.T) {
	r := startService(t, Config{}, fakeSpec("f", "v1"))
	_, body := r.invoke(t, "f", `{}`)
	pid := answer(t, body).PID
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	resp, body := r.invoke(t, "f", `{"op":"sleep","ms":3000}`)
	var e map[string]any
	_ = json.Unmarshal([]byte(body), &e)
	msg, _ := e["errorMessage"].(string)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || e["errorType"] != "Runtime.ExitError" || !strings.Contains(msg, "signal: killed") {
		t.Errorf("killed runtime: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = r.invoke(t, "f", `{"data":"fresh"}`)
	if a := answer(t, body); resp.StatusCode != 200 || a.Data != "fresh" || a.PID == pid {
		t.Errorf("after kill: %d %s", resp.StatusCode, body)
	}
}

// A streaming function URL passes the chunks through as the function
// writes them; a buffered invoke of the same function reads them whole,
// and a mid-stream error becomes the invoke's function error.
func TestStreaming(t *testing.T) {
	spec := fakeSpec("f", "v1")
	spec.FunctionURL, spec.URLStreaming = "127.0.0.1:0", true
	r := startService(t, Config{}, spec)
	resp, body := do(t, http.MethodPost, "http://"+r.FunctionURLAddr("f")+"/", `{"op":"stream"}`)
	if resp.StatusCode != 200 || body != "chunk0;chunk1;chunk2;" || len(resp.TransferEncoding) == 0 {
		t.Errorf("streamed function URL: %d %v %q", resp.StatusCode, resp.TransferEncoding, body)
	}
	resp, body = r.invoke(t, "f", `{"op":"stream"}`)
	if resp.StatusCode != 200 || body != "chunk0;chunk1;chunk2;" {
		t.Errorf("buffered invoke of a stream: %d %q", resp.StatusCode, body)
	}
	resp, body = r.invoke(t, "f", `{"op":"streamerror"}`)
	if resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(body, "Fake.StreamError") {
		t.Errorf("mid-stream error: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}
