package pool

import "testing"

// A limit lowered from 3 to 1 while 3 invokes run lets none in until all
// three have ended; raised from 1 to 3 with one running, it lets two in
// at once, and a third once that one ends. Chains of changes count alike.
func TestLimitSucceed(t *testing.T) {
	take := func(l *Limit) bool {
		select {
		case l.slots <- struct{}{}:
			return true
		default:
			return false
		}
	}
	old := NewLimit(3)
	for range 3 {
		if !take(old) {
			t.Fatal("a slot of a new limit was taken")
		}
	}
	lower := old.Succeed(1)
	for i := range 3 {
		if take(lower) {
			t.Fatalf("the lowered limit took an invoke with %d of the old ones running", 3-i)
		}
		if got := lower.running.Load(); got != 1 {
			t.Fatalf("running %d, want 1 for the old invokes", got)
		}
		old.release()
	}
	if !take(lower) || take(lower) {
		t.Fatal("the lowered limit, the old invokes gone: want one slot")
	}
	if lower.running.Load() != 0 {
		t.Fatalf("running %d after the old invokes, want 0", lower.running.Load())
	}

	// lower runs one invoke; raised to 3, then to 2 while it runs.
	higher := lower.Succeed(3)
	if !take(higher) || !take(higher) || take(higher) {
		t.Fatal("raised to 3 with one running: want two slots free")
	}
	again := higher.Succeed(2) // 3 taken: 2 held
	if take(again) {
		t.Fatal("lowered to 2 with three running: a slot was free")
	}
	lower.release() // its invoke ends: higher has 2 taken, again 2 held
	if take(again) {
		t.Fatal("two running, limit 2: a slot was free")
	}
	higher.release()
	if !take(again) || take(again) {
		t.Fatal("one running, limit 2: want one slot")
	}
}
