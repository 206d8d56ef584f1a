package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// Binaries built once by TestMain.
var (
	lambdaboxBin string // the lambdabox binary under test
	rieBin       string // cmd/aws-lambda-rie, the emulator of the base images
	goFnBin      string // testdata/gofn, an aws-lambda-go function
	extBin       string // testdata/extension, an external extension
	goWebBin     string // testdata/goweb, an aws-lambda-go function URL handler
	buildDir     string
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("LAMBDABOX_TEST_RUNTIME"); mode != "" {
		runFakeRuntime(mode) // a test started us as a misbehaving runtime
		return
	}
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setupAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "lambdabox-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	buildDir = dir
	lambdaboxBin = filepath.Join(dir, "lambdabox")
	rieBin = filepath.Join(dir, "aws-lambda-rie")
	goFnBin = filepath.Join(dir, "gofn", "bootstrap")
	extBin = filepath.Join(dir, "extension", "recorder")
	goWebBin = filepath.Join(dir, "goweb", "bootstrap")
	for out, pkg := range map[string]string{lambdaboxBin: ".", rieBin: "../aws-lambda-rie", goFnBin: "./testdata/gofn", extBin: "./testdata/extension", goWebBin: "./testdata/goweb"} {
		args, env := []string{"build", "-o", out}, "CGO_ENABLED=0"
		if (out == lambdaboxBin || out == rieBin) && raceBuild() {
			// The race detector needs cgo; the functions stay static.
			args, env = append(args, "-race"), "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), env)
		if b, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return m.Run(), nil
}

// raceBuild reports whether LAMBDABOX_TEST_RACE=1 asks for lambdabox to be
// built with the race detector. Every emulator then runs with
// GORACE=halt_on_error=1, so a data race ends it with status 66 and the
// test that started it fails (see emulator.stop).
func raceBuild() bool { return os.Getenv("LAMBDABOX_TEST_RACE") == "1" }

// raceExitCode is the status a -race binary exits with on a data race
// under GORACE=halt_on_error=1 (the race detector's default exitcode).
const raceExitCode = 66

// freeAddr returns a loopback address with a port that was free a moment
// ago. The port is drawn below the kernel's ephemeral range (32768 and up
// by default), which every bind to port 0 and every outgoing connection
// draws from: between this check and lambdabox's own bind, a busy machine
// (the image tests run beside these) would otherwise hand the same port to
// someone else now and then.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(22000)))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// emulator is a running "lambdabox rie" process.
type emulator struct {
	URL    string // http://127.0.0.1:PORT
	Stdout *syncbuf.Buffer
	Stderr *syncbuf.Buffer
	cmd    *exec.Cmd
	done   chan struct{}
}

type rieOpts struct {
	flags   []string // lambdabox rie flags before the command
	command []string // bootstrap and args
	env     []string // extra environment for lambdabox (and so the runtime)
	dir     string
	argv0   string // run the binary under this name (e.g. aws-lambda-rie)
	bin     string // with argv0: the binary to run (default lambdaboxBin)
}

// startRIE starts lambdabox rie on free loopback ports and waits until it
// serves; it is stopped with SIGTERM when the test ends.
func startRIE(t testing.TB, o rieOpts) *emulator {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{}, o.flags...)
	args = append(args, "--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t))
	bin := lambdaboxBin
	if o.argv0 != "" {
		target := lambdaboxBin
		if o.bin != "" {
			target = o.bin
		}
		bin = filepath.Join(t.TempDir(), o.argv0)
		if err := os.Symlink(target, bin); err != nil {
			t.Fatal(err)
		}
	} else {
		args = append([]string{"rie"}, args...)
	}
	args = append(args, o.command...)
	e := &emulator{URL: "http://" + addr, Stdout: &syncbuf.Buffer{}, Stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(bin, args...)
	e.cmd.Env = append(os.Environ(), o.env...)
	if raceBuild() {
		e.cmd.Env = append(e.cmd.Env, "GORACE=halt_on_error=1")
	}
	e.cmd.Dir = o.dir
	e.cmd.Stdout, e.cmd.Stderr = e.Stdout, e.Stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		e.stop(t)
		e.checkRace(t)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return e
		}
		select {
		case <-e.done:
			t.Fatalf("lambdabox exited early\nstdout:\n%s\nstderr:\n%s", e.Stdout, e.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdabox did not start serving on %s\nstderr:\n%s", addr, e.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit, killing after 10 s.
func (e *emulator) stop(t testing.TB) {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		t.Errorf("lambdabox did not exit within 10s of SIGTERM\nstderr:\n%s", e.Stderr)
	}
}

// checkRace fails the test when a -race build of lambdabox reported a data
// race: its report in stderr, or the race detector's exit status.
func (e *emulator) checkRace(t testing.TB) {
	if !raceBuild() {
		return
	}
	stderr := e.Stderr.String()
	raced := strings.Contains(stderr, "WARNING: DATA RACE")
	select {
	case <-e.done:
		raced = raced || e.cmd.ProcessState.ExitCode() == raceExitCode
	default:
	}
	if raced {
		t.Errorf("the -race build of lambdabox reported a data race (exit %v)\nstderr:\n%s", e.cmd.ProcessState, stderr)
	}
}

// invoke posts payload to the function's invocations endpoint.
func (e *emulator) invoke(t testing.TB, name, payload string, headers ...string) (*http.Response, string) {
	t.Helper()
	return e.do(t, http.MethodPost, "/2015-03-31/functions/"+name+"/invocations", strings.NewReader(payload), headers...)
}

func (e *emulator) do(t testing.TB, method, path string, body io.Reader, headers ...string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp, string(b)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
