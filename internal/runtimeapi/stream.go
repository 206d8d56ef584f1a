package runtimeapi

import (
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

// Stream is a streamed response body: the bytes reach the reader as the
// runtime writes them, with nothing buffered in between. Read it to EOF
// (or Close it to discard the rest), then Wait for the outcome.
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

func newStream() *Stream {
	pr, pw := io.Pipe()
	return &Stream{pr: pr, pw: pw, done: make(chan struct{})}
}

// Read reads the next bytes the runtime wrote.
func (s *Stream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// Close tells the runtime side that nobody reads any more: the rest of the
// runtime's body is discarded, and its POST still ends cleanly.
func (s *Stream) Close() error { return s.pr.Close() }

// Done is closed when the runtime's body has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Wait waits for the end of the runtime's body and returns the error it
// reported mid-stream, if any: the error type from the trailer
// Lambda-Runtime-Function-Error-Type and the decoded error body.
func (s *Stream) Wait() (errorType string, errorBody []byte) {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errorType, s.errorBody
}

// Size is the number of bytes the runtime streamed.
func (s *Stream) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Fail records a failure the platform detected (a timeout), which wins over
// what the runtime side reports when the stream ends.
func (s *Stream) Fail(errorType string, errorBody []byte) {
	s.mu.Lock()
	s.failed, s.errorType, s.errorBody = true, errorType, errorBody
	s.mu.Unlock()
}

// finish ends the stream with its outcome.
func (s *Stream) finish(errorType string, errorBody []byte, size int64) {
	s.mu.Lock()
	if !s.failed {
		s.errorType, s.errorBody = errorType, errorBody
	}
	s.size = size
	s.mu.Unlock()
	_ = s.pw.Close()
	close(s.done)
}

// copyFrom moves the runtime's body into the stream as it arrives, up to
// MaxStreamSize. When the reader went away, the rest is drained. It returns
// the bytes read and whether the cap was hit.
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
			if shaping && n > ShapingFreeBytes {
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
