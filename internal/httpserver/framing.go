package httpserver

import (
	"bytes"
	"strconv"
)

// scanner follows the HTTP/1.1 requests on one connection, in the bytes
// net/http reads from it, and frames them as net/http does: a head (the
// request line and header lines up to an empty line), then a body of
// Content-Length bytes or in chunked coding. It gives each head a verdict,
// by index on the connection. It keeps no more than one bounded line.
//
// A head is bad when net/http would accept it but must not: it has both
// Content-Length and Transfer-Encoding, or Transfer-Encoding on a request
// older than HTTP/1.1 (RFC 9112 §6.1), or a folded Content-Length or
// Transfer-Encoding line. A head whose framing the scanner cannot follow
// (net/http rejects it, or would read something else) is bad too, as is
// every head after the first bad one: the scanner stops there, and the
// connection is closed when that request is answered.
type scanner struct {
	state scanState
	line  line
	heads int // heads seen whole
	bad   int // index of the first bad head; -1: none

	// The head being read.
	lines  int    // lines of the head so far
	proto  string // from the request line
	cl     []byte // Content-Length value; nil: none
	te     []byte // Transfer-Encoding value; nil: none
	nCL    int    // Content-Length lines
	nTE    int    // Transfer-Encoding lines
	last   string // "cl", "te" or "" for the last header line (for folding)
	broken bool   // the head is bad whatever its framing

	left uint64 // bytes left in the body or the chunk
}

type scanState int

const (
	inHead      scanState = iota
	inBody                // left bytes of a Content-Length body
	inChunkSize           // a chunk-size line
	inChunkData           // left bytes of a chunk
	inChunkEnd            // the CRLF after a chunk's data
	inTrailer             // trailer lines, up to an empty line
	stopped               // a bad head was seen; nothing more is followed
)

// maxChunkLine is net/http's limit on a chunk-size line.
const maxChunkLine = 4096

func newScanner() *scanner { return &scanner{bad: -1} }

// ok reports whether the head with index i (0 for the first request on
// the connection) was seen whole and is not bad.
func (s *scanner) ok(i int) bool {
	return i < s.heads && (s.bad < 0 || i < s.bad)
}

// feed follows the next bytes read from the connection.
func (s *scanner) feed(p []byte) {
	for len(p) > 0 {
		switch s.state {
		case stopped:
			return
		case inBody, inChunkData:
			n := min(uint64(len(p)), s.left)
			p, s.left = p[n:], s.left-n
			if s.left == 0 {
				if s.state == inBody {
					s.state = inHead
				} else {
					s.state = inChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				s.line.add(p)
				return
			}
			s.line.add(p[:i+1])
			p = p[i+1:]
			s.endLine()
			s.line.reset()
		}
	}
}

// endLine handles a whole line (with its LF) in the current state.
func (s *scanner) endLine() {
	switch s.state {
	case inHead:
		s.headLine()
	case inChunkSize:
		s.chunkSize()
	case inChunkEnd:
		if !s.line.is("\r\n") {
			s.stop() // net/http: malformed chunked encoding
			return
		}
		s.state = inChunkSize
	case inTrailer:
		if s.line.blank() {
			s.state = inHead
		}
	}
}

// headLine handles a line of a head: the request line, a header line or
// the empty line that ends the head.
func (s *scanner) headLine() {
	s.lines++
	if s.lines == 1 {
		if s.line.blank() {
			s.stop() // net/http: malformed HTTP request
			return
		}
		s.proto = s.line.lastToken()
		return
	}
	if s.line.blank() {
		s.endHead()
		return
	}
	if c := s.line.first(); c == ' ' || c == '\t' {
		// A folded line continues the previous header's value.
		if s.last != "" {
			s.broken = true
		}
		return
	}
	s.last = ""
	// Most header lines are neither Content-Length nor Transfer-Encoding:
	// a name of another length is passed over without trimming its value
	// or folding its case.
	if b, _ := s.line.trimmed(); !maybeFraming(b) {
		return
	}
	name, value, ok := s.line.header()
	switch {
	case !ok:
		// Too long to hold whole: harmless unless it is one we read.
		if bytes.EqualFold(name, []byte("content-length")) || bytes.EqualFold(name, []byte("transfer-encoding")) {
			s.broken = true
		}
	case bytes.EqualFold(name, []byte("content-length")):
		s.last = "cl"
		s.nCL++
		if s.nCL > 1 && !bytes.Equal(s.cl, value) {
			s.broken = true // net/http rejects differing values
		}
		s.cl = append(s.cl[:0], value...)
	case bytes.EqualFold(name, []byte("transfer-encoding")):
		s.last = "te"
		s.nTE++
		s.te = append(s.te[:0], value...)
	}
}

// maybeFraming reports whether a header line's name (before its first
// colon, or the whole line) has the length of content-length or
// transfer-encoding.
func maybeFraming(line []byte) bool {
	name, _, _ := bytes.Cut(line, []byte(":"))
	return len(name) == len("content-length") || len(name) == len("transfer-encoding")
}

// endHead gives the head its verdict and moves on to its body.
func (s *scanner) endHead() {
	i := s.heads
	s.heads++
	hasCL, hasTE := s.nCL > 0, s.nTE > 0
	bad := s.broken ||
		(hasCL && hasTE) ||
		(hasTE && s.proto != "HTTP/1.1") ||
		(hasTE && (s.nTE > 1 || !bytes.EqualFold(s.te, []byte("chunked"))))
	var n uint64
	if !bad && hasCL {
		var err error
		n, err = strconv.ParseUint(string(s.cl), 10, 63)
		bad = err != nil // ParseUint takes no sign, space or underscore
	}
	// cl and te keep their arrays for the connection's next head.
	s.lines, s.proto, s.cl, s.te, s.nCL, s.nTE, s.last, s.broken = 0, "", s.cl[:0], s.te[:0], 0, 0, "", false
	switch {
	case bad:
		s.bad = i
		s.state = stopped
	case hasTE:
		s.state = inChunkSize
	case n > 0:
		s.state, s.left = inBody, n
	}
}

// chunkSize handles a chunk-size line as net/http does: it ends in CRLF
// with no other CR, and holds hex digits, optional whitespace and an
// optional extension after ';'.
func (s *scanner) chunkSize() {
	b, ok := s.line.whole()
	if !ok || s.line.n >= maxChunkLine || !bytes.HasSuffix(b, []byte("\r\n")) || bytes.IndexByte(b, '\r') != len(b)-2 {
		s.stop()
		return
	}
	b = bytes.TrimRight(b[:len(b)-2], " \t")
	b, _, _ = bytes.Cut(b, []byte(";"))
	if len(b) == 0 || len(b) > 16 {
		s.stop()
		return
	}
	n, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		s.stop()
		return
	}
	if n == 0 {
		s.state = inTrailer
		return
	}
	s.state, s.left = inChunkData, n
}

// stop gives up following the connection: net/http fails here too, or
// reads something the scanner cannot follow. The next head, if net/http
// ever reads one, is bad.
func (s *scanner) stop() {
	s.bad = s.heads
	s.state = stopped
}

// line is the line being read. It keeps the first maxKept bytes and the
// last len(tail) bytes, which is all the scanner reads of a line.
type line struct {
	kept []byte
	tail [16]byte
	n    int // length of the whole line
}

const maxKept = 256

func (l *line) add(p []byte) {
	if room := maxKept - len(l.kept); room > 0 {
		l.kept = append(l.kept, p[:min(room, len(p))]...)
	}
	if len(p) >= len(l.tail) {
		copy(l.tail[:], p[len(p)-len(l.tail):])
	} else {
		copy(l.tail[:], l.tail[len(p):])
		copy(l.tail[len(l.tail)-len(p):], p)
	}
	l.n += len(p)
}

func (l *line) reset() { l.kept, l.n = l.kept[:0], 0 }

// whole returns the line when it was kept whole.
func (l *line) whole() ([]byte, bool) { return l.kept, l.n == len(l.kept) }

// trimmed is the line without its line ending (LF or CRLF), when whole.
func (l *line) trimmed() ([]byte, bool) {
	b, ok := l.whole()
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, ok
}

func (l *line) is(s string) bool {
	b, ok := l.whole()
	return ok && string(b) == s
}

// blank reports whether the line is empty but for its line ending.
func (l *line) blank() bool { return l.is("\n") || l.is("\r\n") }

func (l *line) first() byte { return l.kept[0] }

// lastToken is the line's last space-separated token (a request line's
// protocol version), when it fits in the tail.
func (l *line) lastToken() string {
	k := min(l.n, len(l.tail))
	b := l.tail[len(l.tail)-k:]
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	i := bytes.LastIndexByte(b, ' ')
	if i < 0 {
		return ""
	}
	if t := b[i+1:]; string(t) == "HTTP/1.1" {
		return "HTTP/1.1" // nearly every request's: no copy
	}
	return string(b[i+1:])
}

// header splits a header line into its name and its value without
// surrounding whitespace; ok is false when the line was too long to keep
// whole (name is then what was kept before a colon, if any).
func (l *line) header() (name, value []byte, ok bool) {
	b, ok := l.trimmed()
	name, value, _ = bytes.Cut(b, []byte(":"))
	return name, bytes.Trim(value, " \t"), ok
}
