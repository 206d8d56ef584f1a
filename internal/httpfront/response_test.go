package httpfront

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestResponseV2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		status  int
		header  http.Header // checked for these keys only
		body    string
	}{
		{"object with statusCode", `{"statusCode":201,"headers":{"X-A":"1","content-type":"text/plain"},"body":"made"}`,
			201, http.Header{"X-A": {"1"}, "Content-Type": {"text/plain"}}, "made"},
		{"cookies", `{"statusCode":200,"cookies":["a=1; Path=/","b=2; Max-Age=60"],"body":""}`,
			200, http.Header{"Set-Cookie": {"a=1; Path=/", "b=2; Max-Age=60"}, "Content-Type": {"application/json"}}, ""},
		{"base64 body", `{"statusCode":200,"headers":{"content-type":"image/png"},"body":"AAECAw==","isBase64Encoded":true}`,
			200, http.Header{"Content-Type": {"image/png"}}, "\x00\x01\x02\x03"},
		{"no body", `{"statusCode":204}`, 204, nil, ""},
		{"string", `"Hello, world!"`, 200, http.Header{"Content-Type": {"application/json"}}, `"Hello, world!"`},
		{"object without statusCode", `{"message":"hi"}`, 200, http.Header{"Content-Type": {"application/json"}}, `{"message":"hi"}`},
		{"array", `[1,2]`, 200, nil, `[1,2]`},
		{"number", `42`, 200, nil, `42`},
		{"null", `null`, 200, nil, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ResponseV2([]byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			checkResponse(t, r, tc.status, tc.header, tc.body)
		})
	}
	for _, bad := range []string{
		``, `not json`, `{"statusCode":"200"}`, `{"statusCode":200,"body":"!!","isBase64Encoded":true}`,
		`{"statusCode":42}`, `{"statusCode":200.5}`, `{"statusCode":null}`, `{"statusCode":200,"headers":{"X-N":5}}`,
	} {
		if _, err := ResponseV2([]byte(bad)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("ResponseV2(%q): err = %v, want ErrMalformedResponse", bad, err)
		}
	}
}

func TestResponseV1(t *testing.T) {
	r, err := ResponseV1([]byte(`{"statusCode":302,
		"headers":{"Location":"/next","X-Both":"a"},
		"multiValueHeaders":{"Set-Cookie":["a=1","b=2"],"X-Both":["a","b"]},
		"body":"bW92ZWQ=","isBase64Encoded":true}`))
	if err != nil {
		t.Fatal(err)
	}
	checkResponse(t, r, 302, http.Header{
		"Location":     {"/next"},
		"Set-Cookie":   {"a=1", "b=2"},
		"X-Both":       {"a", "b"}, // the pair given in both appears once
		"Content-Type": {"application/json"},
	}, "moved")

	r, err = ResponseV1([]byte(`{"statusCode":200,"headers":{"X-Both":"c"},"multiValueHeaders":{"X-Both":["a"]},"body":"ok"}`))
	if err != nil {
		t.Fatal(err)
	}
	checkResponse(t, r, 200, http.Header{"X-Both": {"a", "c"}}, "ok")

	for _, bad := range []string{`"hello"`, `{"body":"no status"}`, `not json`, `{"statusCode":"200"}`, `[]`} {
		if _, err := ResponseV1([]byte(bad)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("ResponseV1(%q): err = %v, want ErrMalformedResponse", bad, err)
		}
	}
}

func checkResponse(t *testing.T, r *Response, status int, header http.Header, body string) {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("status %d, want %d", r.StatusCode, status)
	}
	for k, want := range header {
		if got := r.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if string(r.Body) != body {
		t.Errorf("body %q, want %q", r.Body, body)
	}
}

func TestReadPrelude(t *testing.T) {
	nuls := "\x00\x00\x00\x00\x00\x00\x00\x00"
	p, body, err := ReadPrelude(strings.NewReader(`{"statusCode":201,"headers":{"Content-Type":"text/plain"},"cookies":["a=1"]}` + nuls + "hello\x00world"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	if p.StatusCode != 201 || string(b) != "hello\x00world" {
		t.Errorf("prelude %+v body %q", p, b)
	}
	h := p.Header()
	if h.Get("Content-Type") != "text/plain" || h.Get("Set-Cookie") != "a=1" {
		t.Errorf("header %v", h)
	}

	// A prelude arriving one byte at a time, and an empty one.
	p, body, err = ReadPrelude(iotest.OneByteReader(strings.NewReader(`{}` + nuls)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(body); p.StatusCode != 200 || len(b) != 0 {
		t.Errorf("prelude %+v body %q", p, b)
	}

	for name, bad := range map[string]string{
		"no NULs":       `{"statusCode":200}hello`,
		"3 NULs":        `{"statusCode":200}` + "\x00\x00\x00hello",
		"7 NULs at end": `{"statusCode":200}` + nuls[:7],
		"empty":         ``,
		"not JSON":      `hello` + nuls + "body",
		"bad status":    `{"statusCode":1000}` + nuls,
		"huge":          strings.Repeat(" ", maxPrelude+10) + `{}` + nuls,
	} {
		if _, _, err := ReadPrelude(strings.NewReader(bad)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("%s: err = %v, want ErrMalformedResponse", name, err)
		}
	}
}

// flushRecorder counts flushes and remembers the body written before each.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushed []string
}

func (f *flushRecorder) Flush() {
	f.flushed = append(f.flushed, f.Body.String())
	f.ResponseRecorder.Flush()
}

// chunks is a reader that returns its parts one per Read.
type chunks []string

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	(*c)[0] = (*c)[0][n:]
	if (*c)[0] == "" {
		*c = (*c)[1:]
	}
	return n, nil
}

func TestWriteStream(t *testing.T) {
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	src := chunks{`{"statusCode":202,"headers":{"X-A":"1"}}`, "\x00\x00\x00\x00\x00\x00\x00\x00", "one,", "two,", "three"}
	if err := WriteStream(w, &src); err != nil {
		t.Fatal(err)
	}
	if w.Code != 202 || w.Header().Get("X-A") != "1" || w.Body.String() != "one,two,three" {
		t.Errorf("%d %v %q", w.Code, w.Header(), w.Body)
	}
	// Headers are flushed before the body, then each chunk as it comes.
	if want := []string{"", "one,", "one,two,", "one,two,three"}; !slices.Equal(w.flushed, want) {
		t.Errorf("flushed %q, want %q", w.flushed, want)
	}

	w = &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	if err := WriteStream(w, strings.NewReader(`{"statusCode":200}body`)); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("err = %v, want ErrMalformedResponse", err)
	}
	if len(w.flushed) != 0 || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Error("a malformed prelude wrote a response")
	}
}

// FuzzReadPrelude checks that no stream makes ReadPrelude panic and that a
// stream it accepts keeps its body.
func FuzzReadPrelude(f *testing.F) {
	f.Add([]byte(`{"statusCode":200}` + "\x00\x00\x00\x00\x00\x00\x00\x00body"))
	f.Add([]byte(`{"statusCode":200}body`))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, body, err := ReadPrelude(bytes.NewReader(b))
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(body)
		if !bytes.HasSuffix(b, rest) {
			t.Errorf("body %q is not the end of %q", rest, b)
		}
	})
}
