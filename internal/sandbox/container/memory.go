package container

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var errNoMemcg = errors.New("the container's memory cgroup cannot be read from here")

// memcg is a container's memory cgroup, as the host sees it: v1's memory
// controller, or a v2 group with the memory controller.
type memcg struct {
	dir string // empty when not found
	v2  bool
}

// findMemcg finds the memory cgroup of host process pid.
func findMemcg(pid int) memcg {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return memcg{}
	}
	return parseMemcg(b, "/sys/fs/cgroup")
}

// parseMemcg picks the memory cgroup from /proc/pid/cgroup's text: v1's
// memory line first; else the v2 line, when root is a v2 hierarchy with
// the memory controller.
func parseMemcg(b []byte, root string) memcg {
	var v2 string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2 = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				dir := filepath.Join(root, "memory", f[2])
				if _, err := os.Stat(filepath.Join(dir, "memory.max_usage_in_bytes")); err == nil {
					return memcg{dir: dir}
				}
			}
		}
	}
	if v2 != "" {
		dir := filepath.Join(root, v2)
		if _, err := os.Stat(filepath.Join(dir, "memory.peak")); err == nil {
			return memcg{dir: dir, v2: true}
		}
	}
	return memcg{}
}

// read returns the cgroup's peak usage and whether the kernel OOM-killed
// a process in it.
func (m memcg) read() (peak uint64, oom bool, err error) {
	if peak, err = m.peak(); err != nil {
		return 0, false, err
	}
	return peak, m.oom(), nil
}

// peak returns the cgroup's peak usage.
func (m memcg) peak() (uint64, error) {
	if m.dir == "" {
		return 0, errNoMemcg
	}
	file := "memory.max_usage_in_bytes"
	if m.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(m.dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// oom reports whether the kernel OOM-killed a process in the cgroup.
func (m memcg) oom() bool {
	if m.dir == "" {
		return false
	}
	file := "memory.oom_control"
	if m.v2 {
		file = "memory.events"
	}
	ev, err := os.ReadFile(filepath.Join(m.dir, file))
	return err == nil && counter(ev, "oom_kill") > 0
}

// counter returns the value of "key N" in a cgroup's flat keyed file.
func counter(b []byte, key string) uint64 {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
