package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Harness says how Conformance runs a driver, as Nomad's DriverHarness
// does for its task drivers.
type Harness struct {
	// Driver returns the driver under test; it is called once per subtest
	// and cleans up after itself with t.Cleanup.
	Driver func(t *testing.T) sandbox.Driver
	// Runtime is the command that runs the fake runtime (RunFake with
	// FakeKey=runtime in its environment, which the suite sets), for
	// drivers that run processes; a goroutine driver ignores it.
	Runtime []string
	// Extension installs, at path, an executable that runs the fake
	// extension named filepath.Base(path) (RunFake with FakeKey=extension
	// and FakeNameKey set). Nil writes a shell script that runs
	// Runtime[0] so (or exits, when Runtime is empty).
	Extension func(t *testing.T, path string)
	// Processes says the driver runs real processes: the suite then also
	// checks exit codes of signals, a hard stop of a runtime that ignores
	// SIGTERM, escaped children, memory and invalid executables.
	Processes bool
	// LimitsMemory says the driver enforces Spec.MemoryLimit on this
	// machine: the suite then checks that an environment past its limit is
	// killed, says so (sandbox.OOMReporter), and reports a peak at most the
	// limit.
	LimitsMemory bool
	// Skip names the subtests the driver does not run, each with the
	// reason, such as "EscapedChildren" for a driver whose processes'
	// pids are not the host's.
	Skip map[string]string
}

// Conformance runs the suite every sandbox driver passes: an environment
// starts and answers an invoke; its extensions are found in name order,
// started and registered before the runtime, and their output and the
// runtime's reach the environment's log attributed to them; a crashed
// runtime or extension is noticed with its exit status; Stop ends
// everything, politely and then by force; and an invalid entrypoint is a
// Start error.
func Conformance(t *testing.T, h Harness) {
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			if why, ok := h.Skip[name]; ok {
				t.Skip(why)
			}
			f(t)
		})
	}
	if h.Extension == nil {
		h.Extension = func(t *testing.T, path string) {
			t.Helper()
			script := "#!/bin/sh\nexit 0\n" // a goroutine driver only reads the name
			if len(h.Runtime) > 0 {
				script = "#!/bin/sh\n" + FakeKey + "=extension " + FakeNameKey + "=" + filepath.Base(path) + " exec '" + h.Runtime[0] + "'\n"
			}
			if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	run("Invoke", func(t *testing.T) {
		c := newCase(t, h)
		env := c.start(t, nil)
		if got := c.invoke(t, `"hello"`); got != `"hello"` {
			t.Errorf("answer = %s, want \"hello\"", got)
		}
		c.waitLine(t, sandbox.Process{Kind: sandbox.KindFunction}, "runtime started")
		if env.Runtime() == nil || len(env.Extensions()) != 0 {
			t.Errorf("Runtime() = %v, Extensions() = %v; want a runtime and no extensions", env.Runtime(), env.Extensions())
		}
		if h.Processes {
			if got, want := c.invoke(t, `"api"`), strconv.Quote(c.reach); got != want {
				t.Errorf("AWS_LAMBDA_RUNTIME_API = %s, want %s", got, want)
			}
		}
		c.stop(t, env, 5*time.Second)
	})
	run("Extensions", func(t *testing.T) {
		c := newCase(t, h)
		for _, n := range []string{"b-ext", "a-ext"} {
			h.Extension(t, filepath.Join(c.extDir, n))
		}
		// Neither a file that is not executable nor a directory is one.
		_ = os.WriteFile(filepath.Join(c.extDir, "notes.txt"), []byte("x"), 0o644)
		_ = os.Mkdir(filepath.Join(c.extDir, "c-dir"), 0o755)
		var found []string
		var seen []string
		var runtimeFirst bool
		env := c.start(t, func(s *sandbox.Spec) {
			s.Found = func(names []string) { found = names }
			s.BeforeRuntime = func(exts []sandbox.Extension) bool {
				for _, x := range exts {
					seen = append(seen, x.Name)
				}
				c.waitRegistered(t, 2)
				runtimeFirst = c.nextCalled()
				return true
			}
		})
		want := []string{"a-ext", "b-ext"}
		if !slices.Equal(found, want) || !slices.Equal(seen, want) {
			t.Errorf("found %v, BeforeRuntime saw %v; want %v for both", found, seen, want)
		}
		if runtimeFirst {
			t.Error("the runtime asked for an invoke before BeforeRuntime let it start")
		}
		// They start in name order, but register as they get to it.
		if got := c.registered(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Errorf("registered %v, want %v", got, want)
		}
		var names []string
		for _, x := range env.Extensions() {
			names = append(names, x.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("Extensions() = %v, want %v", names, want)
		}
		if got := c.invoke(t, `"x"`); got != `"x"` {
			t.Errorf("answer = %s", got)
		}
		for _, n := range want {
			c.waitLine(t, sandbox.Process{Kind: sandbox.KindExtension, Name: n}, "extension "+n+" started")
		}
		c.waitLine(t, sandbox.Process{Kind: sandbox.KindFunction}, "runtime started")
		c.stop(t, env, 5*time.Second)
	})
	run("BeforeRuntimeDeclines", func(t *testing.T) {
		c := newCase(t, h)
		h.Extension(t, filepath.Join(c.extDir, "ext"))
		env := c.start(t, func(s *sandbox.Spec) {
			s.BeforeRuntime = func([]sandbox.Extension) bool { return false }
		})
		if env.Runtime() != nil {
			t.Error("a runtime started although BeforeRuntime said no")
		}
		c.stop(t, env, 5*time.Second)
		if c.nextCalled() {
			t.Error("a runtime asked for an invoke")
		}
	})
	run("ExtensionCrash", func(t *testing.T) {
		c := newCase(t, h)
		h.Extension(t, filepath.Join(c.extDir, "crash-ext"))
		env := c.start(t, nil)
		x := env.Extensions()
		if len(x) != 1 {
			t.Fatalf("Extensions() = %v, want crash-ext", x)
		}
		waitClosed(t, x[0].Done(), "the crashed extension's Done")
		if got := x[0].Exit(); got.Code != 2 {
			t.Errorf("extension exit = %v, want exit status 2", got)
		}
		if isClosed(env.Runtime().Done()) || isClosed(env.Done()) {
			t.Error("an extension's exit ended the runtime")
		}
		if got := c.invoke(t, `"still"`); got != `"still"` {
			t.Errorf("answer = %s", got)
		}
		c.stop(t, env, 5*time.Second)
	})
	run("RuntimeCrash", func(t *testing.T) {
		c := newCase(t, h)
		env := c.start(t, nil)
		c.send(`"crash"`)
		waitClosed(t, env.Runtime().Done(), "the crashed runtime's Done")
		if got := env.Runtime().Exit(); got.Code != 3 || got.String() != "exit status 3" {
			t.Errorf("exit = %v, want exit status 3", got)
		}
		waitClosed(t, env.Done(), "the environment's Done")
		c.stop(t, env, time.Second)
	})
	run("StopGraceful", func(t *testing.T) {
		c := newCase(t, h)
		h.Extension(t, filepath.Join(c.extDir, "ext"))
		env := c.start(t, nil)
		c.invoke(t, `"warm"`)
		c.stop(t, env, 10*time.Second)
		if got := env.Runtime().Exit(); got.Signal != "terminated" {
			t.Errorf("runtime exit = %v, want signal: terminated", got)
		}
		for _, x := range env.Extensions() {
			if !isClosed(x.Done()) {
				t.Errorf("extension %s still running after Stop", x.Name)
			}
		}
	})
	run("StopRuntimeAlone", func(t *testing.T) {
		c := newCase(t, h)
		h.Extension(t, filepath.Join(c.extDir, "ext"))
		env := c.start(t, nil)
		c.invoke(t, `"warm"`)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := env.Runtime().Stop(ctx); err != nil {
			t.Fatalf("Runtime().Stop: %v", err)
		}
		if isClosed(env.Extensions()[0].Done()) {
			t.Error("stopping the runtime stopped an extension")
		}
		c.stop(t, env, 5*time.Second)
	})
	run("InvalidEntrypoint", func(t *testing.T) {
		if !h.Processes {
			t.Skip("the driver runs no executables")
		}
		c := newCase(t, h)
		for _, path := range []string{filepath.Join(c.extDir, "missing"), c.extDir} {
			spec := c.spec()
			spec.Path, spec.Args = path, nil
			env, err := c.d.Start(context.Background(), spec)
			if !errors.Is(err, sandbox.ErrInvalidEntrypoint) {
				t.Errorf("Start(%s) = %v, %v; want an error wrapping ErrInvalidEntrypoint", path, env, err)
			}
		}
	})
	run("InvalidExtension", func(t *testing.T) {
		if !h.Processes {
			t.Skip("the driver runs no executables")
		}
		c := newCase(t, h)
		h.Extension(t, filepath.Join(c.extDir, "a-ext"))
		if err := os.WriteFile(filepath.Join(c.extDir, "b-garbage"), []byte("\x7fELF garbage"), 0o755); err != nil {
			t.Fatal(err)
		}
		env, err := c.d.Start(context.Background(), c.spec())
		var xe *sandbox.ExtensionError
		if !errors.As(err, &xe) || xe.Name != "b-garbage" {
			t.Fatalf("Start = %v, %v; want an *ExtensionError for b-garbage", env, err)
		}
	})
	run("OutputFails", func(t *testing.T) {
		for _, kind := range []sandbox.Kind{sandbox.KindExtension, sandbox.KindFunction} {
			c := newCase(t, h)
			h.Extension(t, filepath.Join(c.extDir, "ext"))
			spec := c.spec()
			spec.Output = func(p sandbox.Process) (*os.File, error) {
				if p.Kind == kind {
					return nil, errors.New("no pipes left")
				}
				return c.logs.output(p)
			}
			env, err := c.d.Start(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), "no pipes left") {
				t.Errorf("Start with the %s's output failing = %v, %v; want its error", kind, env, err)
			}
			var xe *sandbox.ExtensionError
			if isExt := errors.As(err, &xe); isExt != (kind == sandbox.KindExtension) {
				t.Errorf("Start with the %s's output failing: %v; an *ExtensionError only for an extension", kind, err)
			}
		}
	})
	run("StopHard", func(t *testing.T) {
		if !h.Processes {
			t.Skip("the driver runs no processes")
		}
		c := newCase(t, h)
		env := c.start(t, nil)
		c.invoke(t, `"ignore-term"`)
		c.stop(t, env, 300*time.Millisecond)
		if got := env.Runtime().Exit(); got.Signal != "killed" {
			t.Errorf("runtime exit = %v, want signal: killed", got)
		}
	})
	run("EscapedChildren", func(t *testing.T) {
		if !h.Processes {
			t.Skip("the driver runs no processes")
		}
		c := newCase(t, h)
		env := c.start(t, nil)
		pid, err := strconv.Atoi(c.invoke(t, `"spawn"`))
		if err != nil || pid <= 0 {
			t.Fatalf("spawn answered %v", err)
		}
		if !alive(pid) {
			t.Fatalf("the escaped child %d is not running", pid)
		}
		c.stop(t, env, 5*time.Second)
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("the escaped child %d outlived Stop", pid)
		}
	})
	run("Memory", func(t *testing.T) {
		c := newCase(t, h)
		env := c.start(t, nil)
		m, ok := env.(sandbox.MemoryReporter)
		if !ok {
			if h.Processes {
				t.Fatal("a driver of processes measures no memory")
			}
			t.Skip("the driver measures no memory")
		}
		c.invoke(t, `"memory"`)
		var got uint64
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) { // the sum of the other processes is refreshed each second
			if got, _ = m.MaxMemory(); got >= 64<<20 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got < 64<<20 {
			t.Errorf("MaxMemory = %d after touching 64 MiB", got)
		}
		c.stop(t, env, 5*time.Second)
	})
	run("MemoryLimit", func(t *testing.T) {
		if !h.LimitsMemory {
			t.Skip("the driver does not limit memory here")
		}
		const limit = 128 << 20
		c := newCase(t, h)
		env := c.start(t, func(s *sandbox.Spec) { s.MemoryLimit = limit })
		// Each "memory" keeps 64 MiB more: the third cannot fit.
		for i := 0; i < 3; i++ {
			select {
			case <-c.send(`"memory"`):
				continue
			case <-env.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("the runtime neither answered nor died")
			}
			break
		}
		select {
		case <-env.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("192 MiB under a %d MiB limit: still running", limit>>20)
		}
		if st := env.Runtime().Exit(); st.Signal != "killed" {
			t.Errorf("exit = %s, want signal: killed", st)
		}
		if o, ok := env.(sandbox.OOMReporter); !ok || !o.OutOfMemory() {
			t.Error("the environment does not say it ran out of memory")
		}
		if m, ok := env.(sandbox.MemoryReporter); ok {
			if got, err := m.MaxMemory(); err != nil || got > limit+(1<<20) || got < 64<<20 {
				t.Errorf("MaxMemory = %d, %v; want at most the limit, %d", got, err, limit)
			}
		}
		// Well below a limit all is well (1 GiB: a test binary built
		// with -race needs several times what it touches).
		c2 := newCase(t, h)
		env2 := c2.start(t, func(s *sandbox.Spec) { s.MemoryLimit = 1 << 30 })
		if got := c2.invoke(t, `"memory"`); got != `"memory"` {
			t.Errorf("64 MiB under the limit: answer %s", got)
		}
		if o, ok := env2.(sandbox.OOMReporter); ok && o.OutOfMemory() {
			t.Error("OutOfMemory below the limit")
		}
		c2.stop(t, env2, 5*time.Second)
	})
}

// FakeHandler is the goroutine runtime's side of the fake runtime's
// answers: "crash" exits with status 3, anything else is echoed.
func FakeHandler(payload []byte) ([]byte, error) {
	if string(payload) == `"crash"` {
		return nil, ExitCode(3)
	}
	return payload, nil
}

// testCase is one subtest's driver and the APIs its environment talks to.
type testCase struct {
	h      Harness
	d      sandbox.Driver
	extDir string
	reach  string // AWS_LAMBDA_RUNTIME_API as the processes get it
	api    *fakeAPI
	logs   *logs
}

func newCase(t *testing.T, h Harness) *testCase {
	t.Helper()
	d := h.Driver(t)
	addr := "127.0.0.1:0"
	n, isNet := d.(sandbox.Network)
	if isNet {
		var err error
		if addr, err = n.ListenAddr(addr); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	api := newFakeAPI()
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		api.close()
		_ = srv.Close()
	})
	c := &testCase{h: h, d: d, extDir: t.TempDir(), reach: ln.Addr().String(), api: api, logs: &logs{}}
	if isNet {
		c.reach = n.RuntimeAPI(c.reach)
	}
	return c
}

func (c *testCase) spec() sandbox.Spec {
	env := append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+c.reach, FakeKey+"=runtime")
	s := sandbox.Spec{Env: env, Dir: c.extDir, ExtensionsDir: c.extDir, Output: c.logs.output}
	if len(c.h.Runtime) > 0 {
		s.Path, s.Args = c.h.Runtime[0], c.h.Runtime[1:]
	}
	return s
}

// start starts an environment, with the spec changed by set, and stops it
// at the end of the test.
func (c *testCase) start(t *testing.T, set func(*sandbox.Spec)) sandbox.Env {
	t.Helper()
	spec := c.spec()
	if set != nil {
		set(&spec)
	}
	env, err := c.d.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = env.Stop(ctx)
	})
	return env
}

// stop stops env with grace, and checks that everything has ended.
func (c *testCase) stop(t *testing.T, env sandbox.Env, grace time.Duration) {
	t.Helper()
	c.api.close() // extensions waiting for an event get SHUTDOWN
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := env.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	waitClosed(t, env.Done(), "the environment's Done after Stop")
	for _, x := range env.Extensions() {
		if !isClosed(x.Done()) {
			t.Errorf("extension %s still running after Stop", x.Name)
		}
	}
	if rt := env.Runtime(); rt != nil && !isClosed(rt.Done()) {
		t.Error("runtime still running after Stop")
	}
}

// send queues an invoke without waiting for its answer.
func (c *testCase) send(payload string) <-chan string {
	answer := make(chan string, 1)
	c.api.invokes <- invocation{payload: payload, answer: answer}
	return answer
}

// invoke runs one invoke and returns its answer.
func (c *testCase) invoke(t *testing.T, payload string) string {
	t.Helper()
	select {
	case a := <-c.send(payload):
		return a
	case <-time.After(20 * time.Second):
		t.Fatalf("no answer to %s", payload)
		return ""
	}
}

func (c *testCase) waitRegistered(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.registered()) < n {
		if time.Now().After(deadline) {
			t.Errorf("registered %v, want %d extensions", c.registered(), n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *testCase) registered() []string {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	return append([]string(nil), c.api.names...)
}

func (c *testCase) nextCalled() bool {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	return c.api.nexts > 0
}

// waitLine waits until p has written line.
func (c *testCase) waitLine(t *testing.T, p sandbox.Process, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(c.logs.lines(p), line) {
		if time.Now().After(deadline) {
			t.Errorf("%v wrote %q, want a line %q", p, c.logs.lines(p), line)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logs collects each process's output by the name the driver gave it.
type logs struct {
	mu  sync.Mutex
	out map[sandbox.Process]*strings.Builder
}

// output is a Spec.Output: a pipe per process, read into the process's
// builder.
func (l *logs) output(p sandbox.Process) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.out == nil {
		l.out = map[sandbox.Process]*strings.Builder{}
	}
	if _, dup := l.out[p]; dup {
		l.mu.Unlock()
		r.Close()
		w.Close()
		return nil, fmt.Errorf("output asked twice for %v", p)
	}
	b := &strings.Builder{}
	l.out[p] = b
	l.mu.Unlock()
	go func() {
		defer r.Close()
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			l.mu.Lock()
			b.Write(buf[:n])
			l.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w, nil
}

func (l *logs) lines(p sandbox.Process) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.out[p]
	if !ok {
		return nil
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// fakeAPI is the smallest Runtime and Extensions API the suite needs: it
// hands queued invokes to the runtime, and SHUTDOWN to extensions once
// closed.
type fakeAPI struct {
	mux      *http.ServeMux
	invokes  chan invocation
	shutdown chan struct{}
	once     sync.Once

	mu      sync.Mutex
	names   []string // extensions registered, in order
	nexts   int      // the runtime's calls to next
	pending map[string]chan<- string
	seq     int
}

type invocation struct {
	payload string
	answer  chan<- string
}

func newFakeAPI() *fakeAPI {
	a := &fakeAPI{mux: http.NewServeMux(), invokes: make(chan invocation, 16), shutdown: make(chan struct{}), pending: map[string]chan<- string{}}
	a.mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", a.next)
	a.mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", a.respond)
	a.mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", a.respond)
	a.mux.HandleFunc("POST /2020-01-01/extension/register", a.register)
	a.mux.HandleFunc("GET /2020-01-01/extension/event/next", a.event)
	return a
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *fakeAPI) close() { a.once.Do(func() { close(a.shutdown) }) }

func (a *fakeAPI) next(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.nexts++
	a.mu.Unlock()
	select {
	case inv := <-a.invokes:
		a.mu.Lock()
		a.seq++
		id := "req-" + strconv.Itoa(a.seq)
		a.pending[id] = inv.answer
		a.mu.Unlock()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		_, _ = io.WriteString(w, inv.payload)
	case <-r.Context().Done():
	}
}

func (a *fakeAPI) respond(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	answer, ok := a.pending[r.PathValue("id")]
	delete(a.pending, r.PathValue("id"))
	a.mu.Unlock()
	if !ok {
		http.Error(w, "unknown request", http.StatusBadRequest)
		return
	}
	answer <- string(b)
	w.WriteHeader(http.StatusAccepted)
}

func (a *fakeAPI) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get("Lambda-Extension-Name")
	a.mu.Lock()
	a.names = append(a.names, name)
	a.mu.Unlock()
	w.Header().Set("Lambda-Extension-Identifier", name)
	_, _ = io.WriteString(w, "{}")
}

func (a *fakeAPI) event(w http.ResponseWriter, r *http.Request) {
	select {
	case <-a.shutdown:
		_, _ = io.WriteString(w, `{"eventType":"SHUTDOWN","shutdownReason":"spindown"}`)
	case <-r.Context().Done():
	}
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s was never closed", what)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
