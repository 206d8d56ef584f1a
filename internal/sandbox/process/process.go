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
	"path/filepath"
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
	c      container
	mem    *memLimiter // nil when memory cannot be limited
	memErr error       // why not
}

// Driver implements sandbox.Driver.
var _ sandbox.Driver = (*Driver)(nil)

// container is a containment mechanism: cgroups or subreaper.
type container interface {
	// newEnv prepares the group of one environment.
	newEnv() (envGroup, error)
	// describe names the mechanism for the log.
	describe() string
	// close kills what is left of every group and releases the mechanism.
	close(deadline time.Time) error
}

// envGroup holds every process of one environment, in a group per
// process.
type envGroup interface {
	// newGroup prepares cmd to start in a group of its own within the
	// environment's; name is unique in the environment.
	newGroup(cmd *exec.Cmd, name string) (group, error)
	// pids lists every process of the environment.
	pids() []int
	// signal sends sig to every process of the environment.
	signal(sig syscall.Signal)
	// kill kills every process of the environment and returns once none
	// is left, or an error wrapping errStillRunning at deadline.
	kill(deadline time.Time) error
	// release frees the environment's groups, once they are empty.
	release() error
}

// group holds the processes of one process of an environment: it and
// what it started.
type group interface {
	// started is told the process's pid once it runs.
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
				return withMemory(&Driver{c: c}, self, c.dir), nil
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
	return withMemory(&Driver{c: s}, self, ""), nil
}

// withMemory gives d a memory limiter: the cgroup v2 memory controller
// below v2dir where it is available, else the v1 memory controller. Where
// neither is, d.memErr says why; environments then run unlimited and
// their memory is measured from their process tree.
func withMemory(d *Driver, self instance, v2dir string) *Driver {
	var errs []error
	if v2dir != "" {
		m, err := newMemLimiterV2(v2dir)
		if err == nil {
			d.mem = m
			return d
		}
		errs = append(errs, err)
	}
	m, err := newMemLimiterV1(self)
	if err == nil {
		d.mem = m
		return d
	}
	d.memErr = errors.Join(append(errs, err)...)
	return d
}

// Mechanism says how runtimes are contained: "cgroup v2 at <dir>" or "a
// child subreaper", and how their memory is limited, or why it is not.
func (d *Driver) Mechanism() string {
	if d.mem == nil {
		return d.c.describe() + "; memory NOT limited (" + strings.ReplaceAll(d.memErr.Error(), "\n", "; ") + "): Max Memory Used is the peak of the process tree"
	}
	return d.c.describe() + "; " + d.mem.describe()
}

// MemoryLimited reports whether Spec.MemoryLimit is enforced, and if not,
// why.
func (d *Driver) MemoryLimited() error { return d.memErr }

// Close kills whatever the driver's environments left and releases the
// mechanism (removes the driver's cgroup, stops being a subreaper). It
// waits up to 5 s, or until ctx ends, for the processes to be gone.
func (d *Driver) Close(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	err := d.c.close(deadline)
	if d.mem != nil {
		err = errors.Join(err, d.mem.close())
	}
	return err
}

// Start implements sandbox.Driver: the environment gets a group (a cgroup,
// or a marker under the subreaper) holding a group for each of its
// processes, the extensions first, in name order, then the runtime.
func (d *Driver) Start(_ context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	names := sandbox.FindExtensions(spec.ExtensionsDir)
	if err := checkExecutable(spec.Path); err != nil {
		// The runtime would not run: fail before starting the extensions.
		return nil, fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	eg, err := d.c.newEnv()
	if err != nil {
		return nil, fmt.Errorf("starting an environment: %w", err)
	}
	e := &env{eg: eg, done: make(chan struct{})}
	if d.mem != nil && spec.MemoryLimit > 0 {
		v2dir := ""
		if ce, ok := eg.(*cgroupEnv); ok {
			v2dir = ce.dir
		}
		if e.mc, err = d.mem.newEnv(spec.MemoryLimit, v2dir); err != nil {
			_ = eg.release()
			return nil, fmt.Errorf("starting an environment: %w", err)
		}
	}
	fail := func(err error) (sandbox.Env, error) {
		e.killAll()
		return nil, err
	}
	if spec.Found != nil && len(names) > 0 {
		spec.Found(names)
	}
	for i, name := range names {
		path := filepath.Join(spec.ExtensionsDir, name)
		p, err := e.start(spec, sandbox.Process{Kind: sandbox.KindExtension, Name: name}, path, nil, "ext-"+strconv.Itoa(i))
		if err != nil {
			return fail(&sandbox.ExtensionError{Name: name, Err: fmt.Errorf("starting %s: %w", path, err)})
		}
		e.exts = append(e.exts, sandbox.Extension{Name: name, Proc: p})
	}
	if spec.BeforeRuntime != nil && !spec.BeforeRuntime(e.Extensions()) {
		go e.wait()
		return e, nil
	}
	rt, err := e.start(spec, sandbox.Process{Kind: sandbox.KindFunction}, spec.Path, spec.Args, "runtime")
	if err != nil {
		return fail(fmt.Errorf("starting %s: %w", spec.Path, err))
	}
	e.runtime = rt
	go e.wait()
	return e, nil
}

// start launches one process of the environment in a group of its own.
func (e *env) start(spec sandbox.Spec, which sandbox.Process, path string, args []string, group string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	if spec.Output != nil {
		out, err := spec.Output(which)
		if err != nil {
			return nil, err
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	g, err := e.eg.newGroup(cmd, group)
	if err != nil {
		return nil, err
	}
	start := theReaper.start
	if e.mc != nil {
		start = func(cmd *exec.Cmd) error { return e.mc.start(cmd, theReaper.start) }
	}
	if err := start(cmd); err != nil {
		_ = g.release()
		return nil, &sandbox.EntrypointError{Err: err}
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

// proc implements sandbox.Proc.
var _ sandbox.Proc = (*proc)(nil)

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

// Done implements sandbox.Proc: closed once the process and every process
// it started have ended.
func (p *proc) Done() <-chan struct{} { return p.done }

// Exit implements sandbox.Proc.
func (p *proc) Exit() sandbox.ExitStatus { return p.exit }

// Stop implements sandbox.Proc: SIGTERM to the process and what it
// started, then SIGKILL to all when ctx expires.
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

// env is one environment: its processes, and the group holding them all.
type env struct {
	eg      envGroup
	runtime *proc // nil when BeforeRuntime kept it from starting
	exts    []sandbox.Extension
	mc      *memcg // the memory cgroup; nil when memory is not limited
	done    chan struct{}
}

// env implements sandbox.Env and sandbox.MemoryReporter.
var (
	_ sandbox.Env            = (*env)(nil)
	_ sandbox.MemoryReporter = (*env)(nil)
	_ sandbox.OOMReporter    = (*env)(nil)
)

// Runtime implements sandbox.Env.
func (e *env) Runtime() sandbox.Proc {
	if e.runtime == nil {
		return nil
	}
	return e.runtime
}

// Extensions implements sandbox.Env.
func (e *env) Extensions() []sandbox.Extension { return append([]sandbox.Extension(nil), e.exts...) }

// Done implements sandbox.Env: closed once every process has exited and
// the environment's group is empty and released.
func (e *env) Done() <-chan struct{} { return e.done }

// procs lists the environment's processes.
func (e *env) procs() []*proc {
	var ps []*proc
	for _, x := range e.exts {
		ps = append(ps, x.Proc.(*proc))
	}
	if e.runtime != nil {
		ps = append(ps, e.runtime)
	}
	return ps
}

// wait closes done once every process has exited, and then ends what is
// left in the environment's group.
func (e *env) wait() {
	for _, p := range e.procs() {
		<-p.done
	}
	if err := e.eg.kill(time.Now().Add(killWait)); err == nil {
		e.releaseMemory()
		_ = e.eg.release()
	}
	close(e.done)
}

// releaseMemory keeps the memory cgroup's figures and removes it; its
// processes are gone.
func (e *env) releaseMemory() {
	if e.mc != nil {
		e.mc.release()
	}
}

// OutOfMemory implements sandbox.OOMReporter: whether the kernel killed a
// process of the environment for passing its memory limit.
func (e *env) OutOfMemory() bool {
	if e.mc == nil {
		return false
	}
	return e.mc.outOfMemory()
}

// killAll ends a start that failed half way: whatever started is killed
// and reaped, and the groups released.
func (e *env) killAll() {
	_ = e.eg.kill(time.Now().Add(killWait))
	for _, p := range e.procs() {
		<-p.done
	}
	e.releaseMemory()
	_ = e.eg.release()
}

// Stop implements sandbox.Env: SIGTERM to every process of the
// environment, then SIGKILL to all when ctx expires.
func (e *env) Stop(ctx context.Context) error {
	select {
	case <-e.done:
		return nil
	default:
	}
	e.eg.signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	kerr := e.eg.kill(time.Now().Add(killWait))
	select {
	case <-e.done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.Join(kerr, errors.New("environment did not end after SIGKILL"))
	}
}

// MaxMemory implements sandbox.MemoryReporter: the peak of the
// environment's memory cgroup where it has one, else the sum of the peaks
// of every process of the environment and of what each started.
func (e *env) MaxMemory() (uint64, error) {
	if e.mc != nil {
		if peak := e.mc.maxMemory(); peak > 0 {
			return peak, nil
		}
	}
	var sum uint64
	var errs []error
	for _, p := range e.procs() {
		m, err := p.MaxMemory()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sum += m
	}
	if sum == 0 && len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	return sum, nil
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
