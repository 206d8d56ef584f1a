package process

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroups contains every environment in a cgroup v2 of its own, made
// below one cgroup per driver, lambdabox-<pid>-<start>, itself a child of
// the cgroup lambdabox runs in. The runtime is cloned straight into its
// cgroup (clone3 CLONE_INTO_CGROUP), so nothing it starts, setsid or
// double-forked, can be outside it; cgroup.kill ends them all at once.
type cgroups struct {
	dir  string // this driver's cgroup
	next atomic.Int64
}

// cgroupPrefix starts the name of every driver's cgroup.
const cgroupPrefix = "lambdabox-"

// ownCgroup2 returns the directory of the cgroup v2 that this process is
// in: the cgroup2 mount from /proc/self/mountinfo joined with the "0::"
// path of /proc/self/cgroup.
func ownCgroup2() (string, error) {
	return ownCgroup("cgroup v2", func(id, _ string) bool { return id == "0" },
		func(fstype, _ string) bool { return fstype == "cgroup2" })
}

// ownCgroup returns the directory of this process's cgroup in the
// hierarchy that inHierarchy picks from /proc/self/cgroup (by its id and
// controllers) and isMount picks from /proc/self/mountinfo (by its file
// system type and super options).
func ownCgroup(what string, inHierarchy func(id, controllers string) bool, isMount func(fstype, options string) bool) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	own := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && inHierarchy(f[0], f[1]) {
			own = f[2]
		}
	}
	if !strings.HasPrefix(own, "/") {
		return "", fmt.Errorf("no %s path in /proc/self/cgroup", what)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	for line := range strings.SplitSeq(string(mi), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 >= len(f) || !isMount(f[sep+1], f[sep+3]) {
			continue
		}
		root, mnt := unescapeMount(f[3]), unescapeMount(f[4])
		rel, ok := strings.CutPrefix(own, root)
		if root == "/" {
			rel, ok = own, true
		}
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) || strings.Contains(rel, "/..") {
			continue
		}
		return filepath.Join(mnt, rel), nil
	}
	return "", fmt.Errorf("no mount holds this process's %s", what)
}

// unescapeMount decodes the octal escapes (\040 for a space) of a
// mountinfo field.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// newCgroups kills and removes the cgroups that lambdabox processes now
// dead left under parent, then makes this driver's own and checks that a
// process can be cloned into a cgroup below it.
func newCgroups(parent string, self instance, log *slog.Logger) (*cgroups, error) {
	removeStaleCgroups(parent, log)
	dir := filepath.Join(parent, cgroupPrefix+self.String())
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating a cgroup: %w", err)
	}
	c := &cgroups{dir: dir}
	if err := c.probe(); err != nil {
		_ = removeCgroup(dir)
		return nil, err
	}
	return c, nil
}

// probe checks that this kernel and this place allow what the driver
// needs: cgroup.kill (Linux 5.14) and cloning into a cgroup (Linux 5.7,
// and clone3 not blocked by a seccomp filter). The probe clones a child
// into a fresh cgroup and has it exec a path that does not exist: "no such
// file" proves the clone worked.
func (c *cgroups) probe() error {
	dir := filepath.Join(c.dir, "probe")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating a cgroup: %w", err)
	}
	defer removeCgroup(dir)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return fmt.Errorf("cgroup.kill: %w", err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening a cgroup: %w", err)
	}
	defer fd.Close()
	_, err = os.StartProcess("/nonexistent/lambdabox-cgroup-probe", []string{"probe"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())},
	})
	if !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("starting a process in a cgroup: %w", err)
	}
	return nil
}

// removeStaleCgroups kills and removes every lambdabox-<pid>-<start>
// cgroup under parent whose owner is no longer running.
func removeStaleCgroups(parent string, log *slog.Logger) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		owner, ok := parseInstance(strings.TrimPrefix(e.Name(), cgroupPrefix))
		if !e.IsDir() || !strings.HasPrefix(e.Name(), cgroupPrefix) || !ok || ownerAlive(owner.pid, owner.start) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if err := killCgroup(dir, time.Now().Add(5*time.Second)); err != nil {
			log.Warn("removing the cgroup of a lambdabox that is gone", "cgroup", dir, "error", err)
			continue
		}
		if err := removeCgroup(dir); err != nil {
			log.Warn("removing the cgroup of a lambdabox that is gone", "cgroup", dir, "error", err)
			continue
		}
		log.Info("killed what a lambdabox that is gone left running", "cgroup", dir)
	}
}

// describe says where runtimes are contained.
func (c *cgroups) describe() string { return "cgroup v2 at " + c.dir }

// newEnv makes the environment's cgroup; each of its processes gets one
// below it.
func (c *cgroups) newEnv() (envGroup, error) {
	dir := filepath.Join(c.dir, "env-"+strconv.FormatInt(c.next.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating a cgroup: %w", err)
	}
	return &cgroupEnv{dir: dir}, nil
}

// cgroupEnv is the cgroup of one environment: every process of the
// environment runs in a cgroup below it.
type cgroupEnv struct {
	dir string
}

// newGroup makes a cgroup for one process of the environment, and has cmd
// start in it.
func (e *cgroupEnv) newGroup(cmd *exec.Cmd, name string) (group, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating a cgroup: %w", err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		_ = removeCgroup(dir)
		return nil, fmt.Errorf("opening a cgroup: %w", err)
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(fd.Fd())
	return &cgroup{dir: dir, fd: fd}, nil
}

func (e *cgroupEnv) pids() []int { return cgroupPids(e.dir) }

func (e *cgroupEnv) signal(sig syscall.Signal) { signalAll(e.pids(), sig) }

func (e *cgroupEnv) kill(deadline time.Time) error { return killCgroup(e.dir, deadline) }

func (e *cgroupEnv) release() error { return removeCgroup(e.dir) }

// close kills whatever is left in the driver's cgroups and removes them.
func (c *cgroups) close(deadline time.Time) error {
	if err := killCgroup(c.dir, deadline); err != nil {
		return err
	}
	return removeCgroup(c.dir)
}

// cgroup is the cgroup of one environment.
type cgroup struct {
	dir  string
	fd   *os.File // open until the runtime has started
	pgid int
}

// started also has a subreaper, if this process is one, reap the
// environment's orphans: they are reparented to it.
func (g *cgroup) started(pid int) {
	_ = g.fd.Close()
	g.pgid = pid
	theReaper.addGroup(pid)
}

// pids lists the processes in the cgroup.
func (g *cgroup) pids() []int { return cgroupPids(g.dir) }

// cgroupPids lists the processes in dir and the cgroups below it.
func cgroupPids(dir string) []int {
	var out []int
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, pid)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, cgroupPids(filepath.Join(dir, e.Name()))...)
		}
	}
	return out
}

func (g *cgroup) signal(sig syscall.Signal) { signalAll(g.pids(), sig) }

func (g *cgroup) kill(deadline time.Time) error { return killCgroup(g.dir, deadline) }

func (g *cgroup) release() error {
	_ = g.fd.Close()
	if g.pgid != 0 {
		theReaper.dropGroup(g.pgid)
	}
	return removeCgroup(g.dir)
}

// killCgroup kills every process in dir and below, and waits until
// cgroup.events says none is left. A cgroup already removed is empty.
func killCgroup(dir string, deadline time.Time) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("killing cgroup %s: %w", dir, err)
	}
	if !poll(deadline, func() bool { return !populated(dir) }) {
		return fmt.Errorf("killing cgroup %s: %w", dir, errStillRunning)
	}
	return nil
}

// populated reports whether a process is left in dir or below.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false // removed
	}
	return !bytes.Contains(b, []byte("populated 0"))
}

// removeCgroup removes dir and the cgroups below it, which must be empty
// of processes; a removed one is not an error.
func removeCgroup(dir string) error {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var err error
	// The kernel may report a cgroup busy for a moment after its last
	// process has been reaped.
	poll(time.Now().Add(time.Second), func() bool {
		err = syscall.Rmdir(dir)
		return err == nil || err == syscall.ENOENT || err != syscall.EBUSY
	})
	if err != nil && err != syscall.ENOENT {
		return fmt.Errorf("removing cgroup %s: %w", dir, err)
	}
	return nil
}
