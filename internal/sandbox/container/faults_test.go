package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// newEnvironment runs the platform's environment on d, for fn.
func newEnvironment(t *testing.T, d sandbox.Driver, fn function.Config) (*environment.Environment, *syncbuf.Buffer) {
	t.Helper()
	out := &syncbuf.Buffer{}
	e, err := environment.New(environment.Config{Function: fn.WithDefaults(), Driver: d, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e, out
}

func invoke(e *environment.Environment, payload string) *function.Result {
	res := e.Invoke(context.Background(), &function.Request{Invocation: runtimeapi.Invocation{ID: fmt.Sprint(time.Now().UnixNano()), Payload: []byte(payload)}})
	e.Settle()
	return res
}

// fakeFunction runs the fake runtime of the test image.
func fakeFunction() function.Config {
	return function.Config{Command: []string{fakePath}, Env: []string{sandboxtest.FakeKey + "=runtime"}, Timeout: 10 * time.Second, MemoryMB: 512}
}

// TestFaults checks that each way a container fails is a Lambda error,
// and leaves no container behind.
func TestFaults(t *testing.T) {
	e := connect(t)
	cases := []struct {
		name     string
		fn       func() (Function, function.Config)
		payloads []string
		want     string // the last invoke's error type
		msg      string // in its message
	}{
		{
			name: "ImageDoesNotExist",
			fn: func() (Function, function.Config) {
				f := testFunction()
				f.Image = "localhost/lambdabox-no-such-image:latest"
				return f, fakeFunction()
			},
			payloads: []string{`"x"`},
			want:     "Runtime.InvalidEntrypoint",
			msg:      "image not found",
		},
		{
			name: "BootstrapMissing",
			fn: func() (Function, function.Config) {
				c := fakeFunction()
				c.Command = []string{"/var/task/bootstrap"}
				return testFunction(), c
			},
			payloads: []string{`"x"`},
			want:     "Runtime.InvalidEntrypoint",
			msg:      "/var/task/bootstrap",
		},
		{
			name: "ExitsAtStart",
			fn: func() (Function, function.Config) {
				c := fakeFunction()
				c.Env = nil // the fake exits with status 1 when not told what to play
				return testFunction(), c
			},
			payloads: []string{`"x"`},
			want:     "Runtime.ExitError",
			msg:      "exit status 1",
		},
		{
			name: "OverMemoryLimit",
			fn: func() (Function, function.Config) {
				c := fakeFunction()
				c.MemoryMB = 128
				return testFunction(), c
			},
			payloads: []string{`"memory"`, `"memory"`, `"memory"`},
			want:     "Runtime.OutOfMemory",
			msg:      "signal: killed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c := tc.fn()
			d := e.Driver(f)
			t.Cleanup(func() { _ = d.Close(context.Background()) })
			env, out := newEnvironment(t, d, c)
			var res *function.Result
			for _, p := range tc.payloads {
				if res = invoke(env, p); res.Error {
					break
				}
			}
			if !res.Error || res.ErrorType != tc.want || !strings.Contains(string(res.Payload), tc.msg) {
				t.Errorf("invoke = %v %s %s; want a %s error saying %q\nlog:\n%s", res.Error, res.ErrorType, res.Payload, tc.want, tc.msg, out)
			}
			_ = d.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = env.Close(ctx)
			assertNoContainers(t, e)
		})
	}
}

// TestImageWithoutShell: the driver needs no shell in the image, as
// lambdabox's own provided base has none.
func TestImageWithoutShell(t *testing.T) {
	e := connect(t)
	f := testFunction()
	// /bin/sh is hidden under an empty directory.
	f.Mounts = append(f.Mounts, Mount{Source: t.TempDir(), Target: "/bin", ReadOnly: true})
	d := e.Driver(f)
	env, out := newEnvironment(t, d, fakeFunction())
	if res := invoke(env, `"no shell"`); res.Error || string(res.Payload) != `"no shell"` {
		t.Errorf("invoke = %s %s\n%s", res.ErrorType, res.Payload, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = env.Close(ctx)
	_ = d.Close(ctx)
	assertNoContainers(t, e)
}

// TestLambdaLike checks what a function sees: a non-root user, a
// read-only root, a writable /tmp of the configured size, the code
// mounted read-only, and no swap past the memory limit.
func TestLambdaLike(t *testing.T) {
	e := connect(t)
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "handler"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(code, 0o755)
	f := testFunction()
	f.Mounts = []Mount{{Source: code, Target: "/var/task", ReadOnly: true}}
	f.TmpfsMB = 64
	d := e.Driver(f)
	defer d.Close(context.Background())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	script := `while read k v rest; do [ "$k" = Uid: ] && echo "uid $v"; done < /proc/self/status
echo "pwd $PWD"
( : > /rootfs-write ) 2>/dev/null && echo "root writable" || echo "root read-only"
( : > /var/task/x ) 2>/dev/null && echo "code writable" || echo "code read-only"
( : > /tmp/x ) && echo "tmp writable"
while read dev mnt fs opts rest; do [ "$mnt" = /tmp ] && echo "tmp $fs $opts"; done < /proc/mounts
read line < /var/task/handler && echo "code $line"`
	env, err := d.Start(context.Background(), sandbox.Spec{
		Path: "/bin/sh", Args: []string{"-c", script}, Dir: code,
		Output: func(sandbox.Process) (*os.File, error) { return w, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	<-env.Done()
	r.SetReadDeadline(time.Now().Add(time.Second))
	var lines []string
	for s := bufio.NewScanner(r); s.Scan(); {
		lines = append(lines, s.Text())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{"uid 993", "pwd /var/task", "root read-only", "code read-only", "tmp writable", "tmp tmpfs", "size=65536k", "code x"} {
		if !strings.Contains(got, want) {
			t.Errorf("the function saw:\n%s\nwant %q", got, want)
		}
	}
	if st := env.Runtime().Exit(); st.Code != 0 {
		t.Errorf("exit = %v", st)
	}
	if e.out.handed.Load() == 0 {
		t.Error("the process's output file was not handed to it: its output went through the engine")
	}
	_ = d.Close(context.Background())
	assertNoContainers(t, e)
}

// TestStaleContainersAreRemoved: a container labelled by a lambdabox that
// has died is removed by the next Connect; one of a live owner is not.
func TestStaleContainersAreRemoved(t *testing.T) {
	e := connect(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self, _ := currentOwner()
	gone := self
	gone.pid, gone.start = dead.Process.Pid, 1
	other := self
	other.host = "another-host"
	ids := map[string]string{}
	for what, o := range map[string]owner{"dead": gone, "alive": self, "elsewhere": other} {
		c, err := e.cli.ContainerCreate(context.Background(), client.ContainerCreateOptions{
			Config:     &container.Config{Image: testImage, Labels: map[string]string{LabelOwner: o.String()}, Entrypoint: []string{"/bin/sh"}},
			HostConfig: &container.HostConfig{Runtime: runtimeFor(e)},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[what] = c.ID
		t.Cleanup(func() {
			_, _ = e.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
		})
	}
	e2 := connect(t)
	for what, id := range ids {
		_, err := e2.cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		if removed := isNotFound(err); removed != (what == "dead") {
			t.Errorf("the container of a %s owner: removed = %v (%v)", what, removed, err)
		}
	}
}

func runtimeFor(e *Engine) string {
	if e.podman {
		return "runc"
	}
	return ""
}

// ownerHelper makes the test binary a lambdabox that prepares a
// container and waits to be killed.
const ownerHelper = "LAMBDABOX_CONTAINER_TEST_OWNER"

func runOwner() {
	e, err := Connect(context.Background(), Config{Helper: helperBin})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	d := e.Driver(Function{Image: testImage, Name: "owner"})
	if _, err := d.newKeeper(context.Background(), keeperKey{probe: fakePath}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("owner", e.owner)
	time.Sleep(time.Hour)
}

// TestOwnerKilled: the containers of a lambdabox killed with SIGKILL are
// gone once a new one has connected.
func TestOwnerKilled(t *testing.T) {
	e := connect(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ownerHelper+"="+helperBin+" "+testImage)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	o, ok := strings.CutPrefix(strings.TrimSpace(line), "owner ")
	if !ok {
		t.Fatalf("the helper said %q", line)
	}
	if got := containersLabelled(t, e, o); len(got) != 1 {
		t.Fatalf("the helper's containers: %v, want 1", got)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	connect(t)
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if left = containersLabelled(t, e, o); len(left) == 0 {
			return
		}
	}
	t.Errorf("containers of the killed owner left: %v", left)
}

func containersLabelled(t *testing.T, e *Engine, o string) []string {
	t.Helper()
	list, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelOwner+"="+o)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, shortID(c.ID))
	}
	return ids
}

// TestEngineGoesAway: when the engine's socket goes away mid-run, the
// environment ends, the next invoke is a Lambda error, and the containers
// still end and are removed (their keeper's input ends with the engine's
// connection).
func TestEngineGoesAway(t *testing.T) {
	connect(t) // loads the test image
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("needs podman, to run an engine of its own")
	}
	sock := filepath.Join(t.TempDir(), "podman.sock")
	svc := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = svc.Process.Signal(syscall.SIGTERM)
			_ = svc.Wait()
		}
	}
	t.Cleanup(stop)
	var e *Engine
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if e, err = Connect(context.Background(), Config{Host: "unix://" + sock, Helper: helperBin}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	d := e.Driver(testFunction())
	env, out := newEnvironment(t, d, fakeFunction())
	if res := invoke(env, `"before"`); res.Error || string(res.Payload) != `"before"` {
		t.Fatalf("invoke = %s %s\n%s", res.ErrorType, res.Payload, out)
	}
	stop()
	res := invoke(env, `"after"`)
	// The runtime may still answer this one (it reaches lambdabox, not
	// the engine); the next start cannot.
	for i := 0; i < 3 && !res.Error; i++ {
		time.Sleep(200 * time.Millisecond)
		res = invoke(env, `"after"`)
	}
	if !res.Error || !strings.HasPrefix(res.ErrorType, "Runtime.") {
		t.Errorf("invoke with the engine gone = %v %s %s; want a Runtime error", res.Error, res.ErrorType, res.Payload)
	}
	t.Logf("with the engine gone: %s %s", res.ErrorType, res.Payload)
	// What ran has ended by itself: its keeper's input ended with the
	// engine. A container the engine was creating when it went away
	// cannot start, and waits for the engine's return.
	ours := func() []string {
		b, err := exec.Command("podman", "ps", "-a", "--format", "{{.ID}} {{.Status}}", "--filter", "label="+LabelOwner+"="+e.owner).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
	waitFor(t, 15*time.Second, "the containers to stop running", func() bool { return !slices.Contains(ours(), "Up") })
	// With the engine back, Close removes what is left.
	svc = exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	waitFor(t, 10*time.Second, "the engine to come back", func() bool { _, err := e.cli.Ping(context.Background(), client.PingOptions{}); return err == nil })
	if err := e.Close(context.Background()); err != nil {
		t.Errorf("Close with the engine back: %v", err)
	}
	waitFor(t, 10*time.Second, "no container left", func() bool { return len(ours()) == 0 })
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
	}
}

// TestPrepare: a prepared container is the next environment's, and the
// driver prepares another while that one runs.
func TestPrepare(t *testing.T) {
	e := connect(t)
	d := e.Driver(testFunction())
	spec := sandbox.Spec{Path: fakePath, Env: []string{sandboxtest.FakeKey + "=runtime", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, MemoryLimit: 256 << 20}
	spare := func() *keeper {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.spare
	}
	d.Prepare(spec)
	waitFor(t, 20*time.Second, "a prepared container", func() bool { return spare() != nil })
	prepared := spare()
	started, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := started.(*env).k; got != prepared {
		t.Errorf("Start used container %s, not the prepared %s", shortID(got.id), shortID(prepared.id))
	}
	waitFor(t, 20*time.Second, "the next prepared container", func() bool { k := spare(); return k != nil && k != prepared })
	<-started.Done() // the fake runtime cannot reach 127.0.0.1:1, and exits
	_ = d.Close(context.Background())
	assertNoContainers(t, e)
}

// TestBootstrapCannotExecute: a bootstrap that is there and executable
// but not a program the kernel runs is Runtime.InvalidEntrypoint.
func TestBootstrapCannotExecute(t *testing.T) {
	e := connect(t)
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	boot := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(boot, []byte("\x7fELF garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := e.Driver(testFunction())
	c := fakeFunction()
	c.Command = []string{boot}
	env, out := newEnvironment(t, d, c)
	res := invoke(env, `"x"`)
	if !res.Error || res.ErrorType != "Runtime.InvalidEntrypoint" || !strings.Contains(string(res.Payload), "exec format error") {
		t.Errorf("invoke = %v %s %s; want Runtime.InvalidEntrypoint, exec format error\n%s", res.Error, res.ErrorType, res.Payload, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = env.Close(ctx)
	_ = d.Close(ctx)
	assertNoContainers(t, e)
}
