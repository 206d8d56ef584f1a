package environment

import (
	"strings"
	"time"

	"github.com/lambdabox/lambdabox/internal/runtimeapi"
)

// publishInit sends platform.initRuntimeDone and platform.initReport.
func (e *Environment) publishInit(resp *runtimeapi.Response, timedOut bool) {
	if !e.tel.Active("platform") {
		return
	}
	status, errorType := "success", ""
	switch {
	case timedOut:
		status, errorType = "timeout", "Sandbox.Timedout"
	case resp != nil:
		status, errorType = "error", resp.ErrorType
	}
	done := map[string]any{"initializationType": e.initType, "phase": "init", "status": status}
	rep := map[string]any{"initializationType": e.initType, "phase": "init", "status": status,
		"metrics": map[string]any{"durationMs": millis(e.initDur)}}
	if errorType != "" {
		done["errorType"] = errorType
		rep["errorType"] = errorType
	}
	e.tel.Publish("platform.initRuntimeDone", done)
	e.tel.Publish("platform.initReport", rep)
}

// publishReport sends platform.runtimeDone and platform.report for the
// invocation r, which lasted d.
func (e *Environment) publishReport(r *report, d time.Duration) {
	if !e.tel.Active("platform") {
		return
	}
	status, errorType := "success", ""
	switch {
	case r.timedOut():
		status, errorType = "timeout", errTimedOut
	case r.resp.Error:
		status, errorType = "error", r.resp.ErrorType // the function's own error
		if strings.HasPrefix(errorType, "Runtime.") || strings.HasPrefix(errorType, "Extension.") {
			status = "failure" // the runtime or an extension failed
		}
	}
	produced := int64(len(r.resp.Payload))
	if r.resp.Stream != nil {
		produced = r.resp.Stream.Size()
	}
	done := map[string]any{"requestId": r.id, "status": status,
		"metrics": map[string]any{"durationMs": millis(d), "producedBytes": produced}}
	metrics := map[string]any{"durationMs": millis(d), "billedDurationMs": billed(d),
		"memorySizeMB": e.cfg.MemoryMB, "maxMemoryUsedMB": e.maxMemoryMB()}
	if e.initDur > 0 {
		metrics["initDurationMs"] = millis(e.initDur)
	}
	rep := map[string]any{"requestId": r.id, "status": status, "metrics": metrics}
	if errorType != "" {
		done["errorType"] = errorType
		rep["errorType"] = errorType
	}
	if r.tenant != "" {
		done["tenantId"], rep["tenantId"] = r.tenant, r.tenant
	}
	e.tel.Publish("platform.runtimeDone", done)
	e.tel.Publish("platform.report", rep)
}
