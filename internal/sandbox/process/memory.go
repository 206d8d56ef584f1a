package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Memory limits. Each environment whose Spec sets MemoryLimit gets a memory
// cgroup of its own holding all its processes, limited to that size with
// swap off, so that the kernel's OOM killer ends it past the limit as
// Lambda's does.
//
//   - On a pure cgroup v2 host (the memory controller is available to the
//     driver's cgroup v2) the environment's cgroup v2 itself is limited:
//     memory.max, memory.swap.max 0; the peak is memory.peak and an OOM kill
//     shows in memory.events.
//   - On a hybrid host (v2 mounted without controllers, the v1 memory
//     controller mounted) each environment gets a v1 memory cgroup beside
//     its v2 one: memory.limit_in_bytes, memory.memsw.limit_in_bytes equal
//     to it (swap off; memory.swappiness 0 where memsw is absent); the peak
//     is memory.max_usage_in_bytes and an OOM kill is counted in
//     memory.oom_control.
//
// clone3's CLONE_INTO_CGROUP places a child in a v2 cgroup only; its v1
// cgroups are those of the thread that forks it. So on a hybrid host
// each process of the environment is started from an OS thread of
// lambdabox's, locked to its goroutine, that first moves itself (its tid,
// written to the v1 cgroup's tasks file) into the environment's memory
// cgroup, and moves back once the child has exec'd (os/exec returns only
// then). The child is thus in the cgroup from its first instruction.
// lambdabox's own pages stay charged to lambdabox: v1 charges a page fault
// to the memory cgroup of the address space's owner, the thread group
// leader, which never moves. A thread that cannot move back is ended with
// its goroutine, never reused.

// memLimiter makes the memory cgroups of a driver's environments.
type memLimiter struct {
	v2   bool   // limit the environment's own cgroup v2
	dir  string // v1: this driver's cgroup in the v1 memory hierarchy
	home string // v1: lambdabox's own memory cgroup
	next atomic.Int64
}

// describe says how memory is limited.
func (m *memLimiter) describe() string {
	if m.v2 {
		return "memory limited with the cgroup v2 memory controller"
	}
	return "memory limited with cgroup v1 memory at " + m.dir
}

// newMemLimiterV2 enables the memory controller for the environments' cgroups
// below the driver's cgroup v2 dir.
func newMemLimiterV2(dir string) (*memLimiter, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("reading cgroup.controllers: %w", err)
	}
	if !hasWord(b, "memory") {
		return nil, errors.New("the memory controller is not available in cgroup v2 at " + dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
		return nil, fmt.Errorf("enabling the cgroup v2 memory controller: %w", err)
	}
	return &memLimiter{v2: true}, nil
}

// newMemLimiterV1 makes the driver's cgroup in the v1 memory hierarchy,
// below the one this process is in, and checks it can be limited.
func newMemLimiterV1(self instance) (*memLimiter, error) {
	own, err := ownCgroupV1("memory")
	if err != nil {
		return nil, err
	}
	removeStaleMemcgs(own)
	dir := filepath.Join(own, cgroupPrefix+self.String())
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating a v1 memory cgroup: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err != nil {
		_ = syscall.Rmdir(dir)
		return nil, fmt.Errorf("v1 memory cgroup: %w", err)
	}
	return &memLimiter{dir: dir, home: own}, nil
}

// removeStaleMemcgs removes the v1 memory cgroups of lambdabox processes now
// dead; their processes were killed with their cgroup v2.
func removeStaleMemcgs(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		owner, ok := parseInstance(strings.TrimPrefix(e.Name(), cgroupPrefix))
		if e.IsDir() && strings.HasPrefix(e.Name(), cgroupPrefix) && ok && !ownerAlive(owner.pid, owner.start) {
			_ = removeCgroup(filepath.Join(parent, e.Name()))
		}
	}
}

// ownCgroupV1 returns the directory of this process's cgroup in the v1
// hierarchy of controller.
func ownCgroupV1(controller string) (string, error) {
	has := func(list string) bool { return hasWord([]byte(strings.ReplaceAll(list, ",", " ")), controller) }
	return ownCgroup("cgroup v1 "+controller+" controller",
		func(id, controllers string) bool { return id != "0" && has(controllers) },
		func(fstype, options string) bool { return fstype == "cgroup" && has(options) })
}

func hasWord(b []byte, w string) bool {
	for _, f := range bytes.Fields(b) {
		if string(f) == w {
			return true
		}
	}
	return false
}

// newEnv limits one environment to limit bytes, swap off. v2dir is the
// environment's cgroup v2 (used on pure v2 hosts).
func (m *memLimiter) newEnv(limit uint64, v2dir string) (*memcg, error) {
	lim := []byte(strconv.FormatUint(limit, 10))
	if m.v2 {
		if err := os.WriteFile(filepath.Join(v2dir, "memory.max"), lim, 0); err != nil {
			return nil, fmt.Errorf("limiting memory: %w", err)
		}
		if err := os.WriteFile(filepath.Join(v2dir, "memory.swap.max"), []byte("0"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("turning swap off: %w", err)
		}
		return &memcg{v2: true, dir: v2dir}, nil
	}
	dir := filepath.Join(m.dir, "env-"+strconv.FormatInt(m.next.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating a v1 memory cgroup: %w", err)
	}
	fail := func(err error) (*memcg, error) {
		_ = syscall.Rmdir(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), lim, 0); err != nil {
		return fail(fmt.Errorf("limiting memory: %w", err))
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), lim, 0); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fail(fmt.Errorf("turning swap off: %w", err))
		}
		_ = os.WriteFile(filepath.Join(dir, "memory.swappiness"), []byte("0"), 0)
	}
	return &memcg{dir: dir, home: m.home}, nil
}

// close removes the driver's v1 memory cgroup, once its environments are
// gone.
func (m *memLimiter) close() error {
	if m.v2 {
		return nil
	}
	return removeCgroup(m.dir)
}

// memcg is the memory cgroup of one environment. Its figures are read
// once more when it is released, and kept.
type memcg struct {
	v2   bool
	dir  string
	home string // v1: lambdabox's own memory cgroup, where threads go back

	mu       sync.Mutex
	released bool
	oom      bool
	peak     uint64
	peakFile *os.File // the open peak file; closed at release
	peakFd   int      // its descriptor, taken once (each Fd call costs an fcntl)
}

// start starts cmd with start, from a thread in the v1 memory cgroup (see
// above); a v2 memory cgroup needs nothing: the environment's cgroup v2
// is it.
func (c *memcg) start(cmd *exec.Cmd, start func(*exec.Cmd) error) error {
	if c.v2 {
		return start(cmd)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := []byte(strconv.Itoa(syscall.Gettid()))
		if err := os.WriteFile(filepath.Join(c.dir, "tasks"), tid, 0); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining the memory cgroup: %w", err)
			return
		}
		err := start(cmd)
		if os.WriteFile(filepath.Join(c.home, "tasks"), tid, 0) != nil {
			// Still in the environment's cgroup: returning locked ends
			// this thread (and, by Pdeathsig, the child it forked, which
			// the environment then sees exit). Only a removed lambdabox
			// cgroup gets here.
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// peakName and oomName are the cgroup's files of its peak usage in bytes
// and of its OOM kill count.
func (c *memcg) peakName() string {
	if c.v2 {
		return "memory.peak"
	}
	return "memory.max_usage_in_bytes"
}

func (c *memcg) oomName() string {
	if c.v2 {
		return "memory.events"
	}
	return "memory.oom_control"
}

// readPeak returns the cgroup's peak usage in bytes, 0 where it cannot be
// read. It is read on every invoke, so its file is kept open (c.peakFile)
// and re-read from offset 0 with one pread, where an open, reads and a
// close took ten syscalls (os.File.ReadAt would take two: it reads again
// until the buffer is full or the file ends). c.mu is held.
func (c *memcg) readPeak() uint64 {
	if c.peakFile == nil {
		f, err := os.Open(filepath.Join(c.dir, c.peakName()))
		if err != nil {
			return 0
		}
		// A cgroup file never blocks; Fd's switch to blocking mode is moot.
		c.peakFile, c.peakFd = f, int(f.Fd())
	}
	var buf [32]byte
	n, err := syscall.Pread(c.peakFd, buf[:], 0)
	if err != nil || n <= 0 {
		return 0
	}
	peak, _ := strconv.ParseUint(string(bytes.TrimSpace(buf[:n])), 10, 64)
	return peak
}

// readOOM returns whether the OOM killer has killed a process of the
// cgroup. It is read when a runtime exits, not per invoke.
func (c *memcg) readOOM() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, c.oomName()))
	return err == nil && counter(b, "oom_kill") > 0
}

// counter returns the value of key in a "key value" per line file.
func counter(b []byte, key string) uint64 {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte(" ")); ok && string(k) == key {
			n, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// maxMemory returns the cgroup's peak usage in bytes, or what it was at
// release.
func (c *memcg) maxMemory() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.released {
		c.peak = max(c.peak, c.readPeak())
	}
	return c.peak
}

// outOfMemory returns whether the OOM killer has killed a process of the
// cgroup, or had at release.
func (c *memcg) outOfMemory() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.released {
		c.oom = c.oom || c.readOOM()
	}
	return c.oom
}

// stats returns what outOfMemory and maxMemory do.
func (c *memcg) stats() (oom bool, peak uint64) {
	return c.outOfMemory(), c.maxMemory()
}

// release keeps the cgroup's figures and removes a v1 cgroup, whose
// processes are gone (a v2 one goes with the environment's cgroup).
func (c *memcg) release() {
	c.stats()
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	if c.peakFile != nil {
		_ = c.peakFile.Close()
		c.peakFile = nil
	}
	c.mu.Unlock()
	if !c.v2 {
		_ = removeCgroup(c.dir)
	}
}
