package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// markerKey is the environment variable that tells, under a subreaper,
// which environment a process belongs to: every process inherits it, so a
// scan of /proc finds those that left the runtime's process group.
const markerKey = "LAMBDABOX_SANDBOX"

// subreaper contains environments where no cgroup can be made: lambdabox
// becomes a child subreaper, so orphans of a runtime (double-forked or
// setsid children whose parent is gone) are reparented to it, and each
// environment's processes are found by their process group or by the
// marker in their environment.
type subreaper struct {
	self instance
	r    *reaper
	next atomic.Int64
}

func newSubreaper(self instance, log *slog.Logger) (*subreaper, error) {
	killStaleMarked(log)
	if err := theReaper.acquire(); err != nil {
		return nil, err
	}
	return &subreaper{self: self, r: theReaper}, nil
}

// killStaleMarked kills the processes that environments of lambdabox
// processes now dead left running.
func killStaleMarked(log *slog.Logger) {
	n := 0
	for _, pid := range allPids() {
		v := environValue(pid, markerKey)
		owner, ok := parseInstance(strings.SplitN(v, ".", 2)[0])
		if ok && !ownerAlive(owner.pid, owner.start) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	if n > 0 {
		log.Info("killed what a lambdabox that is gone left running", "processes", n)
	}
}

func (s *subreaper) describe() string { return "a child subreaper" }

// newEnv gives an environment an id of its own; its processes' markers
// extend it.
func (s *subreaper) newEnv() (envGroup, error) {
	return &markedEnv{r: s.r, id: s.self.String() + "." + fmt.Sprint(s.next.Add(1))}, nil
}

// markedEnv is one environment under a subreaper: the groups of its
// processes, and every process whose marker starts with its id.
type markedEnv struct {
	r  *reaper
	id string

	mu     sync.Mutex
	n      int
	groups []*marked
}

// newGroup marks cmd's environment with an id of its own, below the
// environment's.
func (e *markedEnv) newGroup(cmd *exec.Cmd, _ string) (group, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	id := e.id + "." + strconv.Itoa(e.n)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env[:len(cmd.Env):len(cmd.Env)], markerKey+"="+id)
	g := &marked{r: e.r, match: func(v string) bool { return v == id }}
	e.groups = append(e.groups, g)
	return g, nil
}

// all is every process of the environment: the process groups of its
// processes and every marker below its id.
func (e *markedEnv) all() *marked {
	prefix := e.id + "."
	return &marked{r: e.r, match: func(v string) bool { return strings.HasPrefix(v, prefix) }}
}

func (e *markedEnv) pids() []int { return e.all().pids() }

func (e *markedEnv) signal(sig syscall.Signal) { signalAll(e.all().pids(), sig) }

func (e *markedEnv) kill(deadline time.Time) error {
	e.mu.Lock()
	groups := append([]*marked(nil), e.groups...)
	e.mu.Unlock()
	var errs []error
	for _, g := range groups {
		errs = append(errs, g.kill(deadline))
	}
	errs = append(errs, e.all().kill(deadline))
	return errors.Join(errs...)
}

func (e *markedEnv) release() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.groups {
		_ = g.release()
	}
	return nil
}

// close kills what the driver's environments left and stops being a
// subreaper.
func (s *subreaper) close(deadline time.Time) error {
	prefix := s.self.String() + "."
	g := &marked{r: s.r, match: func(v string) bool { return strings.HasPrefix(v, prefix) }}
	err := g.kill(deadline)
	s.r.release()
	return err
}

// marked is one environment under a subreaper: the runtime's process
// group, and every process whose marker matches.
type marked struct {
	r     *reaper
	match func(marker string) bool
	pgid  int // the runtime's pid, 0 for the driver-wide group of close
}

func (g *marked) started(pid int) {
	g.pgid = pid
	g.r.addGroup(pid)
}

// find lists the environment's processes still running and whether any
// is left at all, counting zombies not reaped yet.
func (g *marked) find() (live []int, any bool) {
	self := os.Getpid()
	for _, pid := range allPids() {
		if pid == self {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		ours := (g.pgid != 0 && st.pgid == g.pgid) || g.r.wasKilled(pid)
		if ours || (st.state != 'Z' && g.match(environValue(pid, markerKey))) {
			any = true
			if st.state != 'Z' {
				live = append(live, pid)
			}
		}
	}
	return live, any
}

func (g *marked) pids() []int {
	live, _ := g.find()
	return live
}

func (g *marked) signal(sig syscall.Signal) { signalAll(g.pids(), sig) }

// kill kills the environment's processes until none is left, reaping
// those lambdabox adopted.
func (g *marked) kill(deadline time.Time) error {
	ok := poll(deadline, func() bool {
		live, any := g.find()
		g.r.killed(live)
		signalAll(live, syscall.SIGKILL)
		g.r.reap()
		return !any
	})
	if !ok {
		return fmt.Errorf("killing the processes of an environment: %w", errStillRunning)
	}
	return nil
}

func (g *marked) release() error {
	if g.pgid != 0 {
		g.r.dropGroup(g.pgid)
	}
	return nil
}

// reaper owns this process's child-subreaper attribute, which the kernel
// keeps per process, and so is one per process: drivers share it through
// acquire and release. It reaps the zombies of the orphans it adopted
// and only those: never a child os/exec started and will wait for.
type reaper struct {
	mu      sync.Mutex
	started map[int]bool      // children that os/exec waits for
	groups  map[int]time.Time // process groups of contained runtimes: zero while running, else when to forget
	kills   map[int]bool      // processes killed for an environment
	sid     int               // lambdabox's session
	refs    int
	stop    chan struct{}
	done    chan struct{}
}

// theReaper is the reaper of this process; see reaper.
var theReaper = &reaper{started: map[int]bool{}, groups: map[int]time.Time{}, kills: map[int]bool{}}

// forgetGroupAfter is how long a released group's orphans are still
// reaped: the last ones may become zombies a moment after the group is
// seen empty.
const forgetGroupAfter = 10 * time.Second

// acquire makes this process a subreaper and starts reaping.
func (r *reaper) acquire() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refs == 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("becoming a child subreaper: %w", err)
		}
		sid, err := unix.Getsid(0)
		if err != nil {
			return fmt.Errorf("reading the session id: %w", err)
		}
		r.sid = sid
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.loop(r.stop, r.done)
	}
	r.refs++
	return nil
}

// release stops being a subreaper once the last driver is done with it.
func (r *reaper) release() {
	r.mu.Lock()
	r.refs--
	if r.refs > 0 {
		r.mu.Unlock()
		return
	}
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	stop, done := r.stop, r.done
	r.mu.Unlock()
	close(stop)
	<-done
	r.reap() // orphans adopted before the attribute was dropped
}

// loop reaps at every SIGCHLD, and every second in case signals merged.
func (r *reaper) loop(stop, done chan struct{}) {
	defer close(done)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-sigc:
		case <-tick.C:
		}
		r.reap()
	}
}

// start starts cmd. Holding the lock from fork to recording the pid keeps
// reap from taking a child that exits at once for an orphan.
func (r *reaper) start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.started[cmd.Process.Pid] = true
	return nil
}

// waited forgets a child that os/exec has reaped.
func (r *reaper) waited(pid int) {
	r.mu.Lock()
	delete(r.started, pid)
	r.mu.Unlock()
}

// addGroup has the orphans in process group pgid reaped.
func (r *reaper) addGroup(pgid int) {
	r.mu.Lock()
	r.groups[pgid] = time.Time{}
	r.mu.Unlock()
}

// dropGroup forgets process group pgid, once the last of its orphans
// have been reaped.
func (r *reaper) dropGroup(pgid int) {
	r.mu.Lock()
	r.groups[pgid] = time.Now().Add(forgetGroupAfter)
	r.mu.Unlock()
}

func (r *reaper) killed(pids []int) {
	r.mu.Lock()
	for _, pid := range pids {
		r.kills[pid] = true
	}
	r.mu.Unlock()
}

func (r *reaper) wasKilled(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kills[pid]
}

// reap reaps the zombie children that are adopted orphans of contained
// runtimes: not started by os/exec, and in another session (setsid), in a
// runtime's process group (double-forked), or killed for an environment.
// Other children of this process are left to whoever waits for them.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	self := os.Getpid()
	for _, pid := range children(self) {
		if r.started[pid] {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.state != 'Z' || st.ppid != self {
			continue
		}
		if _, inGroup := r.groups[st.pgid]; inGroup || st.sid != r.sid || r.kills[pid] {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
	now := time.Now()
	for pgid, forget := range r.groups {
		if !forget.IsZero() && now.After(forget) {
			delete(r.groups, pgid)
		}
	}
	for pid := range r.kills {
		if _, err := os.Stat("/proc/" + fmt.Sprint(pid)); err != nil {
			delete(r.kills, pid)
		}
	}
}
