// Package sandbox is the contract between the platform and the drivers that
// run execution environments: host processes (sandbox/process) or
// containers. It imports no driver.
package sandbox

import (
	"context"
	"errors"
	"os"
	"strconv"
)

// Spec describes the runtime process of one execution environment.
type Spec struct {
	Path string   // the bootstrap executable
	Args []string // arguments after the executable
	Env  []string // the complete environment, KEY=VALUE
	Dir  string   // working directory

	// Stdout and Stderr receive the runtime's output. Nil discards it.
	Stdout, Stderr *os.File
}

// Driver starts execution environments.
type Driver interface {
	// Start launches the runtime described by spec. An error that wraps
	// ErrInvalidEntrypoint means the bootstrap could not be executed.
	Start(ctx context.Context, spec Spec) (Env, error)
}

// Env is one running execution environment.
type Env interface {
	// Done is closed once the runtime has exited and been reaped.
	Done() <-chan struct{}
	// Exit describes how the runtime ended; valid after Done is closed.
	Exit() ExitStatus
	// Stop asks the runtime to exit (SIGTERM) and kills everything the
	// environment started once ctx expires. It returns when all is reaped.
	Stop(ctx context.Context) error
}

// MemoryReporter is implemented by environments that can measure their
// memory. MaxMemory returns the peak resident memory of everything the
// environment runs, in bytes.
type MemoryReporter interface {
	MaxMemory() (uint64, error)
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
