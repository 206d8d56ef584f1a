package container

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseMemcg(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup, root string
		wantDir            string
		v2                 bool
		peak               uint64
		oom                bool
	}{
		{"v1", "12:pids:/machine.slice/libpod-1.scope\n4:memory:/machine.slice/libpod-1.scope\n0::/machine.slice/libpod-1.scope\n", "testdata/memcg", "testdata/memcg/memory/machine.slice/libpod-1.scope", false, 256 << 20, true},
		{"v2", "0::/libpod-2.scope\n", "testdata/memcg/v2", "testdata/memcg/v2/libpod-2.scope", true, 1 << 20, false},
		{"none", "0::/elsewhere\n", "testdata/memcg", "", false, 0, false},
		{"garbage", "::::\n\x00", "testdata/memcg", "", false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := parseMemcg([]byte(tc.cgroup), tc.root)
			if m.dir != tc.wantDir || m.v2 != tc.v2 {
				t.Fatalf("parseMemcg = %+v, want dir %q v2 %v", m, tc.wantDir, tc.v2)
			}
			peak, oom, err := m.read()
			if tc.wantDir == "" {
				if err == nil {
					t.Error("read of no cgroup: no error")
				}
				return
			}
			if err != nil || peak != tc.peak || oom != tc.oom {
				t.Errorf("read = %d, %v, %v; want %d, %v", peak, oom, err, tc.peak, tc.oom)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	self, err := currentOwner()
	if err != nil {
		t.Fatal(err)
	}
	o, ok := parseOwner(self.String())
	if !ok || o != self || !o.alive() {
		t.Fatalf("parseOwner(%s) = %+v, %v, alive %v", self, o, ok, o.alive())
	}
	dead := self
	dead.start++
	if dead.alive() {
		t.Error("an owner whose start time differs is alive")
	}
	reboot := self
	reboot.boot = "another-boot"
	if reboot.alive() {
		t.Error("an owner of another boot is alive")
	}
	elsewhere := dead
	elsewhere.host = "elsewhere"
	if !elsewhere.alive() {
		t.Error("an owner on another host is judged dead")
	}
	for _, bad := range []string{"", "a/b/c", "h/b/x/1", "h/b/-1/1", "h/b/1/x", "h/b/1/2/3"} {
		if _, ok := parseOwner(bad); ok {
			t.Errorf("parseOwner(%q) accepted", bad)
		}
	}
}

func FuzzParseOwner(f *testing.F) {
	for _, s := range []string{"host/boot/1/2", "", "a/b/c/d", "h/b/99999999999999999999/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, ok := parseOwner(s)
		if ok {
			if o.pid <= 0 {
				t.Fatalf("parseOwner(%q): pid %d", s, o.pid)
			}
			if o2, ok2 := parseOwner(o.String()); !ok2 || o2 != o {
				t.Fatalf("parseOwner(%q) does not round-trip: %+v", s, o)
			}
		}
	})
}

func FuzzParseMemcg(f *testing.F) {
	for _, s := range []string{"4:memory:/machine.slice/libpod-1.scope\n", "0::/libpod-2.scope\n", "::\n", "1:memory,cpu:/../../x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := parseMemcg([]byte(s), "testdata/memcg")
		if m.dir != "" && !strings.HasPrefix(m.dir, "testdata/memcg") {
			t.Fatalf("parseMemcg(%q) = %q, outside the root", s, m.dir)
		}
		_, _, _ = m.read()
	})
}

func TestPidWriter(t *testing.T) {
	for _, tc := range []struct {
		chunks []string
		pid    int
		rest   string
	}{
		{[]string{"42\nerr"}, 42, "err"},
		{[]string{"4", "2", "\n", "x\n"}, 42, "x\n"},
		{[]string{"17 direct\n"}, 17, ""},
		{[]string{strings.Repeat("y", 100)}, 0, strings.Repeat("y", 100)},
	} {
		var out bytes.Buffer
		p := &proc{pidKnown: make(chan struct{})}
		w := &pidWriter{w: &out, p: p}
		for _, c := range tc.chunks {
			if n, err := w.Write([]byte(c)); n != len(c) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", c, n, err)
			}
		}
		select {
		case <-p.pidKnown:
		default:
			t.Fatalf("%q: pidKnown not closed", tc.chunks)
		}
		if p.pid != tc.pid || out.String() != tc.rest {
			t.Errorf("%q: pid %d, rest %q; want %d, %q", tc.chunks, p.pid, out.String(), tc.pid, tc.rest)
		}
	}
}

func TestInContainer(t *testing.T) {
	d := &Driver{fn: Function{Mounts: []Mount{{Source: "/home/u/fn/", Target: "/var/task"}, {Source: "/home/u/layer", Target: "/opt"}}}}
	for in, want := range map[string]string{
		"/home/u/fn":              "/var/task",
		"/home/u/fn/bootstrap":    "/var/task/bootstrap",
		"/home/u/fnx/bootstrap":   "/home/u/fnx/bootstrap",
		"/home/u/layer/extension": "/opt/extension",
		"/opt/extensions":         "/opt/extensions",
		"":                        "",
	} {
		if got := d.inContainer(in); got != want {
			t.Errorf("inContainer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Host: "/run/podman.sock"}).Validate(); err == nil {
		t.Error("a host without a scheme is valid")
	}
	if err := (Config{Host: "unix:///run/podman.sock"}).Validate(); err != nil {
		t.Error(err)
	}
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
	if got := (Config{}).host(); got != "tcp://127.0.0.1:1" {
		t.Errorf("host() = %q, want $DOCKER_HOST", got)
	}
}

func TestHelperIsStatic(t *testing.T) {
	exe, _ := os.Executable()
	_ = staticBinary(exe) // either; it must not panic
	if err := staticBinary("testdata/memcg/v2/libpod-2.scope/memory.peak"); err == nil {
		t.Error("a text file passed for a static binary")
	}
}
