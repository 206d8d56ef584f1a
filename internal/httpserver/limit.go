package httpserver

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// Bounds of ConnShare.
const (
	minConns = 8
	maxConns = 16384
)

// ConnShare is a connection cap for each of n servers that share the
// process's open files, so that together they stay below its limit (the
// soft RLIMIT_NOFILE): what is left after a reserve of 32 files plus an
// eighth of the limit (for listeners, runtimes' pipes, files and the Go
// runtime), split evenly, between 8 and 16384. With a limit of 128 and two
// shares, each server holds at most 40 connections.
func ConnShare(n int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return maxConns
	}
	soft := int(lim.Cur)
	share := (soft - 32 - soft/8) / max(n, 1)
	return min(max(share, minConns), maxConns)
}

// tracker holds a server's connections and their states; it owns them
// all. At its cap, a new connection makes room by closing the oldest one
// that is idle or has not sent a request yet.
type tracker struct {
	max  int
	log  *slog.Logger
	room chan struct{} // a token when a connection closed or became idle

	mu    sync.Mutex
	conns map[*conn]*connState
	seq   uint64 // orders the states' since
}

// connState is what the tracker knows of one connection.
type connState struct {
	waiting bool   // idle, or no request yet: the connection may be evicted
	since   uint64 // when it began waiting, in the tracker's seq
}

func newTracker(maxConns int, log *slog.Logger) *tracker {
	return &tracker{max: maxConns, log: log, room: make(chan struct{}, 1), conns: map[*conn]*connState{}}
}

// busy counts the connections that are serving a request.
func (t *tracker) busy() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, st := range t.conns {
		if !st.waiting {
			n++
		}
	}
	return n
}

// add tracks a new connection.
func (t *tracker) add(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	t.conns[c] = &connState{waiting: true, since: t.seq}
}

// makeRoom brings the tracker back to its cap after c was added: past the
// cap it stops tracking the oldest waiting connection other than c and
// returns it, for the caller to close. full reports that the tracker is
// past its cap with no connection to evict.
func (t *tracker) makeRoom(c *conn) (victim *conn, full bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) <= t.max {
		return nil, false
	}
	var oldest uint64
	for vc, st := range t.conns {
		if vc != c && st.waiting && (victim == nil || st.since < oldest) {
			victim, oldest = vc, st.since
		}
	}
	if victim == nil {
		return nil, true
	}
	delete(t.conns, victim)
	return victim, false
}

// remove stops tracking a connection, which has closed.
func (t *tracker) remove(c *conn) {
	t.mu.Lock()
	_, ok := t.conns[c]
	delete(t.conns, c)
	t.mu.Unlock()
	if ok {
		t.signal()
	}
}

// connState is the http.Server.ConnState hook.
func (t *tracker) connState(c *conn, state http.ConnState) {
	switch state {
	case http.StateActive, http.StateIdle:
		t.mu.Lock()
		st := t.conns[c]
		if st != nil {
			t.seq++
			st.waiting, st.since = state == http.StateIdle, t.seq
		}
		t.mu.Unlock()
		if st != nil && state == http.StateIdle {
			t.signal()
		}
	case http.StateHijacked, http.StateClosed:
		t.remove(c)
	}
}

func (t *tracker) signal() {
	select {
	case t.room <- struct{}{}:
	default:
	}
}

// listener caps the connections it accepts with a tracker.
type listener struct {
	net.Listener
	t      *tracker
	closed chan struct{}
	once   sync.Once
}

// Accept waits while every tracked connection is serving a request, then
// accepts one and, past the cap, closes the oldest waiting connection. If
// the others all became busy meanwhile, it holds the new connection until
// one is idle or closed.
func (l *listener) Accept() (net.Conn, error) {
	for l.t.busy() >= l.t.max {
		if err := l.wait(); err != nil {
			return nil, err
		}
	}
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, t: l.t, scan: newScanner()}
	l.t.add(c)
	for {
		victim, full := l.t.makeRoom(c)
		if victim != nil {
			l.t.log.Debug("connection cap reached; closing the oldest idle connection", "cap", l.t.max, "remote", victim.RemoteAddr().String())
			_ = victim.Close()
		}
		if !full {
			return c, nil
		}
		if err := l.wait(); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
}

// wait waits until a connection closes or becomes idle, or the listener
// closes.
func (l *listener) wait() error {
	select {
	case <-l.t.room:
		return nil
	case <-l.closed:
		return net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// net/http looks for CloseWrite on a connection (see conn.CloseWrite).
var _ interface{ CloseWrite() error } = (*conn)(nil)

// conn is an accepted connection. It follows the requests read from it
// (see scanner) and leaves the tracker when closed.
type conn struct {
	net.Conn
	t *tracker

	mu     sync.Mutex
	scan   *scanner
	served int // requests handed to the handler
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan.feed(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite shuts down the writing side of a TCP connection: net/http
// does so before closing a connection whose request it did not read whole,
// so the client reads the answer (a 431, a 400) rather than a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	c.t.remove(c)
	return c.Conn.Close()
}

// nextRequest reports whether the request net/http has just read, the
// next one on the connection, may be served.
func (c *conn) nextRequest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.served
	c.served++
	return c.scan.ok(i)
}
