package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func newHub() (*Hub, *httptest.Server) {
	h := NewHub(func(id string) (string, bool) { return "ext-" + id, id != "" && id != "unknown" }, nil)
	return h, httptest.NewServer(h)
}

func subscribe(t *testing.T, url, id, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url+"/2022-07-01/telemetry", strings.NewReader(body))
	req.Header.Set("Lambda-Extension-Identifier", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestValidation(t *testing.T) {
	h, ts := newHub()
	defer ts.Close()
	defer h.Reset(context.Background())
	dest := `"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/x"}`
	for name, c := range map[string]struct {
		id, body string
		status   int
		errType  string
	}{
		"ok":             {"a", `{"schemaVersion":"2022-12-13","types":["platform"],` + dest + `}`, 200, ""},
		"unknown ext":    {"unknown", `{"types":["platform"],` + dest + `}`, 403, "Extension.UnknownExtensionIdentifier"},
		"items too few":  {"a", `{"types":["platform"],"buffering":{"maxItems":999},` + dest + `}`, 400, "ValidationError"},
		"bytes too many": {"a", `{"types":["platform"],"buffering":{"maxBytes":1048577},` + dest + `}`, 400, "ValidationError"},
		"timeout low":    {"a", `{"types":["platform"],"buffering":{"timeoutMs":24},` + dest + `}`, 400, "ValidationError"},
		"bad type":       {"a", `{"types":["platfrom"],` + dest + `}`, 400, "ValidationError"},
		"no destination": {"a", `{"types":["platform"]}`, 400, "ValidationError"},
		"bad protocol":   {"a", `{"types":["platform"],"destination":{"protocol":"UDP","port":9}}`, 400, "ValidationError"},
		"bad json":       {"a", `{`, 400, "ValidationError"},
	} {
		st, body := subscribe(t, ts.URL, c.id, c.body)
		if st != c.status || (c.errType != "" && !strings.Contains(body, c.errType)) {
			t.Errorf("%s: %d %s", name, st, body)
		}
	}
}

func TestHTTPDeliveryBatchesBySandboxName(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	batches := 0
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []Event
		_ = json.NewDecoder(r.Body).Decode(&batch)
		mu.Lock()
		got = append(got, batch...)
		batches++
		mu.Unlock()
	}))
	defer dest.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(dest.URL, "http://"))
	h, ts := newHub()
	defer ts.Close()
	st, body := subscribe(t, ts.URL, "a", `{"types":["platform","function"],"buffering":{"timeoutMs":50},`+
		`"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:`+port+`/t"}}`)
	if st != 200 {
		t.Fatalf("subscribe: %d %s", st, body)
	}
	h.Publish("platform.start", map[string]string{"requestId": "r1"})
	for i := range 10 {
		h.Publish("function", "line "+strconv.Itoa(i))
	}
	h.Publish("extension", "not subscribed")
	h.Flush(context.Background())
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	types := map[string]int{}
	for _, ev := range got {
		types[ev.Type]++
	}
	if types["platform.start"] != 1 || types["function"] != 10 || types["extension"] != 0 {
		t.Errorf("delivered %v", types)
	}
	if batches > 3 {
		t.Errorf("%d batches for 11 events within one timeout", batches)
	}
	h.Reset(context.Background())
}

func TestTCPDeliveryAndDrops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan Event, 100000)
	startReading := make(chan struct{}) // the subscriber reads nothing until then
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-startReading
		sc := bufio.NewScanner(c)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				lines <- ev
			}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	h, ts := newHub()
	defer ts.Close()
	if st, body := subscribe(t, ts.URL, "a", `{"types":["function"],"buffering":{"maxItems":1000,"timeoutMs":25},"destination":{"protocol":"TCP","port":`+strconv.Itoa(port)+`}}`); st != 200 {
		t.Fatalf("subscribe: %d %s", st, body)
	}
	// 30 MB to a subscriber that reads nothing: more than the socket and
	// the queue hold, so some lines are dropped and reported.
	line := strings.Repeat("x", 1000)
	for i := range 30000 {
		h.Publish("function", strconv.Itoa(i)+line)
	}
	close(startReading)
	deadline := time.After(10 * time.Second)
	n, dropped := 0, false
	for !dropped {
		select {
		case ev := <-lines:
			n++
			if ev.Type == "platform.logsDropped" {
				dropped = true
			}
		case <-deadline:
			t.Fatalf("no platform.logsDropped after %d events", n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Reset(ctx)
}

// TestPublishWhileDelivering publishes from several goroutines while the
// subscriber delivers; under -race it caught add reading the queue after
// unlocking it while take replaced it.
func TestPublishWhileDelivering(t *testing.T) {
	var mu sync.Mutex
	delivered := 0
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []Event
		_ = json.NewDecoder(r.Body).Decode(&batch)
		mu.Lock()
		delivered += len(batch)
		mu.Unlock()
	}))
	defer dest.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(dest.URL, "http://"))
	h, ts := newHub()
	defer ts.Close()
	if st, body := subscribe(t, ts.URL, "a", `{"types":["function"],"buffering":{"timeoutMs":25,"maxItems":1000},`+
		`"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:`+port+`/t"}}`); st != 200 {
		t.Fatalf("subscribe: %d %s", st, body)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				h.Publish("function", "g"+strconv.Itoa(g)+" line "+strconv.Itoa(i))
			}
		}()
	}
	wg.Wait()
	h.Flush(context.Background())
	h.Reset(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if delivered != 2000 {
		t.Errorf("delivered %d of 2000 records", delivered)
	}
}
