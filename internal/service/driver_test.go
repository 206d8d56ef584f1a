package service

import (
	"context"
	"testing"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// netDriver is a driver with a Network of its own; it starts nothing.
type netDriver struct{}

func (netDriver) Start(context.Context, sandbox.Spec) (sandbox.Env, error) { return nil, errStopped }
func (netDriver) ListenAddr(string) (string, error)                        { return "0.0.0.0:0", nil }
func (netDriver) RuntimeAPI(l string) string                               { return "host:" + l }

// The service's wrapper keeps a driver's optional sandbox.Network, which
// the environment looks for by type assertion, and adds none.
func TestTrackKeepsNetwork(t *testing.T) {
	tr := &tracker{live: map[int]sandbox.Env{}}
	n, ok := track(netDriver{}, tr).(sandbox.Network)
	if !ok {
		t.Fatal("the wrapper hides the driver's Network")
	}
	if a, _ := n.ListenAddr("127.0.0.1:0"); a != "0.0.0.0:0" || n.RuntimeAPI("x") != "host:x" {
		t.Errorf("Network not the driver's: %q %q", a, n.RuntimeAPI("x"))
	}
	type plain struct{ sandbox.Driver }
	if _, ok := track(plain{netDriver{}}, tr).(sandbox.Network); ok {
		t.Error("the wrapper claims a Network the driver lacks")
	}
	tr.stopAll(context.Background())
	if _, err := track(netDriver{}, tr).Start(context.Background(), sandbox.Spec{}); err != errStopped {
		t.Errorf("Start after stopAll: %v", err)
	}
}
