package httpserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start serves h with cfg on a loopback port until the test ends.
func start(t *testing.T, cfg Config) string {
	t.Helper()
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dial opens a raw connection that the test closes at its end.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c within 10 s, reading
// (and discarding) whatever it sends first.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// echo answers with the request body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = w.Write(b)
})

func TestContentLengthWithTransferEncoding(t *testing.T) {
	tests := []struct {
		name    string
		request string
		served  int32 // requests that reach the handler
	}{
		{"alone, body pending", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0},
		{"smuggling a request", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 0},
		{"after a good request", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok" +
			"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served atomic.Int32
			addr := start(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				echo.ServeHTTP(w, r)
			})})
			c := dial(t, addr)
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			var last *http.Response
			for range tt.served + 1 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("reading a response: %v", err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				last = resp
			}
			if last.StatusCode != http.StatusBadRequest || !last.Close {
				t.Errorf("last response: %d, Connection: close %v; want 400 and close", last.StatusCode, last.Close)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Errorf("connection after the 400: %v, want EOF", err)
			}
			if got := served.Load(); got != tt.served {
				t.Errorf("handler served %d requests, want %d", got, tt.served)
			}
		})
	}
}

func TestBodyReadTimeout(t *testing.T) {
	handlerErr := make(chan error, 1)
	addr := start(t, Config{BodyReadTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		handlerErr <- err
		w.WriteHeader(http.StatusRequestTimeout)
	})})
	c := dial(t, addr)
	// Two bytes of ten, then nothing.
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-handlerErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("reading the body: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the body read was not cut")
	}
	if !closedByServer(c) {
		t.Error("the connection stays open after a timed-out body")
	}
}

// TestBodyReadTimeoutSparesHandler checks that the body deadline ends with
// the body: a handler that runs past it keeps its context, and the
// connection serves the next request.
func TestBodyReadTimeoutSparesHandler(t *testing.T) {
	const timeout = 100 * time.Millisecond
	addr := start(t, Config{BodyReadTimeout: timeout, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(4 * timeout):
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	})})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i, body := range []string{"one", "", "three"} {
		resp, err := client.Post("http://"+addr, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != body {
			t.Errorf("request %d: %d %q, want 200 %q", i, resp.StatusCode, b, body)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	addr := start(t, Config{IdleTimeout: 200 * time.Millisecond, Handler: echo})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server closed a keep-alive connection at once")
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want EOF (closed by the server)", err)
	}
}

// TestEvictsOldestWaiting fills the cap with connections that sent no
// request or went idle, and checks a new client is served and that the
// oldest waiting connection made room.
func TestEvictsOldestWaiting(t *testing.T) {
	const max = 4
	addr := start(t, Config{MaxConns: max, Handler: echo})
	var conns []net.Conn
	for i := range max {
		c := dial(t, addr)
		if i%2 == 1 {
			// Idle after one request.
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		conns = append(conns, c)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+addr, "text/plain", strings.NewReader("new"))
	if err != nil {
		t.Fatalf("a new client at the cap: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "new" {
		t.Errorf("new client got %q", b)
	}
	if !closedByServer(conns[0]) {
		t.Error("the oldest waiting connection was not closed")
	}
	for i, c := range conns[1:] {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection %d: %v, want still open", i+1, err)
		}
	}
}

// TestBusyConnectionsAreKept fills the cap with requests in progress: none
// is cut, and a new client is served once one ends.
func TestBusyConnectionsAreKept(t *testing.T) {
	const max = 2
	release := make(chan struct{})
	var started atomic.Int32
	addr := start(t, Config{MaxConns: max, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Add(1)
			<-release
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	type result struct {
		body string
		err  error
	}
	get := func(path string, out chan<- result) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			out <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- result{string(b), err}
	}
	slow := make(chan result, max)
	for range max {
		go get("/slow", slow)
	}
	for deadline := time.Now().Add(10 * time.Second); started.Load() < max; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("slow requests did not start")
		}
	}
	fast := make(chan result, 1)
	go get("/fast", fast)
	select {
	case r := <-fast:
		t.Fatalf("a request past the cap was served while every connection was busy: %v %q", r.err, r.body)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	for range max {
		if r := <-slow; r.err != nil || r.body != "/slow" {
			t.Errorf("slow request: %+v", r)
		}
	}
	if r := <-fast; r.err != nil || r.body != "/fast" {
		t.Errorf("request past the cap: %+v", r)
	}
}

func TestOptionsStar(t *testing.T) {
	addr := start(t, Config{Handler: echo})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("response %d: %d", i, resp.StatusCode)
		}
	}
}

func TestConnShare(t *testing.T) {
	one, two := ConnShare(1), ConnShare(2)
	if one < minConns || one > maxConns || two > one {
		t.Errorf("ConnShare(1) = %d, ConnShare(2) = %d", one, two)
	}
}

// TestHeaderTooLarge checks net/http still answers 431 to a head over its
// limit, rather than resetting the connection under the client's feet.
func TestHeaderTooLarge(t *testing.T) {
	addr := start(t, Config{Handler: echo})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i, huge := range []bool{false, true, false} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusOK
		if huge {
			req.Header.Set("X-Huge", strings.Repeat("h", 2<<20))
			want = http.StatusRequestHeaderFieldsTooLarge
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}

// Every answer has a Date header of the current second, in HTTP's format,
// as net/http's own.
func TestDate(t *testing.T) {
	addr := start(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})})
	for range 3 {
		before := time.Now().Truncate(time.Second)
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		after := time.Now()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil || len(resp.Header["Date"]) != 1 || d.Before(before) || d.After(after) {
			t.Errorf("Date %q (%v), want one value between %v and %v", resp.Header["Date"], err, before, after)
		}
	}
}

func TestDateCache(t *testing.T) {
	var c dateCache
	t0 := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	for _, c2 := range []struct {
		at   time.Time
		want string
	}{
		{t0, "Wed, 02 Dec 2026 03:04:05 GMT"},
		{t0.Add(999 * time.Millisecond), "Wed, 02 Dec 2026 03:04:05 GMT"},
		{t0.Add(time.Second), "Wed, 02 Dec 2026 03:04:06 GMT"},
		{t0.In(time.FixedZone("x", 3600)).Add(2 * time.Second), "Wed, 02 Dec 2026 03:04:07 GMT"},
	} {
		if got := c.get(c2.at); len(got) != 1 || got[0] != c2.want {
			t.Errorf("get(%v) = %q, want %q", c2.at, got, c2.want)
		}
	}
}

// Once Drain returns, the server takes no new connection and has closed
// its idle ones, while a request in flight still gets its answer.
func TestDrain(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := New(Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	idle := dial(t, addr)
	if _, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	slow := dial(t, addr)
	if _, err := io.WriteString(slow, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	done := s.Drain(t.Context())
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Drain returned")
	}
	_ = idle.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection after Drain: %v, want EOF", err)
	}
	close(release)
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("the request in flight: %q (close %v), want its answer and the connection's end", b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Drain's Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
