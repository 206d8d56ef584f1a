// Package process runs execution environments as host processes. Each
// runtime gets its own process group, so that stopping an environment stops
// every process it started.
package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Driver starts runtimes as host processes.
type Driver struct{}

// Driver implements sandbox.Driver.
var _ sandbox.Driver = Driver{}

// Start implements sandbox.Driver.
func (Driver) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	if err := checkExecutable(spec.Path); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	if spec.Stdout != nil {
		cmd.Stdout = spec.Stdout
	}
	if spec.Stderr != nil {
		cmd.Stderr = spec.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Path, &sandbox.EntrypointError{Err: err})
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go p.wait()
	return p, nil
}

// checkExecutable reports a bootstrap that is missing, a directory or not
// executable, in the words of fork/exec.
func checkExecutable(path string) error {
	lp, err := exec.LookPath(path)
	if err == nil {
		path = lp
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return &sandbox.EntrypointError{Err: fmt.Errorf("fork/exec %s: no such file or directory", path)}
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return &sandbox.EntrypointError{Err: fmt.Errorf("fork/exec %s: permission denied", path)}
	}
	return nil
}

type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	exit sandbox.ExitStatus

	memMu    sync.Mutex
	exited   bool      // set by wait; /proc/<pid> is gone
	exitPeak uint64    // the runtime's own peak, from its rusage, once exited
	status   *os.File  // /proc/<pid>/status, kept open
	walked   time.Time // last walk of the descendants
	children uint64    // their summed peak at that walk
}

// proc implements sandbox.Env and sandbox.MemoryReporter.
var (
	_ sandbox.Env            = (*proc)(nil)
	_ sandbox.MemoryReporter = (*proc)(nil)
)

func (p *proc) wait() {
	err := p.cmd.Wait()
	// The runtime is gone; reap whatever it left in its process group.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	st := sandbox.ExitStatus{Code: -1}
	var ee *exec.ExitError
	if errors.As(err, &ee) || err == nil {
		ps := p.cmd.ProcessState
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signal = ws.Signal().String()
		} else {
			st.Code = ps.ExitCode()
		}
	}
	p.exit = st
	p.memMu.Lock()
	p.exited = true
	if ps := p.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > 0 {
			p.exitPeak = uint64(ru.Maxrss) * 1024 // KiB on Linux
		}
	}
	if p.status != nil {
		p.status.Close()
		p.status = nil
	}
	p.memMu.Unlock()
	close(p.done)
}

func (p *proc) Done() <-chan struct{}    { return p.done }
func (p *proc) Exit() sandbox.ExitStatus { return p.exit }

// Stop implements sandbox.Env: SIGTERM to the process group, then SIGKILL
// when ctx expires.
func (p *proc) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("process %d did not exit after SIGKILL", p.pid)
	}
}

// descendantsEvery is how often MaxMemory walks the process tree; between
// walks it re-reads only the runtime's own peak, which is cheap.
const descendantsEvery = time.Second

// MaxMemory implements sandbox.MemoryReporter: the sum of the peak resident
// set (VmHWM) of the runtime and its descendants. Once the runtime has
// exited (a crash), its own peak comes from its resource usage.
func (p *proc) MaxMemory() (uint64, error) {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	if p.exited {
		return p.exitPeak + p.children, nil
	}
	if p.status == nil {
		f, err := os.Open("/proc/" + strconv.Itoa(p.pid) + "/status")
		if err != nil {
			return 0, fmt.Errorf("reading memory of process %d: %w", p.pid, err)
		}
		p.status = f
	}
	own, err := readHWM(p.status, p.pid)
	if err != nil {
		return 0, err
	}
	if time.Since(p.walked) >= descendantsEvery {
		p.walked = time.Now()
		var sum uint64
		for _, c := range descendants(p.pid) {
			if hwm, err := peakRSS(c); err == nil {
				sum += hwm
			}
		}
		p.children = max(p.children, sum)
	}
	return own + p.children, nil
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	var out []int
	seen := map[int]bool{pid: true}
	stack := children(pid)
	for len(stack) > 0 && len(seen) < 4096 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
		stack = append(stack, children(c)...)
	}
	return out
}

// peakRSS reads VmHWM from /proc/<pid>/status, in bytes.
func peakRSS(pid int) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	defer f.Close()
	return readHWM(f, pid)
}

// readHWM parses VmHWM from an open /proc/<pid>/status.
func readHWM(f *os.File, pid int) (uint64, error) {
	var buf [4096]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	b := buf[:n]
	i := bytes.Index(b, []byte("VmHWM:"))
	if i < 0 {
		return 0, fmt.Errorf("reading memory of process %d: no VmHWM", pid)
	}
	fields := bytes.Fields(b[i+len("VmHWM:"):])
	if len(fields) == 0 {
		return 0, fmt.Errorf("reading memory of process %d: empty VmHWM", pid)
	}
	kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	return kb * 1024, nil
}

// children lists the direct children of every thread of pid.
func children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
