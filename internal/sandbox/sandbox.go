// Package sandbox is the contract between the platform and the drivers that
// run execution environments: host processes (sandbox/process) or
// containers. One Start starts one whole environment, the runtime and its
// external extensions; sandbox/sandboxtest holds the conformance suite
// every driver passes. It imports no driver.
//
// The platform serves the environment's Runtime, Extensions and Telemetry
// APIs; a driver that needs it to listen elsewhere, or whose processes
// reach it by another address, implements Network. The platform waits for
// the extensions to register inside Spec.BeforeRuntime, so a driver whose
// processes start inside something else (a container's init) has that
// something start the extensions, call back, and only then run the
// bootstrap.
package sandbox

import (
	"context"
	"errors"
	"os"
	"sort"
	"strconv"
)

// Spec describes one execution environment: the runtime and the external
// extensions that run beside it.
type Spec struct {
	Path string   // the runtime's bootstrap executable
	Args []string // arguments after the executable
	Env  []string // the complete environment of every process, KEY=VALUE
	Dir  string   // the working directory of every process

	// MemoryLimit, when not zero, is the memory in bytes that the
	// environment's processes may use together, swap off: past it the
	// kernel kills them (OOMReporter tells). A driver that cannot enforce
	// it runs the environment unlimited.
	MemoryLimit uint64

	// ExtensionsDir holds the external extensions, as the environment sees
	// its file system (a container driver looks in the image). The driver
	// starts every executable file in it, in name order, before the
	// runtime, as Lambda does. Empty, or a directory that does not exist,
	// means none.
	ExtensionsDir string

	// Output, when set, returns the file that a process's stdout and
	// stderr go to: p names the process. The driver calls it once per
	// process, before starting it, and closes the file once the process
	// has started (or failed to). Nil discards all output.
	Output func(p Process) (*os.File, error)

	// Found, when set, is told the names of the extensions the driver
	// found, in the order it starts them, before it starts any.
	Found func(names []string)

	// BeforeRuntime, when set, is called once every extension has
	// started, with them. The runtime starts only if it returns true;
	// otherwise Start returns the environment without a runtime, for the
	// caller to stop. It may block (the caller waits there for the
	// extensions to register).
	BeforeRuntime func(exts []Extension) bool
}

// Process names one process of an environment.
type Process struct {
	Kind Kind   // KindFunction (the runtime) or KindExtension
	Name string // the extension's file name; empty for the runtime
}

// Kind tells the runtime from the extensions, as log lines and telemetry
// do.
type Kind string

// The kinds of process.
const (
	KindFunction  Kind = "function"
	KindExtension Kind = "extension"
)

// Driver starts execution environments.
type Driver interface {
	// Start launches the environment that spec describes: the extensions
	// first, then the runtime. An error that wraps ErrInvalidEntrypoint
	// means the bootstrap could not be executed; an *ExtensionError, that
	// an extension could not be. On error nothing is left running.
	Start(ctx context.Context, spec Spec) (Env, error)
}

// Env is one running execution environment.
type Env interface {
	// Runtime is the runtime's process; nil when BeforeRuntime kept it
	// from starting.
	Runtime() Proc
	// Extensions are the external extensions, in the order they started.
	Extensions() []Extension
	// Done is closed once every process of the environment has exited,
	// and everything they started has ended.
	Done() <-chan struct{}
	// Stop asks every process of the environment to exit (SIGTERM) and
	// kills all that is left once ctx expires. It returns when all is
	// gone.
	Stop(ctx context.Context) error
}

// Proc is one running process of an environment.
type Proc interface {
	// Done is closed once the process has exited and what it started has
	// ended.
	Done() <-chan struct{}
	// Exit describes how the process ended; valid after Done is closed.
	Exit() ExitStatus
	// Stop asks this process alone to exit (SIGTERM), and kills it and
	// what it started once ctx expires. It returns when they are gone.
	Stop(ctx context.Context) error
}

// Extension is a running external extension.
type Extension struct {
	Name string // its file name in the extensions directory
	Proc
}

// MemoryReporter is implemented by environments that can measure their
// memory. MaxMemory returns the peak resident memory of everything the
// environment runs, runtime and extensions, in bytes.
type MemoryReporter interface {
	MaxMemory() (uint64, error)
}

// OOMReporter is implemented by environments that can tell why they
// died. OutOfMemory reports whether the kernel killed a process of the
// environment because it passed Spec.MemoryLimit.
type OOMReporter interface {
	OutOfMemory() bool
}

// Network is implemented by drivers whose processes cannot reach lambdabox
// at the address it would listen on for an environment's Runtime API (a
// container cannot reach the host's 127.0.0.1). Without it, lambdabox
// listens where it was told and the processes use that address.
type Network interface {
	// ListenAddr returns where lambdabox must listen for the Runtime API
	// of the driver's environments, given the address it was configured
	// with (such as "127.0.0.1:0").
	ListenAddr(configured string) (string, error)
	// RuntimeAPI returns the host:port at which the environment's
	// processes reach a listener bound to listening, as
	// AWS_LAMBDA_RUNTIME_API gives it to them.
	RuntimeAPI(listening string) string
}

// ExtensionError is returned by Start when an extension cannot be
// executed.
type ExtensionError struct {
	Name string // the extension's file name
	Err  error
}

func (e *ExtensionError) Error() string { return "extension " + e.Name + ": " + e.Err.Error() }

// Unwrap returns what starting the extension reported.
func (e *ExtensionError) Unwrap() error { return e.Err }

// FindExtensions lists the executable files in dir, in name order, as
// drivers that run extensions from the host's file system find them. A
// directory that cannot be read, or is not one, has none.
func FindExtensions(dir string) []string {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range entries {
		info, err := de.Info()
		if err != nil {
			continue
		}
		// Executable files, and symbolic links (which exec follows, or
		// fails on with a clear error); not directories, pipes or devices.
		m := info.Mode()
		if m&0o111 == 0 || (!m.IsRegular() && m&os.ModeSymlink == 0) {
			continue
		}
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

// ExitStatus describes how a runtime ended.
type ExitStatus struct {
	Code   int    // exit code, or -1 when killed by a signal
	Signal string // the signal's name ("killed", "terminated"), when killed by one
}

// String renders the status as Lambda reports it: "exit status 1" or
// "signal: killed".
func (s ExitStatus) String() string {
	if s.Signal != "" {
		return "signal: " + s.Signal
	}
	return "exit status " + strconv.Itoa(s.Code)
}

// ErrInvalidEntrypoint is wrapped by Start errors caused by a bootstrap that
// is missing or not executable.
var ErrInvalidEntrypoint = errors.New("invalid entrypoint")

// EntrypointError is returned by Start when the bootstrap cannot be
// executed; it matches ErrInvalidEntrypoint.
type EntrypointError struct {
	Err error // what exec reported, e.g. "fork/exec /var/task/bootstrap: permission denied"
}

func (e *EntrypointError) Error() string { return e.Err.Error() }

// Is reports whether target is ErrInvalidEntrypoint.
func (e *EntrypointError) Is(target error) bool { return target == ErrInvalidEntrypoint }

// Unwrap returns the underlying exec error.
func (e *EntrypointError) Unwrap() error { return e.Err }
