package environment

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// maxLogLine is where a long line is cut, as CloudWatch Logs does.
const maxLogLine = 256 * 1024

// tailSize is how much of an invocation's log X-Amz-Log-Result carries.
const tailSize = 4096

// logSink serialises the function's output and the platform's own lines
// (START, END, REPORT) onto one writer, and captures an invocation's lines
// when asked to.
type logSink struct {
	mu      sync.Mutex
	out     io.Writer
	capture *bytes.Buffer // non-nil while an invocation's log is captured
	pumps   []*pump       // readers of the current runtime's and extensions' output
	// publish, when set, receives each line of the runtime ("function") or
	// the extensions ("extension"), without its newline.
	publish func(kind string, line []byte)
}

// write prints a line of the platform's own (START, END, REPORT).
func (s *logSink) write(line []byte) { s.writeFrom("", line) }

func (s *logSink) writeFrom(kind string, line []byte) {
	s.mu.Lock()
	_, _ = s.out.Write(line)
	if s.capture != nil {
		s.capture.Write(line)
	}
	publish := s.publish
	s.mu.Unlock()
	if kind != "" && publish != nil {
		publish(kind, bytes.TrimSuffix(line, []byte("\n")))
	}
}

// begin starts capturing lines; end stops and returns the last tailSize
// bytes of what was captured.
func (s *logSink) begin() {
	s.mu.Lock()
	s.capture = new(bytes.Buffer)
	s.mu.Unlock()
}

func (s *logSink) end() []byte {
	s.mu.Lock()
	b := s.capture.Bytes()
	s.capture = nil
	s.mu.Unlock()
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	return b
}

// attach starts pumping r (the read end of a stdout and stderr pipe of
// the process who) into the sink, line by line, as who's kind: "function"
// for the runtime, "extension" for an extension. A new pipe of the same
// process replaces the old, and pipes whose writers have all gone are
// dropped.
func (s *logSink) attach(who sandbox.Process, r *os.File) {
	p := &pump{sink: s, who: who, kind: string(who.Kind), r: r, progress: make(chan struct{}, 1)}
	p.rc, _ = r.SyscallConn() // nil when r cannot give one: flush then does not wait
	s.mu.Lock()
	kept := s.pumps[:0]
	for _, q := range s.pumps {
		if q.who != who && !q.ended.Load() {
			kept = append(kept, q)
		}
	}
	s.pumps = append(kept, p)
	s.mu.Unlock()
	go p.run()
}

// flush waits, briefly, until every byte the runtime wrote before now has
// been written out. A runtime logs and then answers over HTTP, so this keeps
// its lines ahead of END and inside the captured log.
func (s *logSink) flush() {
	var some [4]*pump // on the stack for the usual runtime and few extensions
	s.mu.Lock()
	pumps := append(some[:0], s.pumps...)
	s.mu.Unlock()
	for _, p := range pumps {
		p.flush()
	}
}

type pump struct {
	sink      *logSink
	who       sandbox.Process
	kind      string
	ended     atomic.Bool // the pipe reached EOF and is closed
	r         *os.File
	rc        syscall.RawConn // r's, for flush's ioctl; made once
	inqMu     sync.Mutex      // guards inq and its results
	inq       func(fd uintptr)
	inqN      int
	inqErr    error
	pulled    atomic.Int64  // bytes read from the pipe
	processed atomic.Int64  // bytes read and handed on (whole lines) or held (a partial line)
	progress  chan struct{} // signalled when processed grows
}

func (p *pump) run() {
	defer p.ended.Store(true)
	defer p.r.Close()
	buf := make([]byte, 64*1024)
	var partial []byte
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			p.pulled.Add(int64(n))
			data := buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				if len(partial) > 0 {
					p.sink.writeFrom(p.kind, append(partial, data[:i+1]...))
					partial = partial[:0]
				} else {
					p.sink.writeFrom(p.kind, data[:i+1])
				}
				data = data[i+1:]
			}
			partial = append(partial, data...)
			for len(partial) >= maxLogLine {
				p.sink.writeFrom(p.kind, append(partial[:maxLogLine:maxLogLine], '\n'))
				partial = append(partial[:0], partial[maxLogLine:]...)
			}
			p.processed.Add(int64(n))
			select {
			case p.progress <- struct{}{}:
			default:
			}
		}
		if err != nil {
			if len(partial) > 0 {
				p.sink.writeFrom(p.kind, append(partial, '\n'))
			}
			return
		}
	}
}

// inPipe returns the bytes waiting in the pipe, with an ioctl through a
// function made once per pump (a closure per call is two allocations).
func (p *pump) inPipe() (int, bool) {
	if p.rc == nil {
		return 0, false
	}
	p.inqMu.Lock()
	defer p.inqMu.Unlock()
	if p.inq == nil {
		p.inq = func(fd uintptr) {
			// TIOCINQ is FIONREAD: the bytes waiting in the pipe.
			p.inqN, p.inqErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
		}
	}
	if err := p.rc.Control(p.inq); err != nil || p.inqErr != nil {
		return 0, false
	}
	return p.inqN, true
}

func (p *pump) flush() {
	// Read the count before asking the pipe: bytes the pump takes in
	// between are then counted once, in pending, and not twice.
	pulled := p.pulled.Load()
	pending, ok := p.inPipe()
	if !ok {
		return
	}
	target := pulled + int64(pending)
	if p.processed.Load() >= target {
		return
	}
	timeout := time.NewTimer(100 * time.Millisecond)
	defer timeout.Stop()
	for p.processed.Load() < target {
		select {
		case <-p.progress:
		case <-timeout.C:
			return
		}
	}
}
