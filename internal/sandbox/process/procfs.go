package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procStat is what the driver reads from /proc/<pid>/stat. It stays
// readable while the process is a zombie.
type procStat struct {
	ppid, pgid, sid int
	state           byte   // 'R', 'S', 'Z', …
	start           uint64 // start time in clock ticks after boot
}

// readStat parses /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may contain anything; the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] state, f[1] ppid, f[2] pgrp, f[3] session, … f[19] starttime
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	st.state = f[0][0]
	nums := []*int{&st.ppid, &st.pgid, &st.sid}
	for k, p := range nums {
		if *p, err = strconv.Atoi(string(f[1+k])); err != nil {
			return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
		}
	}
	if st.start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// ownerAlive reports whether the process pid that started at start (clock
// ticks after boot) still runs. A reused pid has another start time.
func ownerAlive(pid int, start uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.start == start && st.state != 'Z'
}

// allPids lists every process in /proc.
func allPids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// environValue returns the value of the variable key in the environment
// pid was started with, or "" when it has none or cannot be read (another
// user's process, a zombie, a kernel thread).
func environValue(pid int, key string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	prefix := []byte(key + "=")
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v)
		}
	}
	return ""
}

// signalAll sends sig to every pid, ignoring those already gone.
func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// errStillRunning is wrapped by kill errors when processes outlived the
// deadline.
var errStillRunning = errors.New("processes still running")

// poll calls done with growing pauses (1 ms to 20 ms) until it reports
// true or deadline passes; it reports whether done did.
func poll(deadline time.Time, done func() bool) bool {
	pause := time.Millisecond
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return true
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
