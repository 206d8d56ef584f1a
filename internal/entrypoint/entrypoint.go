// Package entrypoint is the behaviour of /lambda-entrypoint.sh in
// lambdabox base images. The lambdabox binary runs it when started under
// that name (a symlink to /usr/local/bin/aws-lambda-rie), so images need no
// shell for their entrypoint.
package entrypoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Usage is printed to stderr when the entrypoint gets other than one argument.
const Usage = "entrypoint requires the handler name to be the first argument"

// ExitUsage is the exit status for a wrong number of arguments.
const ExitUsage = 142

// ErrUsage is returned by Plan for other than exactly one argument.
var ErrUsage = errors.New(Usage)

// Paths are the well-known locations in the image.
type Paths struct {
	// Emulator is the local emulator; default /usr/local/bin/aws-lambda-rie.
	Emulator string
	// Bootstrap is the runtime's bootstrap; default /var/runtime/bootstrap.
	Bootstrap string
	// Fallbacks are tried, in order, when Bootstrap is missing (the
	// provided runtime, whose bootstrap is the function itself); default
	// /var/task/bootstrap, /opt/bootstrap.
	Fallbacks []string
}

func (p Paths) withDefaults() Paths {
	if p.Emulator == "" {
		p.Emulator = "/usr/local/bin/aws-lambda-rie"
	}
	if p.Bootstrap == "" {
		p.Bootstrap = "/var/runtime/bootstrap"
	}
	if p.Fallbacks == nil {
		p.Fallbacks = []string{"/var/task/bootstrap", "/opt/bootstrap"}
	}
	return p
}

// Plan is what the entrypoint executes.
type Plan struct {
	Path string
	Argv []string
	// Handler is exported as _HANDLER.
	Handler string
}

// Decide returns the plan for args (without argv[0]): the emulator running
// the bootstrap when AWS_LAMBDA_RUNTIME_API is unset, else the bootstrap.
func Decide(args []string, getenv func(string) string, exists func(string) bool, p Paths) (Plan, error) {
	if len(args) != 1 {
		return Plan{}, ErrUsage
	}
	p = p.withDefaults()
	bootstrap := p.Bootstrap
	if !exists(bootstrap) {
		bootstrap = ""
		for _, f := range p.Fallbacks {
			if exists(f) {
				bootstrap = f
				break
			}
		}
	}
	if getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		argv := []string{p.Emulator}
		if bootstrap != "" {
			argv = append(argv, bootstrap)
		}
		return Plan{Path: p.Emulator, Argv: argv, Handler: args[0]}, nil
	}
	if bootstrap == "" {
		return Plan{}, fmt.Errorf("no bootstrap: none of %s exists", append([]string{p.Bootstrap}, p.Fallbacks...))
	}
	return Plan{Path: bootstrap, Argv: []string{bootstrap}, Handler: args[0]}, nil
}

// Main runs the entrypoint and returns an exit status only when it could
// not exec.
func Main(args []string, stderr io.Writer) int {
	plan, err := Decide(args, os.Getenv, func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular()
	}, Paths{})
	if errors.Is(err, ErrUsage) {
		fmt.Fprintln(stderr, Usage)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "lambda-entrypoint:", err)
		return 1
	}
	env := append(os.Environ(), "_HANDLER="+plan.Handler)
	err = syscall.Exec(plan.Path, plan.Argv, env)
	fmt.Fprintf(stderr, "lambda-entrypoint: exec %s: %v\n", plan.Path, err)
	return 127
}
