package pool

import "testing"

// A limit lowered from 3 to 1 while 3 invokes run lets none in until all
// three have ended; raised from 1 to 3 with one running, it lets two in
// at once, and a third once that one ends. Chains of changes count alike.
func TestLimitSucceed(t *testing.T) {
	// takeAll takes every free slot of l, as invokes would, and counts them.
	takeAll := func(l *Limit) (n int) {
		for {
			select {
			case l.slots <- struct{}{}:
				n++
			default:
				return n
			}
		}
	}
	old := NewLimit(3)
	if n := takeAll(old); n != 3 {
		t.Fatalf("a new limit of 3 had %d free slots", n)
	}
	lower := old.Succeed(1)
	for i := range 3 {
		if n := takeAll(lower); n != 0 {
			t.Fatalf("the lowered limit took %d invokes with %d of the old ones running", n, 3-i)
		}
		if got := lower.running.Load(); got != 1 {
			t.Fatalf("running %d, want 1 for the old invokes", got)
		}
		old.release()
	}
	if n := takeAll(lower); n != 1 {
		t.Fatalf("the lowered limit, the old invokes gone: %d free slots, want 1", n)
	}
	if lower.running.Load() != 0 {
		t.Fatalf("running %d after the old invokes, want 0", lower.running.Load())
	}

	// lower runs one invoke; raised to 3, then to 2 while it runs.
	higher := lower.Succeed(3)
	if n := takeAll(higher); n != 2 {
		t.Fatalf("raised to 3 with one running: %d free slots, want 2", n)
	}
	again := higher.Succeed(2) // 3 taken: 2 held
	if n := takeAll(again); n != 0 {
		t.Fatalf("lowered to 2 with three running: %d free slots", n)
	}
	lower.release() // its invoke ends: higher has 2 taken, again 2 held
	if n := takeAll(again); n != 0 {
		t.Fatalf("two running, limit 2: %d free slots", n)
	}
	higher.release()
	if n := takeAll(again); n != 1 {
		t.Fatalf("one running, limit 2: %d free slots, want 1", n)
	}
}
