package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// env is one environment: a container and the processes started in it.
type env struct {
	k       *keeper
	d       *Driver
	workdir string
	rt      *proc // nil when BeforeRuntime kept it from starting
	exts    []sandbox.Extension
	done    chan struct{}

	memMu sync.Mutex
	final bool // the container is gone; peak and oom are its last figures
	peak  uint64
	oom   bool
}

var (
	_ sandbox.Env            = (*env)(nil)
	_ sandbox.MemoryReporter = (*env)(nil)
	_ sandbox.OOMReporter    = (*env)(nil)
)

// Runtime implements sandbox.Env.
func (e *env) Runtime() sandbox.Proc {
	if e.rt == nil {
		return nil
	}
	return e.rt
}

// Extensions implements sandbox.Env.
func (e *env) Extensions() []sandbox.Extension { return append([]sandbox.Extension(nil), e.exts...) }

// Done implements sandbox.Env.
func (e *env) Done() <-chan struct{} { return e.done }

func (e *env) procs() []*proc {
	var ps []*proc
	for _, x := range e.exts {
		ps = append(ps, x.Proc.(*proc))
	}
	if e.rt != nil {
		ps = append(ps, e.rt)
	}
	return ps
}

// wait removes the container once every process has ended, and then
// closes done.
func (e *env) wait() {
	for _, p := range e.procs() {
		<-p.done
	}
	e.settle()
	close(e.done)
}

// settle takes the container's last memory figures and removes it.
func (e *env) settle() {
	peak, oom, err := e.k.memcg().read()
	e.memMu.Lock()
	if err == nil {
		e.peak, e.oom = peak, oom
	}
	e.final = true
	e.memMu.Unlock()
	if err := e.k.remove(); err != nil {
		e.d.log.Warn("removing an environment's container", "container", shortID(e.k.id), "error", err)
	}
}

// abort ends a Start that failed half-way.
func (e *env) abort() {
	_ = e.k.remove()
	for _, p := range e.procs() {
		<-p.done
	}
}

// Stop implements sandbox.Env: SIGTERM to every process, then the
// container's removal once ctx expires.
func (e *env) Stop(ctx context.Context) error {
	select {
	case <-e.done:
		return nil
	default:
	}
	if err := e.k.run(ctx, "kill", strconv.Itoa(int(syscall.SIGTERM)), "-1"); err != nil {
		e.d.log.Debug("signalling an environment", "error", err)
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	_ = e.k.remove()
	select {
	case <-e.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("container %s: its processes did not end", shortID(e.k.id))
	}
}

// MaxMemory implements sandbox.MemoryReporter: the peak of the
// container's memory cgroup, which counts every process in it, and the
// page cache and /tmp they filled.
func (e *env) MaxMemory() (uint64, error) {
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.final {
		if e.k.memcg().dir == "" {
			return 0, errNoMemcg
		}
		return e.peak, nil
	}
	return e.k.memcg().peak()
}

// OutOfMemory implements sandbox.OOMReporter: whether the kernel killed
// a process of the container for passing its memory limit.
func (e *env) OutOfMemory() bool {
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.final {
		return e.oom
	}
	return e.k.memcg().oom()
}

// run runs the helper in the container with args, as the function's
// user, and does not wait for it.
func (k *keeper) run(ctx context.Context, args ...string) error {
	x, err := k.d.e.cli.ExecCreate(ctx, k.id, client.ExecCreateOptions{User: k.d.fn.User, Cmd: append([]string{HelperPath}, args...)})
	if err != nil {
		return fmt.Errorf("creating an exec in container %s: %w", shortID(k.id), err)
	}
	if _, err := k.d.e.cli.ExecStart(ctx, x.ID, client.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("starting an exec in container %s: %w", shortID(k.id), err)
	}
	return nil
}

// exec starts one process of the environment in its container.
func (e *env) exec(ctx context.Context, spec sandbox.Spec, which sandbox.Process, argv []string) (*proc, error) {
	var out io.WriteCloser = nopCloser{io.Discard}
	if spec.Output != nil {
		f, err := spec.Output(which)
		if err != nil {
			return nil, err
		}
		out = f
	}
	direct, _ := out.(*os.File)
	var token string
	var result <-chan handed
	cancel := func() {}
	closeOut := sync.OnceFunc(func() { out.Close() })
	if direct != nil {
		var closeFile func()
		token, result, cancel, closeFile = e.d.e.out.expect(direct)
		closeOut = sync.OnceFunc(closeFile)
	}
	env := spec.Env[:len(spec.Env):len(spec.Env)]
	if token != "" {
		env = append(env, OutputEnv+"="+token)
	}
	x, err := e.d.e.cli.ExecCreate(ctx, e.k.id, client.ExecCreateOptions{
		User:         e.d.fn.User,
		AttachStdout: true,
		AttachStderr: true,
		Env:          env,
		WorkingDir:   e.workdir,
		Cmd:          append([]string{HelperPath, "exec"}, argv...), // reports its pid, then becomes argv
	})
	if err != nil {
		cancel()
		closeOut()
		return nil, fmt.Errorf("creating the process %s in container %s: %w", argv[0], shortID(e.k.id), err)
	}
	att, err := e.d.e.cli.ExecAttach(ctx, x.ID, client.ExecAttachOptions{})
	if err != nil {
		cancel()
		closeOut()
		return nil, fmt.Errorf("starting the process %s in container %s: %w", argv[0], shortID(e.k.id), err)
	}
	p := &proc{k: e.k, execID: x.ID, done: make(chan struct{}), pidKnown: make(chan struct{})}
	p.closeOut = closeOut
	go p.copy(att.HijackedResponse, out)
	if result == nil {
		return p, nil
	}
	// Wait until the helper has executed the process, or could not, or
	// went on without the file (the socket is out of its reach).
	pidKnown, done := p.pidKnown, p.done
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-result:
			if r.execErr != "" {
				<-p.done
				return nil, &execError{msg: r.execErr}
			}
			if r.sent {
				p.closeOut() // the process has its copy, as under the process driver
			}
			return p, nil
		case <-pidKnown:
			if !p.direct {
				cancel()
				return p, nil
			}
			pidKnown = nil
		case <-done:
			// It ended at once: the report, if any, is on its way.
			done, timeout = nil, time.After(time.Second)
		case <-timeout:
			cancel()
			return p, nil
		}
	}
}

// execError is the helper's report that it could not execute a process.
type execError struct{ msg string }

func (e *execError) Error() string { return e.msg }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// proc is one process of an environment, an exec in its container.
type proc struct {
	k        *keeper
	execID   string
	done     chan struct{}
	exit     sandbox.ExitStatus
	pidKnown chan struct{}
	pid      int  // in the container's pid namespace, once pidKnown
	direct   bool // the helper fetched the output file; once pidKnown
	closeOut func()
}

var _ sandbox.Proc = (*proc)(nil)

// copy forwards the exec's streams to the process's output until they
// end, with the process, and then records how it ended. When the helper
// fetched the output file itself, only its pid line comes this way.
func (p *proc) copy(att client.HijackedResponse, out io.Writer) {
	defer close(p.done)
	w := lenient{out}
	errw := &pidWriter{w: w, p: p}
	_, _ = stdcopy.StdCopy(w, errw, att.Reader)
	att.Close()
	if !errw.seen {
		close(p.pidKnown)
	}
	p.closeOut()
	p.exit = p.status()
}

// lenient drops what cannot be written, so that the exec's streams are
// read to their end, which is the process's.
type lenient struct{ w io.Writer }

func (l lenient) Write(b []byte) (int, error) {
	_, _ = l.w.Write(b)
	return len(b), nil
}

// status asks the engine how the exec ended: a code past 128 is the
// signal that killed it, as the engine reports it. An exec the engine no
// longer knows (its container was removed) was killed.
func (p *proc) status() sandbox.ExitStatus {
	killed := sandbox.ExitStatus{Code: -1, Signal: "killed"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 50 {
		r, err := p.k.d.e.cli.ExecInspect(ctx, p.execID, client.ExecInspectOptions{})
		if err != nil {
			return killed
		}
		if !r.Running {
			if r.ExitCode > 128 && r.ExitCode <= 128+64 {
				return sandbox.ExitStatus{Code: -1, Signal: syscall.Signal(r.ExitCode - 128).String()}
			}
			return sandbox.ExitStatus{Code: r.ExitCode}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return killed
}

// Done implements sandbox.Proc.
func (p *proc) Done() <-chan struct{} { return p.done }

// Exit implements sandbox.Proc.
func (p *proc) Exit() sandbox.ExitStatus { return p.exit }

// Stop implements sandbox.Proc: SIGTERM, then SIGKILL once ctx expires.
func (p *proc) Stop(ctx context.Context) error {
	if p.signal(ctx, syscall.SIGTERM) {
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
		}
	}
	kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.signal(kctx, syscall.SIGKILL) {
		select {
		case <-p.done:
			return nil
		case <-kctx.Done():
		}
	}
	// The engine cannot reach the process: end its container.
	_ = p.k.remove()
	<-p.done
	return nil
}

// signal sends sig to the process; false when it has ended or cannot be
// reached.
func (p *proc) signal(ctx context.Context, sig syscall.Signal) bool {
	select {
	case <-p.done:
		return false
	case <-p.pidKnown:
	case <-ctx.Done():
		return false
	}
	if p.pid <= 0 {
		return false
	}
	return p.k.run(ctx, "kill", strconv.Itoa(int(sig)), strconv.Itoa(p.pid)) == nil
}

// pidWriter takes the helper's first stderr line, the process's
// pid, and passes the rest on.
type pidWriter struct {
	w    io.Writer
	p    *proc
	buf  []byte
	seen bool
}

func (w *pidWriter) Write(b []byte) (int, error) {
	if w.seen {
		return w.w.Write(b)
	}
	n := len(b)
	w.buf = append(w.buf, b...)
	i := bytes.IndexByte(w.buf, '\n')
	if i < 0 {
		if len(w.buf) > 64 { // not a pid: pass it on
			w.seen = true
			close(w.p.pidKnown)
			_, err := w.w.Write(w.buf)
			return n, err
		}
		return n, nil
	}
	pid, flag, _ := strings.Cut(string(w.buf[:i]), " ")
	w.p.pid, _ = strconv.Atoi(pid)
	w.p.direct = flag == "direct"
	w.seen = true
	close(w.p.pidKnown)
	if rest := w.buf[i+1:]; len(rest) > 0 {
		if _, err := w.w.Write(rest); err != nil {
			return n, err
		}
	}
	w.buf = nil
	return n, nil
}
