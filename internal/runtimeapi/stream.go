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

// streamBuffers bounds what a stream holds between the runtime and the
// reader: a few chunks, never the response.
const (
	streamBuffers   = 4
	streamChunkSize = 256 << 10
)

// Stream is a streamed response body: the bytes reach the reader as the
// runtime writes them, through a few bounded buffers. Read it to EOF (or
// Close it to discard the rest), then Wait for the outcome.
type Stream struct {
	chunks chan []byte   // filled buffers, in order; closed at the end
	free   chan []byte   // empty buffers
	gone   chan struct{} // closed by Close: nobody reads any more
	done   chan struct{} // closed when the runtime's body has ended
	cur    []byte        // the unread rest of the chunk being read
	buf    []byte        // the buffer cur lies in

	closeOnce sync.Once
	mu        sync.Mutex
	failed    bool
	errorType string
	errorBody []byte
	size      int64
}

func newStream() *Stream {
	s := &Stream{
		chunks: make(chan []byte, streamBuffers),
		free:   make(chan []byte, streamBuffers),
		gone:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range streamBuffers {
		s.free <- make([]byte, streamChunkSize)
	}
	return s
}

// Read reads the bytes the runtime wrote, waiting for the next when none
// are there, and taking as many as are already there without waiting.
func (s *Stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.cur) == 0 {
			if !s.nextChunk(n == 0) {
				break
			}
			if len(s.cur) == 0 { // the end
				if n == 0 {
					return 0, io.EOF
				}
				break
			}
		}
		m := copy(p[n:], s.cur)
		s.cur = s.cur[m:]
		n += m
		if len(s.cur) == 0 {
			s.free <- s.buf[:cap(s.buf)]
			s.buf = nil
		}
	}
	return n, nil
}

// nextChunk moves to the next chunk, waiting for it when wait is set. It
// reports false when none is there (without waiting); at the end of the
// stream cur stays empty.
func (s *Stream) nextChunk(wait bool) bool {
	var c []byte
	var ok bool
	if wait {
		c, ok = <-s.chunks
	} else {
		select {
		case c, ok = <-s.chunks:
		default:
			return false
		}
	}
	if !ok {
		return true
	}
	s.cur, s.buf = c, c
	return true
}

// Buffered reports whether more bytes are there to read without waiting.
func (s *Stream) Buffered() bool { return len(s.cur) > 0 || len(s.chunks) > 0 }

// Close tells the runtime side that nobody reads any more: the rest of the
// runtime's body is discarded, and its POST still ends cleanly.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() { close(s.gone) })
	return nil
}

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
	close(s.chunks)
	close(s.done)
}

// copyFrom moves the runtime's body into the stream as it arrives, up to
// MaxStreamSize. When the reader went away, the rest is drained. It returns
// the bytes read and whether the cap was hit.
func (s *Stream) copyFrom(body io.Reader, shaping bool) (n int64, tooLarge bool, err error) {
	start := time.Now()
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-s.gone:
			m, err := io.Copy(io.Discard, body) // keep reading, so the runtime's POST ends cleanly
			return n + m, false, err
		}
		m, rerr := body.Read(buf)
		if n+int64(m) > MaxStreamSize {
			s.free <- buf
			_, _ = io.Copy(io.Discard, body)
			return n, true, nil
		}
		n += int64(m)
		if m > 0 {
			select {
			case s.chunks <- buf[:m]:
			case <-s.gone:
				s.free <- buf
			}
		} else {
			s.free <- buf
		}
		if shaping && n > ShapingFreeBytes {
			// Past the free allowance, hold the pace at ShapingRate.
			due := start.Add(time.Duration(float64(n-ShapingFreeBytes) / ShapingRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
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
