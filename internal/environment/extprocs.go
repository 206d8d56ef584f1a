package environment

import (
	"context"
	"time"

	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// extProc is a running external extension.
type extProc struct {
	name string
	env  sandbox.Proc
}

// awaitExtensions watches the external extensions the driver started and
// waits until each has registered, one exits, or timeout fires (timedOut).
func (e *Environment) awaitExtensions(id string, exts []sandbox.Extension, timeout <-chan time.Time) (resp *runtimeapi.Response, timedOut bool) {
	if len(exts) == 0 {
		return nil, false
	}
	names := make([]string, len(exts))
	e.extDied = make(chan extProc, len(exts))
	for i, x := range exts {
		names[i] = x.Name
		p := extProc{name: x.Name, env: x.Proc}
		e.exts = append(e.exts, p)
		go func(died chan<- extProc) {
			<-p.env.Done()
			died <- p
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
