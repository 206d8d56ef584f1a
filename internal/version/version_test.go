package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestText(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "lambdabox (devel)\ngo: " + runtime.Version() + "\nplatform: " + platform + "\n"},
		{"release, no VCS stamp", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			"lambdabox v1.2.3\ngo: go1.26.8\nplatform: " + platform + "\n"},
		{"stamped, modified", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202033100-97c5ab9f0123+dirty"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "97c5ab9f0123"}, {Key: "vcs.time", Value: "2026-12-02T03:31:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"lambdabox v0.0.0-20261202033100-97c5ab9f0123+dirty\nrevision: 97c5ab9f0123 (2026-12-02T03:31:00Z, modified)\ngo: go1.26.8\nplatform: " + platform + "\n"},
		{"stamped, clean", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			"lambdabox (devel)\nrevision: abc\ngo: go1.26.8\nplatform: " + platform + "\n"},
	} {
		if got := FromBuildInfo(c.bi).Text("lambdabox"); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
}
