package xray

import (
	"regexp"
	"testing"
	"time"
)

func TestNewTraceID(t *testing.T) {
	id := NewTraceID(time.Unix(0x5759e988, 0))
	if !regexp.MustCompile(`^Root=1-5759e988-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`).MatchString(id) {
		t.Errorf("trace id %q", id)
	}
	if a, b := NewTraceID(time.Now()), NewTraceID(time.Now()); a == b {
		t.Error("two trace ids are equal")
	}
}
