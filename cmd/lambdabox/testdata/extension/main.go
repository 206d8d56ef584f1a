// Command extension is an external Lambda extension for the tests, written
// to the Extensions and Telemetry API specifications with the standard
// library. It registers for INVOKE and SHUTDOWN, subscribes to platform and
// function telemetry over HTTP at sandbox.localdomain, and appends what it
// receives to the file named by $EXT_RECORD, one JSON object a line:
// {"kind":"register"|"event"|"telemetry", ...}.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

var (
	mu     sync.Mutex
	record *os.File
)

func write(v map[string]any) {
	b, _ := json.Marshal(v)
	mu.Lock()
	defer mu.Unlock()
	_, _ = record.Write(append(b, '\n'))
}

func main() {
	var err error
	record, err = os.OpenFile(os.Getenv("EXT_RECORD"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Println("extension: no record file:", err)
		os.Exit(1)
	}
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API")
	name := filepath.Base(os.Args[0])

	req, _ := http.NewRequest(http.MethodPost, base+"/2020-01-01/extension/register", bytes.NewReader([]byte(`{"events":["INVOKE","SHUTDOWN"]}`)))
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Println("extension: register failed:", err, resp)
		os.Exit(1)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	var info map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	write(map[string]any{"kind": "register", "info": info})

	// The telemetry listener, on the loopback; lambdabox reaches it as
	// sandbox.localdomain.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var batch []map[string]any
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &batch); err != nil {
				write(map[string]any{"kind": "telemetry-error", "body": string(b)})
			}
			for _, ev := range batch {
				write(map[string]any{"kind": "telemetry", "type": ev["type"], "record": ev["record"]})
			}
		}))
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	sub := `{"schemaVersion":"2022-12-13","types":["platform","function"],` +
		`"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},` +
		`"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:` + port + `/telemetry"}}`
	req, _ = http.NewRequest(http.MethodPut, base+"/2022-07-01/telemetry", bytes.NewReader([]byte(sub)))
	req.Header.Set("Lambda-Extension-Identifier", id)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Println("extension: telemetry subscription failed:", err, resp)
		os.Exit(1)
	}
	resp.Body.Close()
	fmt.Println("extension", name, "ready")

	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/2020-01-01/extension/event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			os.Exit(1)
		}
		var ev map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		write(map[string]any{"kind": "event", "event": ev})
		if ev["eventType"] == "SHUTDOWN" {
			os.Exit(0)
		}
	}
}
