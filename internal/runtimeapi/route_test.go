package runtimeapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// next and response skip the mux when their path is exactly one of its
// patterns. Every other path, escaped, unclean or another method, must be
// answered as the mux alone answers it: the same status and body, and the
// same invocation answered.
func TestFastRoutesAnswerAsTheMux(t *testing.T) {
	const base = "/2018-06-01/runtime/invocation/"
	for _, c := range []struct{ method, path string }{
		{"GET", base + "next"},
		{"HEAD", base + "next"},
		{"POST", base + "next"},
		{"GET", base + "next/"},
		{"GET", "/2018-06-01/runtime//invocation/next"},
		{"POST", base + "req-1/response"},
		{"POST", base + "req%2D1/response"},
		{"POST", base + "req%2F1/response"},
		{"POST", base + "other/response"},
		{"POST", base + "/response"},
		{"POST", base + "./response"},
		{"POST", base + "../response"},
		{"POST", base + "a/b/response"},
		{"POST", base + "req-1/response/"},
		{"POST", base + "req-1//response"},
		{"PUT", base + "req-1/response"},
		{"GET", base + "req-1/response"},
		{"POST", base + "req-1/error"},
		{"POST", "/2018-06-01/runtime/invocation/response"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var got [2]string
			for i, viaMux := range []bool{false, true} {
				s := NewServer(nil, false)
				var h http.Handler = s
				if viaMux {
					h = s.mux
				}
				ts := httptest.NewServer(h)
				s.Reset()
				answer := s.Dispatch(&Invocation{ID: "req-1", Payload: []byte(`{}`), Deadline: time.Now().Add(time.Minute)})
				if !strings.HasSuffix(c.path, "next") && !strings.HasSuffix(c.path, "next/") {
					resp, err := http.Get(ts.URL + base + "next")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
				}
				got[i] = rawRequest(t, ts.Listener.Addr().String(), c.method, c.path)
				select {
				case r := <-answer:
					got[i] += " answered: " + string(r.Payload)
				default:
				}
				ts.Close()
			}
			if got[0] != got[1] {
				t.Errorf("fast route answered\n%s\nthe mux answered\n%s", got[0], got[1])
			}
		})
	}
}

// rawRequest sends one request with the path as given (no client-side
// cleaning) and returns the status line and body, within a second.
func rawRequest(t *testing.T, addr, method, path string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	body := `{"ok":true}`
	if method == "GET" || method == "HEAD" {
		body = ""
	}
	_, _ = c.Write([]byte(method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return "error: " + err.Error() // next waiting for an invocation: the deadline
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.Status + " " + resp.Header.Get("Location") + " " + b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// header looks names up as given: each must be canonical, as net/http
// stores a request's header and trailer names.
func TestHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{HeaderInvocationID, HeaderResponseMode, HeaderErrorType, "Content-Type"} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
}

// readLimited returns what was sent, whatever its size around its first
// buffer's, however the body arrives, and reports a body cut short.
func TestReadLimited(t *testing.T) {
	s := NewServer(nil, false)
	for _, n := range []int{0, 1, smallBody - 1, smallBody, smallBody + 1, 5000} {
		want := strings.Repeat("x", n)
		for _, r := range []io.Reader{strings.NewReader(want), iotest.OneByteReader(strings.NewReader(want)), iotest.DataErrReader(strings.NewReader(want))} {
			b, size, err := s.readLimited(r)
			if err != nil || string(b) != want || size != int64(n) || b == nil {
				t.Errorf("%d bytes: got %d bytes (%d), %v", n, len(b), size, err)
			}
		}
		b, _, err := s.readLimited(io.MultiReader(strings.NewReader(want), iotest.ErrReader(io.ErrUnexpectedEOF)))
		if !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != want {
			t.Errorf("%d bytes cut short: got %d bytes, %v", n, len(b), err)
		}
	}
}
