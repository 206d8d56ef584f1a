package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// Settings of TestChaosSoak's `lambdabox rie`.
const (
	chaosClients     = 8
	chaosConcurrency = 4
	chaosTimeout     = 2 * time.Second
	// chaosStopGrace is how long lambdabox may take to exit after SIGTERM
	// before it gets SIGKILL, as `docker stop` does.
	chaosStopGrace = 10 * time.Second
	// chaosFinalEvents are sent just before SIGTERM, each taking
	// chaosFinalEventMS, so that a backlog is left at shutdown.
	chaosFinalEvents  = 40
	chaosFinalEventMS = 1500
)

// chaosWeight is how often an action is picked.
type chaosWeight struct {
	action string
	weight int
}

// chaosMix is how often each action is picked, out of the sum.
var chaosMix = []chaosWeight{
	{actEcho, 40}, {actError, 10}, {actPanic, 5}, {actExit, 5}, {actTimeout, 3},
	{actStream, 10}, {actStreamTimeout, 3}, {actSetsid, 4}, {actEvent, 20},
}

// chaosActions is chaosMix without the actions LAMBDABOX_CHAOS_SKIP lists
// (comma-separated), to look past a defect that ends the soak early.
func chaosActions(t *testing.T) []chaosWeight {
	skip := strings.Split(os.Getenv("LAMBDABOX_CHAOS_SKIP"), ",")
	var mix []chaosWeight
	for _, m := range chaosMix {
		if !slices.Contains(skip, m.action) {
			mix = append(mix, m)
		}
	}
	if len(mix) < len(chaosMix) {
		t.Logf("LAMBDABOX_CHAOS_SKIP: %d of %d actions left out", len(chaosMix)-len(mix), len(chaosMix))
	}
	if len(mix) == 0 {
		t.Fatal("LAMBDABOX_CHAOS_SKIP leaves no action")
	}
	return mix
}

// lambdaboxProc is a `lambdabox rie` process under observation.
type lambdaboxProc struct {
	cmd       *exec.Cmd
	done      chan struct{}
	stderr    *syncbuf.Buffer
	invokeURL string
	debugURL  string
}

// exited reports whether the process has ended.
func (p *lambdaboxProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// usage is what lambdabox holds at one moment.
type usage struct {
	fds, goroutines int
	rssKiB          int
}

func (u usage) String() string {
	return fmt.Sprintf("%d fds, %d goroutines, RSS %d KiB", u.fds, u.goroutines, u.rssKiB)
}

// measure reads lambdabox's open fds and RSS from /proc and its goroutine
// count from its pprof endpoint, over a connection that is closed after.
func (p *lambdaboxProc) measure() (usage, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	pid := strconv.Itoa(p.cmd.Process.Pid)
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return usage{}, err
	}
	u := usage{fds: len(fds)}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return usage{}, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	resp, err := client.Get(p.debugURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return usage{}, err
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, ok := strings.CutPrefix(strings.TrimSpace(first), "goroutine profile: total ")
	if !ok {
		return usage{}, fmt.Errorf("goroutine profile starts %q", first)
	}
	u.goroutines, err = strconv.Atoi(n)
	_, _ = io.Copy(io.Discard, resp.Body)
	return u, err
}

// markedProcesses lists the pids of live processes whose command line holds
// marker: the soak's runtimes and their setsid children.
func markedProcesses(marker string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(marker)) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			// A zombie has exited; only its parent has not reaped it.
			if _, rest, ok := strings.Cut(string(st), ") "); ok && strings.HasPrefix(rest, "Z") {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// chaosTally counts the answers of the soak's sync requests and the Event
// invokes accepted.
type chaosTally struct {
	mu        sync.Mutex
	requests  int            // sync requests answered or failed
	byAction  map[string]int // sync requests per action
	throttled int            // 429 TooManyRequestsException, a documented answer
	failures  int
	firstErrs []string // the first few failures
	events    []string // request ids of the accepted Event invokes
	eventErrs int      // Event invokes not accepted
}

func (t *chaosTally) fail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if len(t.firstErrs) < 10 {
		t.firstErrs = append(t.firstErrs, fmt.Sprintf(format, args...))
	}
}

// sendChaos sends one event and judges its answer.
func sendChaos(ctx context.Context, client *http.Client, url string, ev chaosEvent, tally *chaosTally) {
	payload, _ := json.Marshal(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		tally.fail("%v", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if ev.Action == actEvent {
		req.Header.Set("X-Amz-Invocation-Type", "Event")
	}
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if ev.Action == actEvent {
		id := ""
		if err == nil {
			id = resp.Header.Get("X-Amzn-RequestId")
		}
		tally.mu.Lock()
		if err == nil && resp.StatusCode == http.StatusAccepted && id != "" {
			tally.events = append(tally.events, id)
			tally.mu.Unlock()
			return
		}
		tally.eventErrs++
		tally.mu.Unlock()
		if err != nil {
			tally.fail("event %d: %v", ev.N, err)
		} else {
			tally.fail("event %d: status %d (request id %q): %.200s", ev.N, resp.StatusCode, id, body)
		}
		return
	}
	tally.mu.Lock()
	tally.requests++
	tally.byAction[ev.Action]++
	tally.mu.Unlock()
	if err != nil {
		tally.fail("%s %d: %v", ev.Action, ev.N, err)
		return
	}
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("X-Amzn-ErrorType") == "TooManyRequestsException" {
		tally.mu.Lock()
		tally.throttled++
		tally.mu.Unlock()
		return
	}
	if err := judgeChaos(ev, payload, resp, body); err != nil {
		tally.fail("%s %d: %v", ev.Action, ev.N, err)
	}
}

// judgeChaos checks a sync answer against what Lambda answers for the
// action.
func judgeChaos(ev chaosEvent, payload []byte, resp *http.Response, body []byte) error {
	fe := resp.Header.Get("X-Amz-Function-Error")
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, error type %q: %.200s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}
	want := func(errorType string) error {
		var e struct{ ErrorType string }
		if fe == "" || json.Unmarshal(body, &e) != nil || e.ErrorType != errorType {
			return fmt.Errorf("want function error %s, got X-Amz-Function-Error %q: %.200s", errorType, fe, body)
		}
		return nil
	}
	switch ev.Action {
	case actEcho, actSetsid:
		if fe != "" || !bytes.Equal(body, payload) {
			return fmt.Errorf("want the event back, got X-Amz-Function-Error %q: %.200s", fe, body)
		}
	case actStream:
		if w := strings.Join(streamChunks, ""); fe != "" || string(body) != w {
			return fmt.Errorf("want the streamed answer %s, got X-Amz-Function-Error %q: %.200s", w, fe, body)
		}
	case actError:
		return want("Chaos.Error")
	case actPanic, actExit:
		return want("Runtime.ExitError")
	case actTimeout, actStreamTimeout:
		return want("Sandbox.Timedout")
	}
	return nil
}

// TestChaosSoak runs `lambdabox rie` with a pool of 4 on a runtime that
// echoes, fails, panics, exits, times out, streams answers to buffered
// invokes and leaves setsid children behind, under 8 clients that also send
// Event invokes, for a minute (LAMBDABOX_SOAK shortens it); then a burst of
// slow Event invokes and SIGTERM. It fails when a request gets no
// Lambda-shaped answer, when an accepted event neither ran nor is on disk,
// when a process the environments started outlives lambdabox, or when
// lambdabox's fds, goroutines or RSS, after a quiet period, are not back
// near where they started.
func TestChaosSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute-long soak")
	}
	duration := soakDuration(t)
	bin := lambdaboxBinary(t)
	dir := t.TempDir()
	asyncDir, runsFile := filepath.Join(dir, "async"), filepath.Join(dir, "runs")
	marker := fmt.Sprintf("chaos-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { // whatever escaped, so the machine stays clean
		for _, pid := range markedProcesses(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	addr, debugAddr := freeLoopback(t), freeLoopback(t)
	p := &lambdaboxProc{done: make(chan struct{}), stderr: &syncbuf.Buffer{},
		invokeURL: "http://" + addr + "/2015-03-31/functions/function/invocations", debugURL: "http://" + debugAddr}
	p.cmd = exec.Command(bin, "rie",
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", "127.0.0.1:0",
		"--debug-addr", debugAddr, "--log-level", "warn",
		"--max-concurrency", strconv.Itoa(chaosConcurrency), "--timeout", chaosTimeout.String(),
		"--async-dir", asyncDir, "--async-retry-delay", "100ms",
		self, chaosRuntimeArg, marker)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "CHAOS_RUNS="+runsFile, "CHAOS_TIMEOUT="+chaosTimeout.String())
	p.cmd.Stderr = p.stderr // the runtimes' output goes to stdout, discarded
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("lambdabox rie did not start on %s\nstderr:\n%s", addr, p.stderr)
		}
	}

	client := NewClient(chaosClients)
	warm := func() {
		// Every environment busy at once, so each is started: the same
		// number of runtimes before and after.
		var wg sync.WaitGroup
		for i := range chaosConcurrency {
			wg.Go(func() {
				sendChaos(t.Context(), client, p.invokeURL, chaosEvent{Action: actEcho, N: -1 - i, SleepMS: 300}, &chaosTally{byAction: map[string]int{}})
			})
		}
		wg.Wait()
		client.CloseIdleConnections()
		time.Sleep(time.Second)
	}
	warm()
	before, err := p.measure()
	if err != nil {
		t.Fatalf("measuring lambdabox: %v\nstderr:\n%s", err, p.stderr)
	}

	// The soak: 8 clients, each its own sequence of actions.
	tally := &chaosTally{byAction: map[string]int{}}
	mix := chaosActions(t)
	total := 0
	for _, m := range mix {
		total += m.weight
	}
	start := time.Now()
	var wg sync.WaitGroup
	var counter sync.Mutex
	n := 0
	next := func() int { counter.Lock(); defer counter.Unlock(); n++; return n }
	for c := range chaosClients {
		rng := rand.New(rand.NewPCG(uint64(c), 9))
		wg.Go(func() {
			for time.Since(start) < duration && !p.exited() {
				r, action := rng.IntN(total), ""
				for _, m := range mix {
					if r -= m.weight; r < 0 {
						action = m.action
						break
					}
				}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				sendChaos(ctx, client, p.invokeURL, chaosEvent{Action: action, N: next()}, tally)
				cancel()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	crashed := p.exited()

	// A quiet period: the Event invokes run, the environments settle.
	var after usage
	var measureErr error
	if !crashed {
		waitQuiet(t, runsFile, tally.events)
		warm()
		after, measureErr = p.measure()
	}
	escapedBeforeStop := len(markedProcesses(marker))

	// A backlog of slow events, then SIGTERM, and SIGKILL if lambdabox
	// takes longer than docker stop allows.
	var finalWG sync.WaitGroup
	for i := range chaosFinalEvents {
		if p.exited() {
			break
		}
		finalWG.Go(func() {
			sendChaos(t.Context(), client, p.invokeURL, chaosEvent{Action: actEvent, N: 1_000_000 + i, SleepMS: chaosFinalEventMS}, tally)
		})
	}
	finalWG.Wait()
	client.CloseIdleConnections()
	killed := false
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(chaosStopGrace):
			killed = true
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	time.Sleep(500 * time.Millisecond) // the kernel reparents and reaps
	escaped := markedProcesses(marker)

	// Every accepted event ran (its id is in runsFile) or is on disk.
	ran := readLines(runsFile)
	pending, failed := dirIDs(filepath.Join(asyncDir, "pending")), dirIDs(filepath.Join(asyncDir, "failed"))
	var lost []string
	ranCount := 0
	for _, id := range tally.events {
		if ran[id] {
			ranCount++
		}
		if !ran[id] && !pending[id] && !failed[id] {
			lost = append(lost, id)
		}
	}

	// The figures, then the verdicts.
	actions := make([]string, 0, len(tally.byAction))
	for a := range tally.byAction {
		actions = append(actions, fmt.Sprintf("%s=%d", a, tally.byAction[a]))
	}
	sort.Strings(actions)
	t.Logf("chaos soak: %v, %d clients, pool of %d, timeout %v", elapsed.Round(time.Millisecond), chaosClients, chaosConcurrency, chaosTimeout)
	t.Logf("  sync requests: %d (%s), throttled (429): %d, failed: %d", tally.requests, strings.Join(actions, " "), tally.throttled, tally.failures-tally.eventErrs)
	t.Logf("  Event invokes: %d accepted, %d refused; ran %d, pending on disk %d, failed on disk %d, lost %d",
		len(tally.events), tally.eventErrs, ranCount, len(pending), len(failed), len(lost))
	t.Logf("  marked processes: %d alive before SIGTERM, %d after lambdabox exited (escaped)", escapedBeforeStop, len(escaped))
	t.Logf("  lambdabox before: %v", before)
	if !crashed {
		t.Logf("  lambdabox after:  %v", after)
	}
	t.Logf("  exit: %v, SIGKILLed after %v: %v", p.cmd.ProcessState, chaosStopGrace, killed)

	if crashed {
		t.Errorf("lambdabox exited during the soak (%v)\nstderr (tail):\n%s", p.cmd.ProcessState, tail(p.stderr.String(), 60))
	}
	if tally.failures > 0 {
		t.Errorf("%d requests without a Lambda-shaped answer; first:\n  %s", tally.failures, strings.Join(tally.firstErrs, "\n  "))
	}
	if len(lost) > 0 {
		t.Errorf("%d accepted Event invokes lost (neither ran nor on disk), e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if len(escaped) > 0 {
		t.Errorf("%d processes started by the environments outlived lambdabox, e.g. pids %v", len(escaped), escaped[:min(10, len(escaped))])
	}
	if killed {
		t.Errorf("lambdabox did not exit within %v of SIGTERM\nstderr (tail):\n%s", chaosStopGrace, tail(p.stderr.String(), 40))
	} else if st := p.cmd.ProcessState; st != nil && !crashed && !st.Success() {
		t.Errorf("lambdabox exited with %v after SIGTERM\nstderr (tail):\n%s", st, tail(p.stderr.String(), 40))
	}
	switch {
	case crashed:
	case measureErr != nil:
		t.Errorf("measuring lambdabox after the soak: %v", measureErr)
	default:
		// Margins: a few fds and goroutines (a client connection, the
		// runtime of an environment being replaced), and the heap the
		// soak grew that the runtime has not returned yet.
		if after.fds > before.fds+4 {
			t.Errorf("fds: %d after the soak, %d before", after.fds, before.fds)
		}
		if after.goroutines > before.goroutines+10 {
			t.Errorf("goroutines: %d after the soak, %d before", after.goroutines, before.goroutines)
		}
		if after.rssKiB > before.rssKiB*3/2+16<<10 {
			t.Errorf("RSS: %d KiB after the soak, %d KiB before", after.rssKiB, before.rssKiB)
		}
	}
}

// waitQuiet waits, for at most 30 s, until every event in events has run
// (its id is in runsFile), then a little longer.
func waitQuiet(t *testing.T, runsFile string, events []string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ran, all := readLines(runsFile), true
		for _, id := range events {
			all = all && ran[id]
		}
		if all {
			break
		}
	}
	time.Sleep(time.Second)
}

// readLines is the set of lines in the file at path.
func readLines(path string) map[string]bool {
	b, _ := os.ReadFile(path)
	set := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		set[l] = true
	}
	return set
}

// dirIDs is the set of request ids with a file in dir: <id>.event for a
// pending event, <id>.json for a failure record.
func dirIDs(dir string) map[string]bool {
	set := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if ext := filepath.Ext(name); ext == ".event" || ext == ".json" {
			set[strings.TrimSuffix(name, ext)] = true
		}
	}
	return set
}

// freeLoopback returns a loopback address whose port was free a moment
// ago, drawn below the kernel's ephemeral range so that no bind to port 0
// or outgoing connection takes it before lambdabox binds it.
func freeLoopback(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(22000)))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
