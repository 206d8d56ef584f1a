package httpserver

import (
	"strings"
	"testing"
)

func TestScanner(t *testing.T) {
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	long := strings.Repeat("a", 1000)
	tests := []struct {
		name   string
		stream string
		want   []bool // verdict of each head index, then one past
	}{
		{"one request", get, []bool{true, false}},
		{"pipelined", get + get, []bool{true, true, false}},
		{"bare LF lines", "GET / HTTP/1.1\nHost: x\n\n" + get, []bool{true, true, false}},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []bool{false}},
		{"TE and CL, any case", "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 0\r\n\r\n", []bool{false}},
		{"CL and TE after a chunked request",
			"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer-A: b\r\n\r\n" +
				"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get,
			[]bool{true, false, false}},
		{"CL body that looks like a head",
			"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 57\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n" + get,
			[]bool{true, true, false}},
		{"chunked body that looks like a head",
			"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nTransfer-Encoding: chunked\r\n0\r\n\r\n" + get,
			[]bool{true, true, false}},
		{"TE before HTTP/1.1", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []bool{false}},
		{"TE other than chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", []bool{false}},
		{"two TE lines", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []bool{false}},
		{"folded TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", []bool{false}},
		{"same CL twice", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\nab" + get, []bool{true, true, false}},
		{"differing CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab" + get, []bool{false, false}},
		{"signed CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab" + get, []bool{false, false}},
		{"long lines", "GET /" + long + " HTTP/1.1\r\nHost: x\r\nX-Long: " + long + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, []bool{true, true, false}},
		{"chunk line with bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + get, []bool{true, false}},
		{"chunk data without CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n" + get, []bool{true, false}},
		{"empty request line", "\r\n" + get, []bool{false, false}},
		{"other headers of the same lengths", "POST / HTTP/1.1\r\nHost: x\r\nX-Content-Lengt: 9\r\nX-Transfer-Encodi: gzip\r\nContent-Length: 2\r\n\r\nab" + get, []bool{true, true, false}},
		{"CL name without a colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length\r\n\r\n" + get, []bool{false, false}},
		{"CL name with a space", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\nContent-Length: 2\r\n\r\nab" + get, []bool{true, true, false}},
	}
	for _, tt := range tests {
		for _, split := range []string{"whole", "byte by byte"} {
			t.Run(tt.name+"/"+split, func(t *testing.T) {
				s := newScanner()
				if split == "whole" {
					s.feed([]byte(tt.stream))
				} else {
					for i := range len(tt.stream) {
						s.feed([]byte{tt.stream[i]})
					}
				}
				for i, want := range tt.want {
					if got := s.ok(i); got != want {
						t.Errorf("ok(%d) = %v, want %v", i, got, want)
					}
				}
			})
		}
	}
}
