package function

import (
	"io"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in         string
		name, qual string
		ok         bool
	}{
		{"f", "f", "", true},
		{"f:$LATEST", "f", "$LATEST", true},
		{"f:v1", "f", "v1", true},
		{"012345678912:function:f", "f", "", true},
		{"012345678912:function:f:prod", "f", "prod", true},
		{"arn:aws:lambda:us-east-1:012345678912:function:f", "f", "", true},
		{"arn:aws:lambda:us-east-1:012345678912:function:f:7", "f", "7", true},
		{"", "", "", false},
		{"f:", "", "", false},
		{"f:$x", "", "", false},
		{"f/g", "", "", false},
		{"a:b:c", "", "", false},
		{"arn:aws:s3:us-east-1:012345678912:function:f", "", "", false},
		{"arn:aws:lambda:us-east-1:012345678912:function:f:1:2", "", "", false},
		{"012345678912:function:f:1:2", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, qual, ok := ParseName(tt.in)
			if name != tt.name || qual != tt.qual || ok != tt.ok {
				t.Errorf("ParseName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, qual, ok, tt.name, tt.qual, tt.ok)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	for _, c := range []struct{ in, region, account string }{
		{"f", "", ""},
		{"f:1", "", ""},
		{"123456789012:function:f", "", "123456789012"},
		{"arn:aws:lambda:eu-west-3:999999999999:function:f:live", "eu-west-3", "999999999999"},
	} {
		if r, a := Owner(c.in); r != c.region || a != c.account {
			t.Errorf("Owner(%q) = %q, %q; want %q, %q", c.in, r, a, c.region, c.account)
		}
	}
}

func TestValidQualifier(t *testing.T) {
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for in, want := range map[string]bool{"$LATEST": true, "prod": true, "": false, string(long): false, string(long[:128]): true, "a.b": false} {
		if got := ValidQualifier(in); got != want {
			t.Errorf("ValidQualifier(%q) = %v, want %v", in, got, want)
		}
	}
}

// fakeStream is a streamed response of fixed bytes and outcome.
type fakeStream struct {
	data       []byte
	errType    string
	closed     bool
	readOffset int
}

func (s *fakeStream) Read(p []byte) (int, error) {
	if s.readOffset >= len(s.data) {
		return 0, io.EOF
	}
	n := copy(p, s.data[s.readOffset:])
	s.readOffset += n
	return n, nil
}
func (s *fakeStream) Close() error           { s.closed = true; return nil }
func (s *fakeStream) Wait() (string, []byte) { return s.errType, ErrorBody(s.errType, "boom") }

func TestBuffered(t *testing.T) {
	tail := NewLogTail()
	tail.Set([]byte("log"))
	r := (&Result{Stream: &fakeStream{data: []byte("hi")}, ContentType: "text/plain", Log: tail}).Buffered()
	if string(r.Payload) != "hi" || r.ContentType != "text/plain" || r.Error || string(r.WaitLog()) != "log" {
		t.Errorf("buffered stream = %+v", r)
	}
	r = (&Result{Stream: &fakeStream{data: []byte("x"), errType: "Custom.Error"}}).Buffered()
	if !r.Error || r.ErrorType != "Custom.Error" {
		t.Errorf("mid-stream error = %+v", r)
	}
	st := &fakeStream{data: make([]byte, MaxResponseSize+10)}
	r = (&Result{Stream: st}).Buffered()
	if r.ErrorType != "Function.ResponseSizeTooLarge" || !st.closed {
		t.Errorf("oversized stream = %q, closed %v", r.ErrorType, st.closed)
	}
	plain := &Result{Payload: []byte("p")}
	if plain.Buffered() != plain || plain.WaitLog() != nil {
		t.Error("a result without a stream changed")
	}
}
