package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
	"github.com/lambdabox/lambdabox/internal/template"
)

// BenchmarkHotReload measures, for a Python function (awslambdaric on the
// host's python3), the time from saving a new handler to the first
// response that comes from it, while one client invokes in a loop:
//
//   - replace (the floor): the file is written first, then the clock starts
//     and service.Replace swaps in a spec made by internal/launch, as hot
//     reload does, but without a watcher;
//   - watch: the clock starts at the save; launch.Reload (fsnotify,
//     debounced 50 ms) notices it and does the same Replace, as
//     lambdabox serve does.
//
// Each reports ms/reload (p50) and the watch one its ratio to the floor.
// Target: watch ≤ 300 ms.
func BenchmarkHotReload(b *testing.B) {
	if _, err := exec.Command("python3", "-c", "import awslambdaric").CombinedOutput(); err != nil {
		b.Skip("needs python3 with awslambdaric (pip install awslambdaric)")
	}
	var floor float64
	for _, mode := range []string{"replace", "watch"} {
		b.Run(mode, func(b *testing.B) {
			p50 := hotReload(b, mode == "watch")
			b.ReportMetric(p50, "ms/reload")
			if mode == "replace" {
				floor = p50
			} else if floor > 0 {
				b.ReportMetric(p50/floor, "ratio_to_replace")
			}
		})
	}
}

func pyHandler(v int) []byte {
	return []byte("def handler(event, context):\n    return {\"version\": " + strconv.Itoa(v) + "}\n")
}

func hotReload(b *testing.B, watch bool) float64 {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), pyHandler(0), 0o644); err != nil {
		b.Fatal(err)
	}
	fn := template.Function{LogicalID: "Reload", CodeURI: dir, Handler: "app.handler", Runtime: "python3.12"}
	l, err := launch.New(launch.Config{BaseEnv: os.Environ(), CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := service.New(service.Config{InvokeAddr: "127.0.0.1:0", Driver: processDriver(b), Output: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	spec, err := l.Spec(ctx, fn, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Add(ctx, spec); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	<-svc.Ready()
	if watch {
		r := launch.Reload{Launcher: l, Targets: []launch.Target{{Function: fn}}, Replace: svc.Replace}
		go func() { _ = r.Run(ctx) }()
		time.Sleep(100 * time.Millisecond) // the watcher is set up
	}
	url := "http://" + svc.InvokeAddr() + "/2015-03-31/functions/Reload/invocations"
	client := &http.Client{Timeout: 30 * time.Second}
	answer := func() string {
		resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("invoke: %d %s", resp.StatusCode, body)
		}
		return string(body)
	}
	answer() // cold start
	var took []float64
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		want := fmt.Sprintf(`{"version": %d}`, i)
		var t0 time.Time
		replaced := make(chan error, 1)
		if watch {
			t0 = time.Now()
			if err := os.WriteFile(filepath.Join(dir, "app.py"), pyHandler(i), 0o644); err != nil {
				b.Fatal(err)
			}
		} else {
			if err := os.WriteFile(filepath.Join(dir, "app.py"), pyHandler(i), 0o644); err != nil {
				b.Fatal(err)
			}
			t0 = time.Now()
			go func() {
				spec, err := l.Spec(ctx, fn, nil)
				if err == nil {
					spec.InitAtStart = true
					err = svc.Replace(ctx, spec)
				}
				replaced <- err
			}()
		}
		for deadline := t0.Add(20 * time.Second); ; {
			if answer() == want {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("reload %d: the new code never answered", i)
			}
		}
		took = append(took, float64(time.Since(t0))/float64(time.Millisecond))
		if !watch {
			if err := <-replaced; err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // the old instance closes
	}
	b.StopTimer()
	sort.Float64s(took)
	return took[len(took)/2]
}

// BenchmarkManyFunctions runs `lambdabox serve` as its own process on a
// template of N functions (examples/hello-go's bootstrap, provided.al2023)
// and reports, for N = 1 (the floor) and 50: the time from starting the
// process to the first invoke's answer (first_invoke_ms, which includes
// that function's cold start), and lambdabox's own RSS right after that
// invoke (rss_first_MB) and 300 ms later, idle (rss_MB; the runtimes are
// separate processes, and the other functions have none yet). Target: 50 functions ≤ 50 MB.
func BenchmarkManyFunctions(b *testing.B) {
	bin := lambdaboxBinary(b)
	boot := helloBootstrap(b)
	var floorRSS, floorFirst float64
	for _, n := range []int{1, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			code := filepath.Join(dir, "fn")
			os.Mkdir(code, 0o755)
			src, _ := os.ReadFile(boot)
			if err := os.WriteFile(filepath.Join(code, "bootstrap"), src, 0o755); err != nil {
				b.Fatal(err)
			}
			var tpl bytes.Buffer
			tpl.WriteString("Resources:\n")
			for i := range n {
				fmt.Fprintf(&tpl, "  Fn%d:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn\n      Handler: bootstrap\n      Runtime: provided.al2023\n", i)
			}
			os.WriteFile(filepath.Join(dir, "template.yaml"), tpl.Bytes(), 0o644)
			var rssIdle, rssAfter, first []float64
			for range b.N {
				ri, ra, f := manyFunctions(b, bin, dir, n)
				rssIdle, rssAfter, first = append(rssIdle, ri), append(rssAfter, ra), append(first, f)
			}
			sort.Float64s(rssIdle)
			sort.Float64s(rssAfter)
			sort.Float64s(first)
			mid := len(first) / 2
			b.ReportMetric(rssIdle[mid], "rss_first_MB")
			b.ReportMetric(rssAfter[mid], "rss_MB")
			b.ReportMetric(first[mid], "first_invoke_ms")
			if n == 1 {
				floorRSS, floorFirst = rssAfter[mid], first[mid]
			} else if floorRSS > 0 {
				b.ReportMetric(rssAfter[mid]/floorRSS, "rss_ratio_to_1")
				b.ReportMetric(first[mid]/floorFirst, "first_ratio_to_1")
			}
		})
	}
}

// manyFunctions starts lambdabox serve in dir once and measures it.
func manyFunctions(b *testing.B, bin, dir string, n int) (rssIdle, rssAfter, firstMS float64) {
	addr := freeAddrTB(b)
	cmd := exec.Command(bin, "serve", "--addr", addr, "--api-address", freeAddrTB(b), "--log-level", "warn", "--state-dir", b.TempDir())
	cmd.Dir = dir
	stderr := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	for deadline := t0.Add(30 * time.Second); !strings.Contains(stderr.String(), "FUNCTION "); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("lambdabox serve did not start:\n%s", stderr.String())
		}
	}
	url := "http://" + addr + "/2015-03-31/functions/Fn" + strconv.Itoa(n-1) + "/invocations"
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(url, "application/json", strings.NewReader(helloPayload))
	if err != nil {
		b.Fatalf("%v\n%s", err, stderr.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := checkHello(resp, body); err != nil {
		b.Fatal(err)
	}
	firstMS = float64(time.Since(t0)) / float64(time.Millisecond)
	rssIdle = rssMB(b, cmd.Process.Pid) // one function warm, the others never started
	time.Sleep(300 * time.Millisecond)
	rssAfter = rssMB(b, cmd.Process.Pid)
	return rssIdle, rssAfter, firstMS
}

// freeAddrTB is a loopback address whose port was free a moment ago.
func freeAddrTB(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func rssMB(b *testing.B, pid int) float64 {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
