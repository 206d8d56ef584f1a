package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

// helperEnv makes the test binary, started by a test, play a process.
const helperEnv = "LAMBDABOX_PROCESS_TEST_HELPER"

func TestMain(m *testing.M) {
	sandboxtest.RunFake()
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		return
	}
	os.Exit(m.Run())
}

// runHelper plays a runtime or one of its children. PIDFILE receives the
// pid of the process that is meant to escape.
//
//	runtime-<how>-<stay|exit>: start a child <how>, then sleep or exit
//	setsid: call setsid, allocate ALLOC MiB, write PIDFILE, sleep
//	doublefork: call setsid, start "orphan", exit (a daemon's fork-setsid-fork)
//	orphan: allocate ALLOC MiB, write PIDFILE, sleep
func runHelper(mode string) {
	child := func(mode string) {
		env := []string{helperEnv + "=" + mode}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, helperEnv+"=") {
				env = append(env, kv)
			}
		}
		p, err := os.StartProcess(os.Args[0], os.Args[:1], &os.ProcAttr{
			Env:   env,
			Files: []*os.File{nil, os.Stdout, os.Stderr},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		_ = p.Release()
	}
	hold := func() {
		var mem []byte
		if mib, _ := strconv.Atoi(os.Getenv("ALLOC")); mib > 0 {
			mem = make([]byte, mib<<20)
			for i := range mem {
				mem[i] = 1
			}
		}
		_ = os.WriteFile(os.Getenv("PIDFILE")+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o644)
		_ = os.Rename(os.Getenv("PIDFILE")+".tmp", os.Getenv("PIDFILE"))
		fmt.Println("child output", len(mem))
		time.Sleep(time.Hour)
	}
	switch mode {
	case "setsid":
		_, _ = syscall.Setsid()
		hold()
	case "doublefork":
		_, _ = syscall.Setsid()
		child("orphan")
	case "orphan":
		hold()
	default:
		f := strings.Split(mode, "-") // runtime-<how>-<stay|exit>
		child(f[1])
		if f[2] == "exit" {
			// exit once the child has written its pid
			for i := 0; i < 1000; i++ {
				if _, err := os.Stat(os.Getenv("PIDFILE")); err == nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
		time.Sleep(time.Hour)
	}
}

// drivers returns a driver of each mechanism this machine offers; the
// subreaper is always there.
func drivers(t *testing.T) map[string]*Driver {
	t.Helper()
	out := map[string]*Driver{}
	for _, c := range []Containment{Cgroup, Subreaper} {
		d, err := New(Config{Containment: c})
		if err != nil {
			if c == Cgroup {
				t.Logf("no cgroup v2 here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		out[string(c)] = d
	}
	return out
}

// waitPid waits for a pid in file.
func waitPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child did not start")
		}
		b, _ := os.ReadFile(file)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	// Whatever happens, do not leave it running.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// gone reports whether pid has ended and been reaped (a zombie still
// counts as there), waiting up to 5 s.
func gone(pid int) bool {
	return poll(time.Now().Add(5*time.Second), func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return err != nil
	})
}

func TestEscapingChildrenEndWithTheEnvironment(t *testing.T) {
	for name, d := range drivers(t) {
		for _, how := range []string{"setsid", "doublefork"} {
			for _, end := range []string{"stay", "exit"} {
				t.Run(name+"/"+how+"/"+end, func(t *testing.T) {
					pidFile := filepath.Join(t.TempDir(), "pid")
					pr, pw, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					defer pr.Close()
					env, err := d.Start(context.Background(), sandbox.Spec{
						Path:   os.Args[0],
						Env:    append(os.Environ(), helperEnv+"=runtime-"+how+"-"+end, "PIDFILE="+pidFile, "ALLOC=48"),
						Output: func(sandbox.Process) (*os.File, error) { return pw, nil },
					})
					pw.Close()
					if err != nil {
						t.Fatal(err)
					}
					child := waitPid(t, pidFile)
					if end == "stay" {
						m := env.(sandbox.MemoryReporter)
						if b, err := m.MaxMemory(); err != nil || b < 48<<20 {
							t.Errorf("MaxMemory = %d MiB, %v; want the child's 48 MiB counted", b>>20, err)
						}
						ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
						defer cancel()
						if err := env.Stop(ctx); err != nil {
							t.Fatal(err)
						}
					}
					select {
					case <-env.Done():
					case <-time.After(15 * time.Second):
						t.Fatal("Done not closed")
					}
					if !gone(child) {
						st, _ := readStat(child)
						t.Fatalf("child %d survived the environment (state %c)", child, st.state)
					}
					// Nothing holds the runtime's output open any more.
					done := make(chan error, 1)
					go func() { _, err := io.Copy(io.Discard, pr); done <- err }()
					select {
					case err := <-done:
						if err != nil {
							t.Error(err)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("the runtime's output pipe is still open")
					}
				})
			}
		}
	}
}

func TestStartStopKillsTheProcessGroup(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "child")
			// The runtime starts a child that ignores SIGTERM; Stop must still end both.
			env, err := d.Start(context.Background(), sandbox.Spec{
				Path: "/bin/sh",
				Args: []string{"-c", `sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; while :; do sleep 1; done' & wait`},
			})
			if err != nil {
				t.Fatal(err)
			}
			child := waitPid(t, pidFile)
			if m, ok := env.(sandbox.MemoryReporter); !ok {
				t.Error("no MemoryReporter")
			} else if b, err := m.MaxMemory(); err != nil || b == 0 {
				t.Errorf("MaxMemory = %d, %v", b, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := env.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-env.Done():
			default:
				t.Fatal("Done not closed after Stop")
			}
			if !gone(child) {
				t.Fatalf("child %d survived Stop", child)
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	for name, d := range drivers(t) {
		for args, want := range map[string]string{"exit 3": "exit status 3", "kill -9 $$": "signal: killed", "true": "exit status 0"} {
			env, err := d.Start(context.Background(), sandbox.Spec{Path: "/bin/sh", Args: []string{"-c", args}})
			if err != nil {
				t.Fatal(err)
			}
			<-env.Done()
			if got := env.Runtime().Exit().String(); got != want {
				t.Errorf("%s: %s: %s, want %s", name, args, got, want)
			}
		}
	}
}

func TestInvalidEntrypoint(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, d := range drivers(t) {
		for path, want := range map[string]string{
			"/nonexistent/bootstrap": "no such file or directory",
			notExec:                  "permission denied",
			t.TempDir():              "permission denied",
		} {
			_, err := d.Start(context.Background(), sandbox.Spec{Path: path})
			var ee *sandbox.EntrypointError
			if !errors.Is(err, sandbox.ErrInvalidEntrypoint) || !errors.As(err, &ee) || !strings.Contains(ee.Error(), want) {
				t.Errorf("%s: %s: %v", name, path, err)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for c, ok := range map[Containment]bool{Auto: true, Cgroup: true, Subreaper: true, "docker": false} {
		if err := (Config{Containment: c}).Validate(); (err == nil) != ok {
			t.Errorf("%q: %v", c, err)
		}
	}
}

// startHelper starts the test binary as an "orphan" helper (a process that
// writes its pid and sleeps) with extra environment and attributes.
func startHelper(t *testing.T, attr *syscall.SysProcAttr, env ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, helperEnv+"=orphan", "PIDFILE="+pidFile)...)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	waitPid(t, pidFile)
	return cmd, waited
}

// killedSoon reports whether the helper was killed by a signal within 5 s.
func killedSoon(waited <-chan error) bool {
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()
		}
		// A driver's subreaper in this test process may reap the marked
		// helper before Wait does (it takes marked processes for adopted
		// ones): then Wait finds no child, and the helper is gone.
		return errors.Is(err, syscall.ECHILD)
	case <-time.After(5 * time.Second):
		return false
	}
}

func TestStaleCgroupsOfADeadOwnerAreCleaned(t *testing.T) {
	own, err := ownCgroup2()
	if err != nil {
		t.Skip("no cgroup v2:", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	parent := filepath.Join(own, "lambdabox-test-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Skip("cannot make a cgroup:", err)
	}
	t.Cleanup(func() {
		_ = killCgroup(parent, time.Now().Add(5*time.Second))
		_ = removeCgroup(parent)
	})
	self, err := newInstance()
	if err != nil {
		t.Fatal(err)
	}
	// One cgroup of a dead owner (our pid, another start time: a reused
	// pid), one of a live one.
	dead := filepath.Join(parent, fmt.Sprintf("%s%d-1-dead", cgroupPrefix, os.Getpid()))
	live := filepath.Join(parent, cgroupPrefix+self.String())
	helpers := map[string]<-chan error{}
	for _, dir := range []string{dead, live} {
		if err := os.MkdirAll(filepath.Join(dir, "env-1"), 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := os.Open(filepath.Join(dir, "env-1"))
		if err != nil {
			t.Fatal(err)
		}
		_, helpers[dir] = startHelper(t, &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: int(fd.Fd())})
		fd.Close()
	}
	d, err := New(Config{Containment: Cgroup, CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if !killedSoon(helpers[dead]) {
		t.Error("the process in the dead owner's cgroup was not killed")
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("the dead owner's cgroup was not removed")
	}
	if !populated(live) {
		t.Error("the live owner's cgroup was emptied")
	}
}

func TestStaleMarkedProcessesOfADeadOwnerAreKilled(t *testing.T) {
	_, deadWaited := startHelper(t, &syscall.SysProcAttr{Setsid: true}, fmt.Sprintf("%s=%d-1-dead.1", markerKey, os.Getpid()))
	self, err := newInstance()
	if err != nil {
		t.Fatal(err)
	}
	_, liveWaited := startHelper(t, &syscall.SysProcAttr{Setsid: true}, markerKey+"="+self.String()+".1")
	d, err := New(Config{Containment: Subreaper})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if !killedSoon(deadWaited) {
		t.Error("the process of a dead owner was not killed")
	}
	select {
	case err := <-liveWaited:
		t.Errorf("the process of a live owner ended: %v", err)
	default:
	}
}

// The subreaper reaps adopted orphans only: a child that os/exec started
// elsewhere in the process keeps its exit status.
func TestSubreaperLeavesOtherChildrenAlone(t *testing.T) {
	d, err := New(Config{Containment: Subreaper})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	cmd := exec.Command("/bin/sh", "-c", "exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it become a zombie, then reap.
	poll(time.Now().Add(5*time.Second), func() bool {
		st, err := readStat(cmd.Process.Pid)
		return err == nil && st.state == 'Z'
	})
	theReaper.reap()
	if err := cmd.Wait(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("exit status lost: %v", err)
	}
}

// fdCount counts this process's open file descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

func TestNoFdLeftOpen(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			// a first environment, for whatever Go opens once
			env, err := d.Start(context.Background(), sandbox.Spec{Path: "/bin/sh", Args: []string{"-c", "exit 0"}})
			if err != nil {
				t.Fatal(err)
			}
			<-env.Done()
			before := fdCount(t)
			for range 5 {
				pidFile := filepath.Join(t.TempDir(), "pid")
				env, err := d.Start(context.Background(), sandbox.Spec{
					Path: os.Args[0],
					Env:  append(os.Environ(), helperEnv+"=runtime-setsid-stay", "PIDFILE="+pidFile),
				})
				if err != nil {
					t.Fatal(err)
				}
				waitPid(t, pidFile)
				_ = env.(sandbox.MemoryReporter)
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := env.Stop(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// The driver's own goroutines open files for a moment (a
			// process's children in /proc, /dev/null for a start): an fd
			// left open stays, one of those goes.
			after := fdCount(t)
			for deadline := time.Now().Add(2 * time.Second); after > before && time.Now().Before(deadline); after = fdCount(t) {
				time.Sleep(10 * time.Millisecond)
			}
			if after > before {
				t.Errorf("%d fds open after 5 environments, %d before", after, before)
			}
		})
	}
}

// A runtime that grew and then crashed still has its peak measured: the
// figure comes from its resource usage once /proc no longer has it.
func TestMaxMemoryAfterExit(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) { maxMemoryAfterExit(t, d) })
	}
}

func maxMemoryAfterExit(t *testing.T, d *Driver) {
	env, err := d.Start(context.Background(), sandbox.Spec{
		Path: "/bin/sh",
		Args: []string{"-c", `x=$(head -c 52428800 /dev/zero | tr '\0' a); exit 3`},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-env.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the runtime did not exit")
	}
	b, err := env.(sandbox.MemoryReporter).MaxMemory()
	if err != nil || b < 50<<20 {
		t.Errorf("MaxMemory after exit = %d, %v; want at least 50 MiB", b, err)
	}
}

// TestConformance runs each containment mechanism through the suite every
// sandbox driver passes, with this test binary as the runtime and the
// extensions.
func TestConformance(t *testing.T) {
	for _, c := range []Containment{Cgroup, Subreaper} {
		t.Run(string(c), func(t *testing.T) {
			probe, err := New(Config{Containment: c})
			if err != nil {
				t.Skip("not on this machine:", err)
			}
			limits := probe.MemoryLimited() == nil
			if !limits {
				t.Log("memory is not limited here:", probe.MemoryLimited())
			}
			_ = probe.Close(context.Background())
			sandboxtest.Conformance(t, sandboxtest.Harness{
				Driver: func(t *testing.T) sandbox.Driver {
					d, err := New(Config{Containment: c})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						if err := d.Close(context.Background()); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					return d
				},
				Runtime:      []string{os.Args[0]},
				Processes:    true,
				LimitsMemory: limits,
			})
		})
	}
}

// Every process of an environment, extensions and what they started
// included, is in the environment's one group: a cgroup below the
// environment's, or a marker below its id. Stop ends them all.
func TestOneGroupPerEnvironment(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			ext := "#!/bin/sh\nsetsid sleep 600 </dev/null >/dev/null 2>&1 &\necho $! >" + pidFile + "\nexec sleep 600\n"
			if err := os.WriteFile(filepath.Join(dir, "ext"), []byte(ext), 0o755); err != nil {
				t.Fatal(err)
			}
			se, err := d.Start(context.Background(), sandbox.Spec{Path: "/bin/sleep", Args: []string{"600"}, ExtensionsDir: dir, Env: os.Environ()})
			if err != nil {
				t.Fatal(err)
			}
			escaped := waitPid(t, pidFile)
			e := se.(*env)
			rt, x := e.runtime.pid, e.exts[0].Proc.(*proc).pid
			switch name {
			case string(Cgroup):
				if a, b := filepath.Dir(cgroupOf(t, rt)), filepath.Dir(cgroupOf(t, x)); a != b {
					t.Errorf("runtime in %s, extension in %s: want one environment cgroup", a, b)
				}
				if got := filepath.Dir(cgroupOf(t, escaped)); got != filepath.Dir(cgroupOf(t, rt)) {
					t.Errorf("the extension's escaped child is in %s", got)
				}
			case string(Subreaper):
				a, b := environValue(rt, markerKey), environValue(x, markerKey)
				if a == "" || a == b || a[:strings.LastIndexByte(a, '.')] != b[:strings.LastIndexByte(b, '.')] {
					t.Errorf("markers %q and %q: want one environment's id with a process each", a, b)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := se.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if st := readState(escaped); st != "" && st != "Z" {
				_ = syscall.Kill(escaped, syscall.SIGKILL)
				t.Errorf("the extension's escaped child %d outlived Stop (state %s)", escaped, st)
			}
		})
	}
}

// cgroupOf is the cgroup v2 path of pid.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	t.Fatalf("no cgroup v2 for %d: %s", pid, b)
	return ""
}

// readState is pid's state letter, "" once it is gone.
func readState(pid int) string {
	st, err := readStat(pid)
	if err != nil {
		return ""
	}
	return string(st.state)
}

// An environment with a memory limit is killed by the kernel once it
// allocates past it, says so (OutOfMemory), and reports a peak at the
// limit; one that stays below runs on. Both containment mechanisms limit
// memory where the machine has a memory cgroup.
func TestMemoryLimit(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			if err := d.MemoryLimited(); err != nil {
				t.Skip("no memory cgroup on this machine, memory is not limited: ", err)
			}
			start := func(allocMiB int) sandbox.Env {
				env, err := d.Start(context.Background(), sandbox.Spec{
					Path:        os.Args[0],
					Env:         []string{helperEnv + "=orphan", "ALLOC=" + strconv.Itoa(allocMiB), "PIDFILE=" + filepath.Join(t.TempDir(), "pid")},
					MemoryLimit: 128 << 20,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = env.Stop(context.Background()) })
				return env
			}
			big := start(400)
			select {
			case <-big.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("allocating 400 MiB with a 128 MiB limit: not killed")
			}
			if !big.(sandbox.OOMReporter).OutOfMemory() {
				t.Errorf("OutOfMemory = false after %s", big.Runtime().Exit())
			}
			if st := big.Runtime().Exit(); st.Signal != "killed" {
				t.Errorf("exit = %s, want signal: killed", st)
			}
			if peak, err := big.(sandbox.MemoryReporter).MaxMemory(); err != nil || peak < 100<<20 || peak > 129<<20 {
				t.Errorf("MaxMemory = %d MiB, %v; want the limit, 128 MiB", peak>>20, err)
			}

			small := start(16)
			time.Sleep(500 * time.Millisecond)
			select {
			case <-small.Done():
				t.Fatalf("16 MiB under a 128 MiB limit ended: %s", small.Runtime().Exit())
			default:
			}
			if small.(sandbox.OOMReporter).OutOfMemory() {
				t.Error("OutOfMemory = true below the limit")
			}
		})
	}
}
