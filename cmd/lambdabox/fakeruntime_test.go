package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runFakeRuntime is a deliberately misbehaving runtime, for the cases no
// real Runtime Interface Client produces. It prints what the Runtime API
// answered as "FAKE ..." lines, which the test reads from lambdabox's output.
func runFakeRuntime(mode string) {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	post := func(path, body string) (int, string) {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println("FAKE post error:", err)
			os.Exit(2)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if mode == "setsidchild" {
		// A daemon-like child of the "setsid" runtime: its own session,
		// the runtime's output, and a long sleep.
		_, _ = syscall.Setsid()
		fmt.Println("FAKE setsid child", os.Getpid())
		time.Sleep(time.Hour)
		return
	}
	if mode == "hanginit" {
		// Hang in Init on the first two starts (the init and its retry),
		// counted in $HANG_COUNTER; answer normally from the third on.
		counter := os.Getenv("HANG_COUNTER")
		b, _ := os.ReadFile(counter)
		_ = os.WriteFile(counter, append(b, 'x'), 0o644)
		if len(b) < 2 {
			select {}
		}
		mode = "echo"
	}
	for {
		resp, err := http.Get(base + "/invocation/next")
		if err != nil {
			os.Exit(2)
		}
		payload, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		switch mode {
		case "badid":
			st, body := post("/invocation/not-"+id+"/response", `"wrong"`)
			fmt.Printf("FAKE badid status=%d body=%s\n", st, body)
			post("/invocation/"+id+"/response", `"right"`)
		case "twice":
			st1, _ := post("/invocation/"+id+"/response", `"first"`)
			st2, body := post("/invocation/"+id+"/response", `"second"`)
			fmt.Printf("FAKE twice first=%d second=%d body=%s\n", st1, st2, body)
		case "badtype":
			req, _ := http.NewRequest(http.MethodPost, base+"/invocation/"+id+"/error", strings.NewReader(`{"errorMessage":"m","errorType":"x"}`))
			req.Header.Set("Lambda-Runtime-Function-Error-Type", "not a type")
			r, err := http.DefaultClient.Do(req)
			if err == nil {
				fmt.Printf("FAKE badtype status=%d\n", r.StatusCode)
				r.Body.Close()
			}
		case "nextagain":
			// next without answering the invocation in flight
			r, err := http.Get(base + "/invocation/next")
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				fmt.Printf("FAKE nextagain status=%d body=%s\n", r.StatusCode, b)
			}
			post("/invocation/"+id+"/response", `"ok"`)
		case "badprelude":
			// An HTTP-integration stream whose prelude lacks the 8 NULs.
			req, _ := http.NewRequest(http.MethodPost, base+"/invocation/"+id+"/response", strings.NewReader(`{"statusCode":200} and no separator`))
			req.Header.Set("Content-Type", "application/vnd.awslambda.http-integration-response")
			req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
			if r, err := http.DefaultClient.Do(req); err == nil {
				r.Body.Close()
			}
		case "setsid":
			// Start a child in a session of its own, then answer, or hang
			// past the timeout when asked to.
			startSetsidChild()
			if string(payload) == `"hang"` {
				select {}
			}
			post("/invocation/"+id+"/response", `"ok"`)
		case "streamslow":
			// A streamed answer (as Node's streamifyResponse gives) that
			// starts, then stalls past the function's timeout.
			pr, pw := io.Pipe()
			go postStream(base+"/invocation/"+id+"/response", pr)
			_, _ = pw.Write([]byte(`{"partial":`))
			select {}
		case "stream20m":
			// A streamed answer of 20 MiB, far over the buffered limit.
			pr, pw := io.Pipe()
			go func() {
				chunk := make([]byte, 64<<10)
				for range 20 << 20 / len(chunk) {
					if _, err := pw.Write(chunk); err != nil {
						break
					}
				}
				pw.Close()
			}()
			postStream(base+"/invocation/"+id+"/response", pr)
		case "alloc":
			// "slow" and "crash" first allocate and touch 50 MiB, then
			// outlive the timeout or exit; anything else is answered.
			if p := string(payload); p == `"slow"` || p == `"crash"` {
				b := make([]byte, 50<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1
				}
				if p == `"crash"` {
					os.Exit(1)
				}
				time.Sleep(time.Hour)
				runtime.KeepAlive(b)
			}
			post("/invocation/"+id+"/response", `"ok"`)
		case "tenant":
			// Answer with this runtime's pid and the tenant it was given.
			tenant := resp.Header.Get("Lambda-Runtime-Aws-Tenant-Id")
			fmt.Printf("FAKE tenant pid=%d tenant=%s\n", os.Getpid(), tenant)
			post("/invocation/"+id+"/response", fmt.Sprintf(`{"pid":%d,"tenant":%q}`, os.Getpid(), tenant))
		case "oom":
			// "big" allocates and touches 400 MiB, far past a 128 MB
			// memory size; anything else is answered.
			if string(payload) == `"big"` {
				b := make([]byte, 400<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1
				}
				runtime.KeepAlive(b)
			}
			post("/invocation/"+id+"/response", `"ok"`)
		case "echo":
			post("/invocation/"+id+"/response", `"ok"`)
		case "slow":
			// Busy for the longest function timeout: only a shutdown
			// ends it.
			time.Sleep(300 * time.Second)
			post("/invocation/"+id+"/response", `"slow"`)
		default:
			fmt.Println("FAKE unknown mode", mode)
			os.Exit(2)
		}
	}
}

// startSetsidChild starts this binary again as a "setsidchild".
func startSetsidChild() {
	env := []string{"LAMBDABOX_TEST_RUNTIME=setsidchild"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LAMBDABOX_TEST_RUNTIME=") {
			env = append(env, kv)
		}
	}
	p, err := os.StartProcess(os.Args[0], os.Args[:1], &os.ProcAttr{Env: env, Files: []*os.File{nil, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Println("FAKE setsid error:", err)
		os.Exit(2)
	}
	_ = p.Release()
}

// postStream posts body as a streamed response.
func postStream(url string, body io.Reader) {
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Header.Set("Content-Type", "application/json")
	if r, err := http.DefaultClient.Do(req); err == nil {
		r.Body.Close()
	}
}

// fakeRIE starts lambdabox rie on this test binary as a fake runtime in
// mode (see runFakeRuntime).
func fakeRIE(t *testing.T, mode string, flags ...string) *emulator {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startRIE(t, rieOpts{flags: flags, command: []string{self}, env: []string{"LAMBDABOX_TEST_RUNTIME=" + mode}})
}
