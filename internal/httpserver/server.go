package httpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Server. The zero value of each field is its
// documented default.
type Config struct {
	// Handler answers the requests. Default: 404 for every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds the reading of a request's head, from its
	// first byte (from the connection's start for the first request).
	// Default 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request. Default 1 min; negative: no limit.
	IdleTimeout time.Duration
	// BodyReadTimeout bounds the reading of a request's body, from the
	// handler's start to the body's end. It does not limit the handler.
	// Default 1 min; negative: no limit (for a server that reads bodies
	// as streams, such as a Runtime API's streamed responses).
	BodyReadTimeout time.Duration
	// MaxConns caps the server's open connections; at the cap, the
	// oldest connection that is idle or has not sent a request yet is
	// closed to make room for a new one, and while every connection is
	// serving a request new ones wait in the listen backlog. Default:
	// ConnShare(1).
	MaxConns int
	// ConnContext, when set, derives each connection's context (see
	// http.Server's ConnContext), from the one the server gives it.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// Log receives the server's diagnostics, with net/http's own (such as
	// a handler's panic) at Warn. Default: discarded.
	Log *slog.Logger
}

// Defaults of Config.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = time.Minute
	DefaultBodyReadTimeout   = time.Minute
)

// Server is an HTTP/1.1 server with limits (see the package doc).
type Server struct {
	date        dateCache
	srv         *http.Server
	handler     http.Handler
	bodyTimeout time.Duration
	max         int
	log         *slog.Logger
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Handler == nil {
		cfg.Handler = http.NotFoundHandler()
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	switch {
	case cfg.IdleTimeout == 0:
		cfg.IdleTimeout = DefaultIdleTimeout
	case cfg.IdleTimeout < 0:
		// net/http falls back to ReadTimeout (none) when IdleTimeout
		// is zero.
		cfg.IdleTimeout = 0
	}
	switch {
	case cfg.BodyReadTimeout == 0:
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	case cfg.BodyReadTimeout < 0:
		cfg.BodyReadTimeout = 0
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = ConnShare(1)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{handler: cfg.Handler, bodyTimeout: cfg.BodyReadTimeout, log: cfg.Log, max: cfg.MaxConns}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// "OPTIONS *" too reaches serveHTTP, which counts every request.
		DisableGeneralOptionsHandler: true,
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			if c, ok := nc.(*conn); ok {
				ctx = context.WithValue(ctx, connKey{}, c)
			}
			if cfg.ConnContext != nil {
				ctx = cfg.ConnContext(ctx, nc)
			}
			return ctx
		},
		ConnState: func(nc net.Conn, state http.ConnState) {
			if c, ok := nc.(*conn); ok {
				c.t.connState(c, state)
			}
		},
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	return s
}

type connKey struct{}

// Serve accepts connections on ln and serves them until Shutdown or
// Close; it then returns http.ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	t := newTracker(s.max, s.log)
	return s.srv.Serve(&listener{Listener: ln, t: t, closed: make(chan struct{})})
}

// Shutdown stops the server gracefully: it closes the listeners and the
// idle connections, then waits, until ctx ends, for the others to finish
// their requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Drain starts a Shutdown within ctx and returns once the server accepts
// no connection and keeps no idle one open, so that a client's next
// request fails at once; the requests in flight go on, each closing its
// connection when it ends. The channel receives Shutdown's result.
func (s *Server) Drain(ctx context.Context) <-chan error {
	// Closes the idle connections now: Shutdown does so only after its
	// listeners are closed.
	s.srv.SetKeepAlivesEnabled(false)
	closed := make(chan struct{})
	var once sync.Once
	// Shutdown runs its hooks once its listeners are closed.
	s.srv.RegisterOnShutdown(func() { once.Do(func() { close(closed) }) })
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown(ctx) }()
	<-closed
	return done
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// serveHTTP wraps the handler: it answers a smuggling request head itself
// and bounds the reading of the request's body.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*conn); ok && !c.nextRequest() {
		rejectFraming(w, http.NewResponseController(w))
		return
	}
	// net/http formats the Date header anew for every response; the
	// server formats it once a second.
	w.Header()["Date"] = s.date.get(time.Now())
	if r.Method == http.MethodOptions && r.RequestURI == "*" {
		// What net/http's own handler for "OPTIONS *" answers.
		w.Header().Set("Content-Length", "0")
		return
	}
	if s.bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
		// The ResponseController is made where it is used, on the stack:
		// one allocation fewer per request.
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout)); err == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, w: w}
		}
	}
	s.handler.ServeHTTP(w, r)
}

// dateCache holds the Date header's value for the current second.
type dateCache struct {
	cur atomic.Pointer[dateValue]
}

type dateValue struct {
	sec int64
	v   []string // shared by every response of the second: never modified
}

func (c *dateCache) get(now time.Time) []string {
	sec := now.Unix()
	if d := c.cur.Load(); d != nil && d.sec == sec {
		return d.v
	}
	d := &dateValue{sec: sec, v: []string{now.UTC().Format(http.TimeFormat)}}
	c.cur.Store(d)
	return d.v
}

// rejectFraming answers a request whose head has both Content-Length and
// Transfer-Encoding (or another framing net/http would follow but must
// not): 400, then the connection closes, and nothing more of it is read.
func rejectFraming(w http.ResponseWriter, rc *http.ResponseController) {
	// Whatever follows the head must not be read: not as this request's
	// body, and not as another request.
	_ = rc.SetReadDeadline(time.Unix(1, 0))
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "400 Bad Request: ambiguous message framing (Content-Length with Transfer-Encoding)\n")
}

// deadlineBody clears the connection's read deadline once the body is
// read to its end or closed, so the deadline covers the body only:
// net/http's background read of the connection, which starts at the
// body's end, must not fail while the handler runs.
type deadlineBody struct {
	io.ReadCloser
	w    http.ResponseWriter
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.clear()
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	err := b.ReadCloser.Close()
	b.clear()
	return err
}

func (b *deadlineBody) clear() {
	if !b.done {
		b.done = true
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Time{})
	}
}
