package runtimeapi

import (
	"errors"
	"io"
	"sync"
	"time"
)

// Streaming limits: a streamed response may reach MaxStreamSize; past the
// first ShapingFreeBytes it is sent at about ShapingRate bytes a second,
// as on Lambda, unless shaping is off.
const (
	MaxStreamSize    = 200 << 20
	ShapingFreeBytes = 6 << 20
	ShapingRate      = 2 << 20
)

// Stream is a streamed response body as the environment that dispatched
// the invocation holds it: it follows the runtime's body until it ends
// (Done), and lets the platform fail it (Fail). Whoever reads the body
// gets the other side, a StreamReader, which can do neither.
type Stream struct {
	pr   *io.PipeReader
	pw   *io.PipeWriter
	done chan struct{}

	mu        sync.Mutex
	failed    bool
	errorType string
	errorBody []byte
	size      int64
}

// ErrStreamFailed is what a StreamReader reads once the platform failed
// the stream (a timeout); Wait then gives the failure.
var ErrStreamFailed = errors.New("the streamed response was cut short by the platform")

func newStream() *Stream {
	pr, pw := io.Pipe()
	return &Stream{pr: pr, pw: pw, done: make(chan struct{})}
}

// Reader returns the reader's side of the stream, for the one caller that
// answers the invocation.
func (s *Stream) Reader() *StreamReader { return &StreamReader{s: s} }

// Done is closed when the runtime's body has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Size is the number of bytes the runtime streamed; final once Done is
// closed.
func (s *Stream) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Fail records a failure the platform detected (a timeout), which wins over
// what the runtime side reports when the stream ends. The reader gets
// ErrStreamFailed, and the runtime's body is discarded from now on, so
// neither side waits for the other.
func (s *Stream) Fail(errorType string, errorBody []byte) {
	s.mu.Lock()
	s.failed, s.errorType, s.errorBody = true, errorType, errorBody
	s.mu.Unlock()
	_ = s.pw.CloseWithError(ErrStreamFailed)
}

// StreamReader is the reader's side of a Stream: the bytes reach it as the
// runtime writes them, with nothing buffered in between. Read it to EOF
// (or Close it to discard the rest), then Wait for the outcome.
type StreamReader struct {
	s *Stream
}

// Read reads the next bytes the runtime wrote.
func (r *StreamReader) Read(p []byte) (int, error) { return r.s.pr.Read(p) }

// Close tells the runtime side that nobody reads any more: the rest of the
// runtime's body is discarded, unshaped, and its POST still ends cleanly.
func (r *StreamReader) Close() error { return r.s.pr.Close() }

// Wait waits for the end of the runtime's body and returns the error it
// reported mid-stream, if any: the error type from the trailer
// Lambda-Runtime-Function-Error-Type and the decoded error body, or the
// platform's failure.
func (r *StreamReader) Wait() (errorType string, errorBody []byte) {
	s := r.s
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errorType, s.errorBody
}

// finish ends the stream with its outcome.
func (s *Stream) finish(errorType string, errorBody []byte, size int64) {
	s.mu.Lock()
	if !s.failed {
		s.errorType, s.errorBody = errorType, errorBody
	}
	s.size = size
	failed := s.failed
	s.mu.Unlock()
	if !failed { // a failed stream's reader keeps ErrStreamFailed
		_ = s.pw.Close()
	}
	close(s.done)
}

// copyFrom moves the runtime's body into the stream as it arrives, up to
// MaxStreamSize. When the reader went away (or the stream failed), the
// rest is drained at full speed: shaping only paces what a reader takes.
// It returns the bytes read and whether the cap was hit.
func (s *Stream) copyFrom(body io.Reader, shaping bool) (n int64, tooLarge bool, err error) {
	buf := make([]byte, 32<<10)
	start := time.Now()
	readerGone := false
	for {
		m, rerr := body.Read(buf)
		if m > 0 {
			if n+int64(m) > MaxStreamSize {
				_, _ = io.Copy(io.Discard, body)
				return n, true, nil
			}
			if !readerGone {
				if _, werr := s.pw.Write(buf[:m]); werr != nil {
					readerGone = true // keep reading, so the runtime's POST ends cleanly
				}
			}
			n += int64(m)
			if shaping && !readerGone && n > ShapingFreeBytes {
				// Past the free allowance, hold the pace at ShapingRate.
				due := start.Add(time.Duration(float64(n-ShapingFreeBytes) / ShapingRate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
		}
		if rerr == io.EOF {
			return n, false, nil
		}
		if rerr != nil {
			return n, false, rerr
		}
	}
}
