package service

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
)

// The tests of Lambda Managed Instances mode run real runtimes that poll
// next from several workers: aws-lambda-go (goroutines) and awslambdaric
// (threads, when AWS_EXECUTION_ENV names python3.12 or later).

var buildGoFn = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lambdabox-service-gofn-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bootstrap")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lambdabox/testdata/gofn").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out), err}
	}
	return bin, nil
})

var buildExtension = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lambdabox-service-ext-")
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(dir, "extensions"), 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "extensions", "recorder")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lambdabox/testdata/extension").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out), err}
	}
	return filepath.Dir(bin), nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// lmiRuntime is one runtime the Managed Instances tests run.
type lmiRuntime struct {
	name string
	spec func(t *testing.T) function.Config
	// forks: the runtime forks a process per worker (awslambdaric, as
	// AWS documents for Python), so one runtime shows as one parent pid.
	forks bool
}

// runtimePID is the pid of the runtime process that ran a.
func (rt lmiRuntime) runtimePID(a lmiAnswer) int {
	if rt.forks {
		return a.PPID
	}
	return a.PID
}

func lmiRuntimes() []lmiRuntime {
	return []lmiRuntime{
		{"aws-lambda-go", func(t *testing.T) function.Config {
			bin, err := buildGoFn()
			if err != nil {
				t.Fatal(err)
			}
			return function.Config{Command: []string{bin}, Dir: filepath.Dir(bin)}
		}, false},
		{"awslambdaric", func(t *testing.T) function.Config {
			py, err := exec.LookPath("python3")
			if err != nil {
				t.Skip("no python3: .ci/run installs it with awslambdaric")
			}
			if err := exec.Command(py, "-c", "import awslambdaric").Run(); err != nil {
				t.Skip("awslambdaric is not installed (.ci/run installs it): ", err)
			}
			dir, _ := filepath.Abs("testdata")
			return function.Config{
				Command: []string{py, "-m", "awslambdaric", "lmi.handler"}, Dir: dir, Handler: "lmi.handler",
				// awslambdaric polls from threads only on python3.12+ images.
				ExecutionEnv: "AWS_Lambda_python3.12",
				Env:          []string{"PYTHONPATH=" + dir},
			}
		}, true},
	}
}

// lmiSpec is a Managed Instances function with n slots on one environment.
func lmiSpec(t *testing.T, rt lmiRuntime, n int, queue bool) FunctionSpec {
	f := rt.spec(t)
	f.Name = "lmi"
	f.Timeout = 30 * time.Second
	f.InitTimeout = 30 * time.Second
	f.PerEnvironmentConcurrency = n
	return FunctionSpec{Function: f, MaxConcurrency: 1, Queue: queue, ExtensionsDir: "/nonexistent"}
}

type lmiAnswer struct {
	PID            int    `json:"pid"`
	PPID           int    `json:"ppid"`
	RequestID      string `json:"requestId"`
	Start, End     int64
	MaxConcurrency string `json:"maxConcurrency"`
	ErrorType      string `json:"errorType"`
	status         int
	functionError  string
}

// invokeAll sends the payloads at once and returns the answers in order.
func (r *running) invokeAll(t *testing.T, payloads ...string) []lmiAnswer {
	t.Helper()
	out := make([]lmiAnswer, len(payloads))
	var wg sync.WaitGroup
	for i, p := range payloads {
		wg.Go(func() {
			resp, body := r.invoke(t, "lmi", p)
			if err := json.Unmarshal([]byte(body), &out[i]); err != nil {
				t.Errorf("invoke %d: %d %s", i, resp.StatusCode, body)
			}
			out[i].status = resp.StatusCode
			out[i].functionError = resp.Header.Get("X-Amz-Function-Error")
		})
	}
	wg.Wait()
	return out
}

// warm runs one invoke, retried twice if it fails (a cold start on a busy
// machine may time out), and waits until its slot is back (after REPORT).
func (r *running) warm(t *testing.T) lmiAnswer {
	t.Helper()
	var a lmiAnswer
	for range 3 {
		n := strings.Count(r.out.String(), "REPORT RequestId:")
		a = r.invokeAll(t, `{"op":"info"}`)[0]
		waitFor(t, "REPORT", func() bool { return strings.Count(r.out.String(), "REPORT RequestId:") > n })
		time.Sleep(50 * time.Millisecond) // the slot is given back just after REPORT
		if a.status == 200 && a.functionError == "" && a.PID != 0 {
			return a
		}
	}
	t.Fatalf("warm-up invoke failed three times; last: %+v", a)
	return a
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestManagedInstancesConcurrentInvokes(t *testing.T) {
	for _, rt := range lmiRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			r := startService(t, Config{}, lmiSpec(t, rt, 4, false))
			r.warm(t) // Init
			got := r.invokeAll(t, repeat(`{"op":"info","ms":800}`, 4)...)
			ids := map[string]bool{}
			var lastStart, firstEnd int64 = 0, 1 << 62
			for i, a := range got {
				if a.status != 200 || a.functionError != "" {
					t.Fatalf("invoke %d: %+v", i, a)
				}
				if rt.runtimePID(a) != rt.runtimePID(got[0]) {
					t.Errorf("invokes ran in runtime pids %d and %d: want one runtime process", rt.runtimePID(got[0]), rt.runtimePID(a))
				}
				if a.MaxConcurrency != "4" {
					t.Errorf("AWS_LAMBDA_MAX_CONCURRENCY = %q, want 4", a.MaxConcurrency)
				}
				ids[a.RequestID] = true
				lastStart, firstEnd = max(lastStart, a.Start), min(firstEnd, a.End)
			}
			if len(ids) != 4 {
				t.Errorf("request ids %v: want 4 distinct", ids)
			}
			if lastStart >= firstEnd {
				t.Errorf("the 4 invokes did not overlap: the last started after the first ended")
			}
			// START, END and REPORT for each.
			waitFor(t, "a REPORT line per invoke", func() bool { return strings.Count(r.out.String(), "REPORT RequestId:") >= 5 })
			for id := range ids {
				for _, line := range []string{"START RequestId: " + id, "END RequestId: " + id, "REPORT RequestId: " + id} {
					if !strings.Contains(r.out.String(), line) {
						t.Errorf("no %q in the log", line)
					}
				}
			}
		})
	}
}

func TestManagedInstancesFifthInvoke(t *testing.T) {
	rt := lmiRuntimes()[0]
	t.Run("throttled", func(t *testing.T) {
		r := startService(t, Config{}, lmiSpec(t, rt, 4, false))
		r.warm(t)
		got := r.invokeAll(t, `{"op":"info","ms":1500}`, `{"op":"info","ms":1500}`, `{"op":"info","ms":1500}`, `{"op":"info","ms":1500}`, `{"op":"info","ms":1500}`)
		throttled := 0
		for _, a := range got {
			if a.status == 429 {
				throttled++
			}
		}
		if throttled != 1 {
			t.Errorf("%d of 5 concurrent invokes throttled on 4 slots, want 1: %+v", throttled, got)
		}
	})
	t.Run("queued", func(t *testing.T) {
		r := startService(t, Config{}, lmiSpec(t, rt, 4, true))
		r.warm(t)
		got := r.invokeAll(t, repeat(`{"op":"info","ms":500}`, 5)...)
		for i, a := range got {
			if a.status != 200 || a.PID != got[0].PID {
				t.Errorf("invoke %d: %+v (first pid %d)", i, a, got[0].PID)
			}
		}
	})
}

func TestManagedInstancesFunctionErrorLeavesOthers(t *testing.T) {
	for _, rt := range lmiRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			r := startService(t, Config{}, lmiSpec(t, rt, 4, false))
			r.warm(t)
			got := r.invokeAll(t, `{"op":"info","ms":600}`, `{"op":"error","name":"x"}`, `{"op":"info","ms":600}`, `{"op":"info","ms":600}`)
			if got[1].functionError != "Unhandled" {
				t.Errorf("the failing invoke: %+v", got[1])
			}
			for _, i := range []int{0, 2, 3} {
				if got[i].status != 200 || got[i].functionError != "" || rt.runtimePID(got[i]) != rt.runtimePID(got[0]) {
					t.Errorf("invoke %d beside a function error: %+v", i, got[i])
				}
			}
		})
	}
}

func TestManagedInstancesCrashFailsAll(t *testing.T) {
	for _, rt := range lmiRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			r := startService(t, Config{}, lmiSpec(t, rt, 4, false))
			first := r.warm(t)
			var got []lmiAnswer
			var wg sync.WaitGroup
			wg.Go(func() { got = r.invokeAll(t, repeat(`{"op":"info","ms":20000}`, 3)...) })
			waitFor(t, "3 invokes in flight", func() bool { return strings.Count(r.out.String(), "START RequestId:") >= 4 })
			time.Sleep(200 * time.Millisecond) // let the workers take them
			crash := r.invokeAll(t, `{"op":"exit"}`)[0]
			wg.Wait()
			if testing.Verbose() {
				t.Log(r.log.String(), r.out.String())
			}
			for i, a := range append(got, crash) {
				if a.functionError != "Unhandled" || a.ErrorType != "Runtime.ExitError" {
					t.Errorf("invoke %d in a crashed environment: %+v", i, a)
				}
			}
			// The next invoke runs on a new runtime.
			next := r.invokeAll(t, `{"op":"info"}`)[0]
			if next.status != 200 || rt.runtimePID(next) == rt.runtimePID(first) || next.PID == 0 {
				t.Errorf("after the crash: %+v (old pid %d)", next, first.PID)
			}
		})
	}
}

func TestManagedInstancesExtensionSeesEveryInvoke(t *testing.T) {
	rt := lmiRuntimes()[0]
	extDir, err := buildExtension()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "record")
	spec := lmiSpec(t, rt, 4, false)
	spec.ExtensionsDir = extDir
	spec.Function.Env = append(spec.Function.Env, "EXT_RECORD="+record)
	r := startService(t, Config{}, spec)
	got := r.invokeAll(t, repeat(`{"op":"info","ms":300}`, 4)...)
	want := map[string]bool{}
	for _, a := range got {
		if a.status != 200 {
			t.Fatalf("invoke: %+v", a)
		}
		want[a.RequestID] = true
	}
	waitFor(t, "the extension to record 4 INVOKEs", func() bool {
		f, err := os.Open(record)
		if err != nil {
			return false
		}
		defer f.Close()
		seen := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var line struct {
				Kind  string
				Event struct {
					EventType string
					RequestID string `json:"requestId"`
				}
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Event.EventType == "INVOKE" && want[line.Event.RequestID] {
				seen++
			}
		}
		return seen == 4
	})
}

func TestManagedInstancesTimeoutFailsOnlyItsInvoke(t *testing.T) {
	for _, rt := range lmiRuntimes() {
		t.Run(rt.name, func(t *testing.T) {
			spec := lmiSpec(t, rt, 4, false)
			spec.Function.Timeout = 2 * time.Second
			r := startService(t, Config{}, spec)
			first := r.warm(t)
			got := r.invokeAll(t, `{"op":"info","ms":4000}`, `{"op":"info","ms":100}`)
			if got[0].ErrorType != "Sandbox.Timedout" {
				t.Errorf("the slow invoke: %+v", got[0])
			}
			if got[1].status != 200 || rt.runtimePID(got[1]) != rt.runtimePID(first) {
				t.Errorf("the fast invoke beside it: %+v", got[1])
			}
			// The environment was not reset. The late answer reaches nobody:
			// refused with 410 when the runtime echoes the Invocation-Id
			// (awslambdaric), accepted and dropped when it does not
			// (aws-lambda-go, which would exit on a 410).
			late := "discarding a late answer"
			if rt.forks {
				late = "Runtime.InvokeTimeout"
			}
			waitFor(t, "the late answer", func() bool { return strings.Contains(r.log.String(), late) })
			if after := r.warm(t); after.status != 200 || rt.runtimePID(after) != rt.runtimePID(first) {
				t.Errorf("after the timeout: %+v, want the same runtime (pid %d)", after, rt.runtimePID(first))
			}
		})
	}
}

// TestManagedInstancesTenantInREPORT: with tenant isolation, the REPORT of
// an invoke in a Managed Instances environment names its tenant, as the
// one-invoke environments' do.
func TestManagedInstancesTenantInREPORT(t *testing.T) {
	rt := lmiRuntimes()[0] // aws-lambda-go
	spec := lmiSpec(t, rt, 2, true)
	spec.Function.TenantIsolation = true
	r := startService(t, Config{}, spec)
	resp, body := r.invoke(t, "lmi", `{"op":"info"}`, "X-Amz-Tenant-Id", "blue")
	if resp.StatusCode != 200 {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "a REPORT naming the tenant", func() bool { return strings.Contains(r.out.String(), "Tenant Id: blue") })
}
