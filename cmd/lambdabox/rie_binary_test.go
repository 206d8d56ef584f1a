package main

import (
	"debug/buildinfo"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestRIEBinary runs cmd/aws-lambda-rie, the emulator of the base images,
// as the images do: under its own name it serves a function with the
// command line of `lambdabox rie` (the same help), says its version, and
// under the name lambda-entrypoint.sh it is the entrypoint.
func TestRIEBinary(t *testing.T) {
	e := startRIE(t, rieOpts{argv0: "aws-lambda-rie", bin: rieBin, command: []string{goFnBin, "--log-level", "debug", "h.handler"}})
	_, body := e.invoke(t, "function", `{"op":"env","name":"_HANDLER"}`)
	if got := decode(t, body)["value"]; got != "h.handler" {
		t.Errorf("_HANDLER = %v", got)
	}

	want, err := exec.Command(lambdaboxBin, "rie", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--help", "-h"} {
		got, err := exec.Command(rieBin, flag).Output()
		if err != nil || string(got) != string(want) {
			t.Errorf("aws-lambda-rie %s: %v; the help differs from lambdabox rie --help:\n%s", flag, err, got)
		}
	}

	out, err := exec.Command(rieBin, "--version").Output()
	lines := strings.Split(string(out), "\n")
	if err != nil || !strings.HasPrefix(lines[0], "aws-lambda-rie ") ||
		!strings.Contains(string(out), "\ngo: "+runtime.Version()+"\nplatform: "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("aws-lambda-rie --version: %v\n%s", err, out)
	}

	link := filepath.Join(t.TempDir(), "lambda-entrypoint.sh")
	if err := os.Symlink(rieBin, link); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(link).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 142 || !strings.Contains(string(out), "entrypoint requires the handler name") {
		t.Errorf("lambda-entrypoint.sh without a handler: %v\n%s", err, out)
	}
}

// TestVersion: lambdabox version prints the module version and the VCS
// revision that go build stamped in the binary (none with -buildvcs=false,
// as this machine's go env sets), the Go version and the platform.
func TestVersion(t *testing.T) {
	out, err := exec.Command(lambdaboxBin, "version").Output()
	if err != nil {
		t.Fatalf("lambdabox version: %v", err)
	}
	s := string(out)
	if !strings.HasPrefix(s, "lambdabox ") || !strings.HasSuffix(s, "\ngo: "+runtime.Version()+"\nplatform: "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("lambdabox version:\n%s", s)
	}
	bi, err := buildinfo.ReadFile(lambdaboxBin)
	if err != nil {
		t.Fatal(err)
	}
	if want := "lambdabox " + bi.Main.Version + "\n"; !strings.HasPrefix(s, want) {
		t.Errorf("lambdabox version: want it to start %q:\n%s", want, s)
	}
	rev := ""
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" {
			rev = kv.Value
		}
	}
	if got := strings.Contains(s, "\nrevision: "); got != (rev != "") || got && !strings.Contains(s, "\nrevision: "+rev) {
		t.Errorf("lambdabox version: the binary's revision is %q:\n%s", rev, s)
	}
	if out, err := exec.Command(lambdaboxBin, "version", "extra").CombinedOutput(); err == nil {
		t.Errorf("lambdabox version extra: no error\n%s", out)
	}
}
