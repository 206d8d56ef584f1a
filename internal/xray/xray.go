// Package xray makes AWS X-Ray trace headers, which Lambda hands every
// invocation (Lambda-Runtime-Trace-Id, _X_AMZN_TRACE_ID) when the caller
// sent none.
package xray

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// NewTraceID makes a trace header for a request received at now:
// Root=1-<8 hex epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0.
func NewTraceID(now time.Time) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return "Root=1-" + strconv.FormatInt(now.Unix(), 16) + "-" + hex.EncodeToString(b[:12]) +
		";Parent=" + hex.EncodeToString(b[12:]) + ";Sampled=0"
}
