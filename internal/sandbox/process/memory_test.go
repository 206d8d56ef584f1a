package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The figures of a memory cgroup are read from the files of its version:
// a v2 cgroup's memory.events and memory.peak, a v1 cgroup's
// memory.oom_control and memory.max_usage_in_bytes. A file that is
// missing (an older kernel) reads as nothing.
func TestMemcgRead(t *testing.T) {
	for _, c := range []struct {
		name  string
		v2    bool
		files map[string]string
		oom   bool
		peak  uint64
	}{
		{"v2 oom", true, map[string]string{"memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n", "memory.peak": "134217728\n"}, true, 128 << 20},
		{"v2 fine", true, map[string]string{"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", "memory.peak": "1048576\n"}, false, 1 << 20},
		{"v2 no peak file", true, map[string]string{"memory.events": "oom_kill 0\n"}, false, 0},
		{"v1 oom", false, map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "memory.max_usage_in_bytes": "134217728\n"}, true, 128 << 20},
		{"v1 fine", false, map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.max_usage_in_bytes": "4096\n"}, false, 4096},
		{"v1 old kernel", false, map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"}, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := &memcg{v2: c.v2, dir: dir}
			if oom, peak := m.stats(); oom != c.oom || peak != c.peak {
				t.Errorf("stats = %v, %d; want %v, %d", oom, peak, c.oom, c.peak)
			}
			// The peak file stays open: a new, higher peak is read from
			// it, a lower one leaves the peak as it was, and release
			// keeps the last figures.
			if c.peak > 0 {
				peakFile := filepath.Join(dir, m.peakName())
				for _, w := range []struct {
					body string
					want uint64
				}{{"999999999\n", 999999999}, {"5\n", 999999999}} {
					if err := os.WriteFile(peakFile, []byte(w.body), 0o644); err != nil {
						t.Fatal(err)
					}
					if got := m.maxMemory(); got != w.want {
						t.Errorf("after writing %q: maxMemory = %d; want %d", w.body, got, w.want)
					}
				}
				m.v2 = true // release removes only a v1 cgroup's directory
				m.release()
				if m.peakFile != nil {
					t.Error("release left the peak file open")
				}
				if got := m.maxMemory(); got != 999999999 {
					t.Errorf("after release: maxMemory = %d; want 999999999", got)
				}
			}
		})
	}
}

// The v1 memory cgroups a dead lambdabox left are removed when a driver
// starts; a live one's are kept.
func TestStaleMemcgsOfADeadOwnerAreRemoved(t *testing.T) {
	own, err := ownCgroupV1("memory")
	if err != nil {
		t.Skip("no cgroup v1 memory controller here:", err)
	}
	self, err := newInstance()
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(own, fmt.Sprintf("%s%d-1-dead", cgroupPrefix, os.Getpid()))
	live := filepath.Join(own, cgroupPrefix+self.String()+"x")
	for _, dir := range []string{dead, live} {
		if err := os.MkdirAll(filepath.Join(dir, "env-1"), 0o755); err != nil {
			t.Skip("cannot make a v1 memory cgroup:", err)
		}
		t.Cleanup(func() { _ = removeCgroup(dir) })
	}
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if _, err := os.Stat(dead); err == nil {
		t.Error("the dead owner's v1 memory cgroup was not removed")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("the live owner's v1 memory cgroup was removed")
	}
}
