package environment

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// extProc is a running external extension.
type extProc struct {
	name string
	env  sandbox.Env
}

// externalExtensions lists the executables in the extensions directory, in
// name order.
func (e *Environment) externalExtensions() []string {
	entries, err := os.ReadDir(e.extDir)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range entries {
		info, err := de.Info()
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			continue
		}
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

// startExtensions launches the external extensions and waits until each
// has registered. It opens registration for internal extensions too.
func (e *Environment) startExtensions(ctx context.Context, id string, timeout <-chan time.Time) (*runtimeapi.Response, bool) {
	names := e.externalExtensions()
	e.ext.Reset(names)
	if len(names) == 0 {
		return nil, false
	}
	e.extDied = make(chan extProc, len(names))
	out, err := e.pipe("extension")
	if err != nil {
		return runtimeapi.ErrorResponse("Extension.LaunchError", requestPrefix(id)+err.Error()), false
	}
	defer out.Close()
	for _, name := range names {
		env, err := e.start(ctx, filepath.Join(e.extDir, name), nil, out)
		if err != nil {
			e.log.Error("starting an extension", "extension", name, "error", err)
			return runtimeapi.ErrorResponse("Extension.LaunchError", requestPrefix(id)+"extension "+name+": "+err.Error()), false
		}
		x := extProc{name: name, env: env}
		e.exts = append(e.exts, x)
		go func(died chan<- extProc) {
			<-env.Done()
			died <- x
		}(e.extDied)
	}
	for !e.ext.Registered(names) {
		changed := e.ext.Changed()
		if e.ext.Registered(names) {
			break
		}
		select {
		case <-changed:
		case x := <-e.extDied:
			return e.extensionCrash(id, x), false
		case <-timeout:
			return nil, true
		}
	}
	return nil, false
}

func (e *Environment) extensionCrash(id string, x extProc) *runtimeapi.Response {
	e.log.Warn("extension exited", "extension", x.name, "status", x.env.Exit().String())
	return runtimeapi.ErrorResponse("Extension.Crash", requestPrefix(id)+"extension "+x.name+" exited: "+x.env.Exit().String())
}

// waitExtensionsGone waits until every extension has exited or is back in
// event/next (done with SHUTDOWN), or ctx ends.
func (e *Environment) waitExtensionsGone(ctx context.Context) {
	for {
		changed := e.ext.Changed()
		alive := 0
		for _, x := range e.exts {
			if !isClosed(x.env.Done()) {
				alive++
			}
		}
		if alive == 0 || e.ext.Ready() {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond): // an exit is not a state change
		}
	}
}
