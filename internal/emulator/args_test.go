package emulator

import (
	"reflect"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	for _, c := range []struct {
		args, flags, command []string
	}{
		{[]string{"/bootstrap"}, nil, []string{"/bootstrap"}},
		{
			[]string{"--log-level", "debug", "/usr/bin/python", "-m", "awslambdaric", "app.handler"},
			[]string{"--log-level", "debug"}, []string{"/usr/bin/python", "-m", "awslambdaric", "app.handler"},
		},
		{
			// flags after the bootstrap, in both forms; unknown ones stay with the command
			[]string{"/b", "--unknown", "x", "--runtime-api-address=127.0.0.1:1", "--enable-init-caching", "h.fn"},
			[]string{"--runtime-api-address=127.0.0.1:1", "--enable-init-caching"}, []string{"/b", "--unknown", "x", "h.fn"},
		},
		{[]string{"--help"}, []string{"--help"}, nil},
		{[]string{"/b", "--help"}, nil, []string{"/b", "--help"}},
		{[]string{"--timeout", "3s", "--", "/b", "--timeout", "9s"}, []string{"--timeout", "3s"}, []string{"/b", "--timeout", "9s"}},
	} {
		var o options
		flags, command := splitArgs(o.flags(), c.args)
		if !reflect.DeepEqual(flags, c.flags) || !reflect.DeepEqual(command, c.command) {
			t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", c.args, flags, command, c.flags, c.command)
		}
	}
}
