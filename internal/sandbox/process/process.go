// Package process runs execution environments as host processes, and
// contains each: every process an environment starts, including those that
// call setsid or double-fork, ends with it. Where lambdabox can make a
// cgroup v2 (as root, or in a delegated subtree) each environment gets one
// and is killed with cgroup.kill; elsewhere lambdabox becomes a child
// subreaper that adopts orphans and finds an environment's processes by a
// marker in their environment. Driver.Mechanism says which is in use.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Containment selects how a Driver keeps an environment's processes
// together.
type Containment string

// The containment mechanisms.
const (
	// Auto uses a cgroup v2 where one can be made, else a subreaper.
	Auto Containment = ""
	// Cgroup requires a cgroup v2 per environment.
	Cgroup Containment = "cgroup"
	// Subreaper uses a child subreaper even where cgroups would work.
	Subreaper Containment = "subreaper"
)

// Config configures a Driver. The zero value is ready to use.
type Config struct {
	// Containment forces a mechanism; the default, Auto, picks one.
	Containment Containment
	// CgroupParent is the cgroup v2 directory below which the driver makes
	// its cgroups; the default is the cgroup lambdabox runs in.
	CgroupParent string
	// Log receives what the driver cleans up at start; default discard.
	Log *slog.Logger
}

// Validate reports a Containment that is not one of the constants.
func (c Config) Validate() error {
	switch c.Containment {
	case Auto, Cgroup, Subreaper:
		return nil
	}
	return fmt.Errorf("unknown containment %q (want %q or %q)", c.Containment, Cgroup, Subreaper)
}

// Driver starts runtimes as contained host processes. Close it once its
// environments are stopped.
type Driver struct {
	c container
}

// Driver implements sandbox.Driver.
var _ sandbox.Driver = (*Driver)(nil)

// container is a containment mechanism: cgroups or subreaper.
type container interface {
	// newGroup prepares cmd to start in a group of its own.
	newGroup(cmd *exec.Cmd) (group, error)
	// describe names the mechanism for the log.
	describe() string
	// close kills what is left of every group and releases the mechanism.
	close(deadline time.Time) error
}

// group holds the processes of one environment.
type group interface {
	// started is told the runtime's pid once it runs.
	started(pid int)
	// pids lists the processes in the group.
	pids() []int
	// signal sends sig to every process in the group.
	signal(sig syscall.Signal)
	// kill kills every process in the group and returns once none is
	// left, or an error wrapping errStillRunning at deadline.
	kill(deadline time.Time) error
	// release frees the group, once it is empty.
	release() error
}

// New returns a driver using the mechanism cfg asks for. It first kills
// what lambdabox processes that were killed themselves left running.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	self, err := newInstance()
	if err != nil {
		return nil, err
	}
	var cgErr error
	if cfg.Containment != Subreaper {
		parent := cfg.CgroupParent
		if parent == "" {
			parent, cgErr = ownCgroup2()
		}
		if cgErr == nil {
			var c *cgroups
			if c, cgErr = newCgroups(parent, self, log); cgErr == nil {
				return &Driver{c: c}, nil
			}
		}
		if cfg.Containment == Cgroup {
			return nil, fmt.Errorf("containing runtimes with cgroup v2: %w", cgErr)
		}
		log.Debug("no cgroup v2 for runtimes", "error", cgErr)
	}
	s, err := newSubreaper(self, log)
	if err != nil {
		return nil, errors.Join(cgErr, err)
	}
	return &Driver{c: s}, nil
}

// Mechanism says how runtimes are contained: "cgroup v2 at <dir>" or "a
// child subreaper".
func (d *Driver) Mechanism() string { return d.c.describe() }

// Close kills whatever the driver's environments left and releases the
// mechanism (removes the driver's cgroup, stops being a subreaper). It
// waits up to 5 s, or until ctx ends, for the processes to be gone.
func (d *Driver) Close(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return d.c.close(deadline)
}

// Start implements sandbox.Driver.
func (d *Driver) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
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
	g, err := d.c.newGroup(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	err = theReaper.start(cmd)
	if err != nil {
		_ = g.release()
		return nil, fmt.Errorf("starting %s: %w", spec.Path, &sandbox.EntrypointError{Err: err})
	}
	g.started(cmd.Process.Pid)
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, g: g, done: make(chan struct{})}
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

// instance names one driver: the pid and start time of the lambdabox
// process that made it, so that what a dead one left can be told apart,
// and a random tag, so that drivers in one process differ.
type instance struct {
	pid   int
	start uint64
	tag   string
}

func newInstance() (instance, error) {
	st, err := readStat(os.Getpid())
	if err != nil {
		return instance{}, fmt.Errorf("reading this process's start time: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return instance{pid: os.Getpid(), start: st.start, tag: hex.EncodeToString(b[:])}, nil
}

// String renders the instance as <pid>-<start>-<tag>.
func (i instance) String() string {
	return strconv.Itoa(i.pid) + "-" + strconv.FormatUint(i.start, 10) + "-" + i.tag
}

// parseInstance parses what String renders.
func parseInstance(s string) (instance, bool) {
	f := strings.Split(s, "-")
	if len(f) != 3 {
		return instance{}, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return instance{}, false
	}
	return instance{pid: pid, start: start, tag: f[2]}, true
}

type proc struct {
	cmd  *exec.Cmd
	pid  int
	g    group
	done chan struct{}
	exit sandbox.ExitStatus

	memMu    sync.Mutex
	exited   bool      // set by wait; /proc/<pid> is gone
	exitPeak uint64    // the runtime's own peak, from its rusage, once exited
	status   *os.File  // /proc/<pid>/status, kept open
	walked   time.Time // last walk of the group
	children uint64    // the others' summed peak at that walk
}

// proc implements sandbox.Env and sandbox.MemoryReporter.
var (
	_ sandbox.Env            = (*proc)(nil)
	_ sandbox.MemoryReporter = (*proc)(nil)
)

// killWait bounds how long killing a group may take; only a process stuck
// in the kernel takes longer.
const killWait = 10 * time.Second

func (p *proc) wait() {
	err := p.cmd.Wait()
	theReaper.waited(p.pid)
	// The runtime is gone; end everything it started, wherever it went.
	if err := p.g.kill(time.Now().Add(killWait)); err == nil {
		_ = p.g.release()
	}
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

// Done implements sandbox.Env: closed once the runtime and every process
// it started have ended.
func (p *proc) Done() <-chan struct{}    { return p.done }
func (p *proc) Exit() sandbox.ExitStatus { return p.exit }

// Stop implements sandbox.Env: SIGTERM to every process of the
// environment, then SIGKILL to all when ctx expires.
func (p *proc) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.g.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	kerr := p.g.kill(time.Now().Add(killWait))
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.Join(kerr, fmt.Errorf("process %d did not exit after SIGKILL", p.pid))
	}
}

// descendantsEvery is how often MaxMemory lists the environment's other
// processes; between lists it re-reads only the runtime's own peak, which
// is cheap.
const descendantsEvery = time.Second

// MaxMemory implements sandbox.MemoryReporter: the sum of the peak resident
// set (VmHWM) of the runtime and of every other process of its
// environment, setsid ones included. Once the runtime has exited (a
// crash), its own peak comes from its resource usage.
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
		for _, c := range p.g.pids() {
			if c == p.pid {
				continue
			}
			if hwm, err := peakRSS(c); err == nil {
				sum += hwm
			}
		}
		p.children = max(p.children, sum)
	}
	return own + p.children, nil
}
