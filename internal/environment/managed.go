package environment

import (
	"context"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/extensions"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/runtimeapi"
	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// managed is the state of an environment in Lambda Managed Instances mode
// (function.Config.PerEnvironmentConcurrency), where up to that many
// invokes run at once. Following AWS's description of that mode:
//   - Init is over once the extensions registered and one runtime worker
//     called next;
//   - each invoke has its own deadline; a timeout fails that invoke only,
//     the environment is not reset, and the runtime's late answer gets 410
//     Runtime.InvokeTimeout;
//   - a runtime that exits or an extension that crashes fails the whole
//     environment and every invoke in it; the next invoke starts a new one.
type managed struct {
	mu  sync.Mutex // serialises Init, resets and the accounting of settles
	gen *instance  // the running runtime; nil before Init
}

// instance is one runtime process of a managed environment, shared by the
// invokes it runs.
type instance struct {
	sbx    sandbox.Env // the whole environment, which says whether memory ran out
	proc   sandbox.Proc
	extDie <-chan extProc
	hasExt bool          // extensions are registered: they get INVOKE events
	failed chan struct{} // closed once the instance failed
	// failType and failMsg describe the failure, set before failed closes.
	failType, failMsg string
}

// Managed reports whether the environment runs as on Lambda Managed
// Instances: invokes go through InvokeShared.
func (e *Environment) Managed() bool { return e.managed != nil }

// InvokeShared runs one invocation in Managed Instances mode, beside the
// others in flight. The returned settle prints END and REPORT and publishes
// the telemetry; call it once, off the response's path, before the
// invoke's slot is taken again.
func (e *Environment) InvokeShared(ctx context.Context, req *function.Request) (*function.Result, func()) {
	m := e.managed
	// ctx's cancellation is dropped where it could cut Init or a reset
	// short (ensureInit, reset), not here: one allocation fewer per invoke.
	start := time.Now()
	m.mu.Lock()
	resp, failure := e.ensureInit(ctx, req.ID, start, start.Add(e.cfg.Timeout))
	var inst *instance
	if resp == nil {
		if m.gen == nil || m.gen.proc != e.proc {
			m.gen = &instance{sbx: e.sbx, proc: e.proc, extDie: e.extDied, hasExt: len(e.exts)+e.internalExtensions() > 0, failed: make(chan struct{})}
		}
		inst = m.gen
	}
	initDur := e.initDur
	e.initDur = 0
	m.mu.Unlock()

	startLine := []byte("START RequestId: " + req.ID + " Version: " + e.cfg.Version + "\n")
	e.logs.write(startLine)
	if resp == nil {
		start = time.Now()
		req.Deadline = start.Add(e.cfg.Timeout)
		resp, failure = e.runShared(ctx, inst, &req.Invocation)
	}
	r := &report{id: req.ID, start: start, end: time.Now(), deadline: req.Deadline, failure: failure, resp: resp, tenant: req.TenantID}
	res := newResult(resp)
	if req.Tail {
		// The runtime's lines of concurrent invokes cannot be told apart:
		// the tail holds the platform's lines of this invoke.
		res.Log = function.NewLogTail()
		r.tail = res.Log
	}
	return res, func() { e.settleShared(ctx, r, initDur, startLine) }
}

// runShared hands inv to the runtime (and INVOKE to the extensions) and
// waits for its answer, its deadline, or the instance's failure.
func (e *Environment) runShared(ctx context.Context, inst *instance, inv *runtimeapi.Invocation) (*runtimeapi.Response, string) {
	if inst.hasExt {
		e.ext.Send(extensions.Event{
			EventType: "INVOKE", DeadlineMs: inv.Deadline.UnixMilli(), RequestID: inv.ID,
			InvokedFunctionArn: inv.FunctionARN, Tracing: &extensions.Tracing{Type: "X-Amzn-Trace-Id", Value: inv.TraceID},
		})
	}
	if e.tel.Active("platform") {
		e.tel.Publish("platform.start", map[string]any{"requestId": inv.ID, "version": e.cfg.Version,
			"tracing": map[string]string{"type": "X-Amzn-Trace-Id", "value": inv.TraceID}})
	}
	answer := e.api.Dispatch(inv)
	timer := time.NewTimer(time.Until(inv.Deadline))
	defer timer.Stop()
	select {
	case resp := <-answer:
		return resp, ""
	case <-inst.proc.Done():
		select { // answered just before it exited
		case resp := <-answer:
			return resp, ""
		default:
		}
		resp := exitResponse(inst.sbx, inst.proc, inv.ID)
		e.failShared(ctx, inst, resp.ErrorType, "Runtime exited: "+inst.proc.Exit().String())
		return resp, resp.ErrorType
	case x := <-inst.extDie:
		resp := e.extensionCrash(inv.ID, x)
		e.failShared(ctx, inst, resp.ErrorType, "extension "+x.name+" exited: "+x.env.Exit().String())
		return resp, resp.ErrorType
	case <-inst.failed:
		select {
		case resp := <-answer:
			return resp, ""
		default:
		}
		resp := runtimeapi.ErrorResponse(inst.failType, requestPrefix(inv.ID)+inst.failMsg)
		return resp, resp.ErrorType
	case <-timer.C:
		// Lambda Managed Instances do not stop the handler: the invoke
		// fails, the others go on, and a late answer is refused.
		e.api.Abandon(inv.ID)
		return e.timeoutResponse(inv.ID), errTimedOut
	}
}

// failShared fails inst, and with it every invoke it runs, and resets the
// environment, once.
func (e *Environment) failShared(ctx context.Context, inst *instance, errType, msg string) {
	m := e.managed
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-inst.failed:
		return
	default:
	}
	inst.failType, inst.failMsg = errType, msg
	close(inst.failed)
	if m.gen == inst {
		e.log.Warn("execution environment failed; failing every invoke in it", "error_type", errType, "error", msg)
		m.gen = nil
		e.reset(ctx, ReasonFailure)
	}
}

// settleShared ends one invocation of a managed environment: it waits for
// a streamed response, then prints END and REPORT and publishes the
// telemetry.
func (e *Environment) settleShared(ctx context.Context, r *report, initDur time.Duration, startLine []byte) {
	if st := r.resp.Stream; st != nil {
		timer := time.NewTimer(time.Until(r.deadline))
		select {
		case <-st.Done():
		case <-timer.C:
			st.Fail(errTimedOut, e.timeoutResponse(r.id).Payload)
			r.failure = errTimedOut
			e.api.Abandon(r.id)
		}
		timer.Stop()
		r.end = time.Now()
	}
	e.logs.flush()
	// END, the timeout line and REPORT in one buffer, grown once.
	lines := append(append(make([]byte, 0, 320), "END RequestId: "...), r.id...)
	lines = append(lines, '\n')
	if r.timedOut() {
		lines = append(lines, r.end.UTC().Format("2006-01-02T15:04:05.000Z")+" "+r.id+" Task timed out after "+e.timeoutSeconds()+" seconds\n"...)
	}
	d := r.end.Sub(r.start)
	m := e.managed
	m.mu.Lock()
	e.measureMemory()
	e.initDur = initDur
	e.publishReport(r, d)
	lines = e.report(lines, r.id, d, r.failure, r.tenant)
	m.mu.Unlock()
	e.logs.write(lines)
	if r.tail != nil {
		r.tail.Set(append(startLine, lines...))
	}
}
