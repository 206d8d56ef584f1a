// Package version says which lambdabox a binary is: its module version
// and VCS revision as the Go toolchain stamped them, the Go version that
// built it and the platform it runs on.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what a binary knows of its own build.
type Info struct {
	// Path is the main package's import path, e.g.
	// github.com/lambdabox/lambdabox/cmd/lambdabox.
	Path string
	// Version is the main module's version: a release (v1.2.3), a
	// pseudo-version stamped from the VCS, or "(devel)".
	Version string
	// Revision is the VCS commit, "" when the build was not stamped
	// (-buildvcs=false, as the reproducible emulator build is).
	Revision string
	// Time is the commit's time (RFC 3339), "" when unknown.
	Time string
	// Modified says the work tree had changes the revision lacks.
	Modified bool
	// Go is the Go version that built the binary, e.g. go1.26.8.
	Go string
	// OS and Arch are the platform the binary runs on.
	OS, Arch string
}

// Read returns the running binary's Info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi)
}

// FromBuildInfo returns the Info of a build described by bi (nil when the
// binary carries none) on the running platform.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: "(devel)", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi == nil {
		return i
	}
	i.Path = bi.Path
	if bi.Main.Version != "" {
		i.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		i.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// Text is the Info as `lambdabox version` prints it, one fact a line:
//
//	lambdabox v1.2.3
//	revision: 0123abcd… (2026-12-01T10:00:00Z, modified)
//	go: go1.26.8
//	platform: linux/amd64
//
// name is the program's name; the revision line is left out when the
// build carries no revision.
func (i Info) Text(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", name, i.Version)
	if i.Revision != "" {
		var notes []string
		if i.Time != "" {
			notes = append(notes, i.Time)
		}
		if i.Modified {
			notes = append(notes, "modified")
		}
		fmt.Fprintf(&b, "revision: %s", i.Revision)
		if len(notes) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "go: %s\nplatform: %s/%s\n", i.Go, i.OS, i.Arch)
	return b.String()
}
