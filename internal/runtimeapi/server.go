package runtimeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lambdabox/lambdabox/internal/function"
)

// MaxResponseSize is the largest buffered response a runtime may post:
// 6 MiB + 100 bytes.
const MaxResponseSize = function.MaxResponseSize

// Header names of the Runtime API.
const (
	HeaderRequestID       = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadline        = "Lambda-Runtime-Deadline-Ms"
	HeaderFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID         = "Lambda-Runtime-Trace-Id"
	HeaderClientContext   = "Lambda-Runtime-Client-Context"
	HeaderCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	HeaderTenantID        = "Lambda-Runtime-Aws-Tenant-Id"
	HeaderErrorType       = "Lambda-Runtime-Function-Error-Type"
	HeaderErrorBody       = "Lambda-Runtime-Function-Error-Body"
	HeaderResponseMode    = "Lambda-Runtime-Function-Response-Mode"
	// HeaderInvocationID is the per-invoke nonce sent on next; runtimes
	// that know it echo it on response and error, and a stale one is
	// answered 410 Runtime.InvokeTimeout.
	HeaderInvocationID = "Lambda-Runtime-Invocation-Id"
)

// Invocation is one event as the runtime receives it from next.
type Invocation = function.Invocation

// Response is what the runtime (or the platform on its behalf) answered.
type Response struct {
	Payload     []byte
	ContentType string
	// Error is set when the runtime posted to an error endpoint or the
	// platform failed the invocation; the Payload is then the error body.
	Error bool
	// ErrorType is the Lambda error type, e.g. "Runtime.ImportModuleError".
	ErrorType string
	// Stream, when set, carries a streamed response as the runtime writes
	// it; Payload is then empty. It is the dispatcher's: hand readers
	// Stream.Reader, never the Stream.
	Stream *Stream
}

// ErrorResponse builds a platform error in Lambda's shape.
func ErrorResponse(errorType, message string) *Response {
	b, _ := json.Marshal(struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{errorType, message})
	return &Response{Payload: b, ContentType: "application/json", Error: true, ErrorType: errorType}
}

// Generation is one runtime process's view of the server, from Reset.
type Generation struct {
	// Ready is closed when the runtime first calls next: Init is over.
	Ready <-chan struct{}
	// InitError receives the runtime's init/error report.
	InitError <-chan *Response
}

// Server serves the Runtime API of one execution environment. It is an
// http.Handler. By default the runtime holds one invocation at a time; with
// SetConcurrency(n) (Lambda Managed Instances) up to n at once.
type Server struct {
	log     *slog.Logger
	mux     *http.ServeMux
	shaping bool
	nonce   string        // this server's prefix of invocation ids
	seq     atomic.Uint64 // numbers invocation ids
	bodies  sync.Pool     // *[smallBody]byte: readLimited's first buffers

	mu       sync.Mutex
	gen      *generation
	conc     int              // invocations the runtime may hold at once
	inflight map[string]*call // handed to the runtime and not yet answered, by request id
	// gone remembers recent request and invocation ids no longer in
	// flight: ended (timed out, reset) or answered; goneIDs, a ring of
	// the last maxGone, bounds it.
	gone    map[string]goneReason
	goneIDs [maxGone]string
	goneAt  int // the ring's next slot
	// nextIn receives (without blocking the runtime) when a worker
	// enters next; see InNext.
	nextIn chan struct{}
}

// maxGone bounds how many ids gone remembers.
const maxGone = 1024

type goneReason uint8

const (
	goneEnded    goneReason = iota + 1 // a late answer gets 410
	goneAnswered                       // a second answer gets 403
)

type generation struct {
	ready     chan struct{}
	isReady   bool
	initError chan *Response
	pending   chan *call
	inNext    int // the runtime's workers waiting in next
}

type call struct {
	inv      *Invocation
	invID    string // the Invocation-Id nonce
	done     chan *Response
	answered bool
}

// NewServer returns a server with no runtime attached yet. A nil logger
// discards logs. shaping slows streamed responses past their first 6 MiB
// to about 2 MiB/s, as Lambda does.
func NewServer(log *slog.Logger, shaping bool) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Server{log: log, mux: http.NewServeMux(), shaping: shaping, conc: 1,
		nonce: hex.EncodeToString(b[:]), inflight: map[string]*call{}, gone: map[string]goneReason{}, nextIn: make(chan struct{}, 1)}
	s.mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.handle(s.next))
	s.mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.handle(func(w http.ResponseWriter, r *http.Request) *apiError {
		return s.response(w, r, r.PathValue("id"))
	}))
	s.mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.handle(s.invocationError))
	s.mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.handle(s.initError))
	s.mux.HandleFunc("/", s.handle(func(http.ResponseWriter, *http.Request) *apiError {
		return &apiError{http.StatusNotFound, "InvalidRequest", "Unknown Runtime API path"}
	}))
	s.Reset()
	return s
}

// Paths of the Runtime API that every invoke calls.
const (
	nextPath       = "/2018-06-01/runtime/invocation/next"
	invocationPath = "/2018-06-01/runtime/invocation/"
	responseSuffix = "/response"
)

// ServeHTTP implements http.Handler. next and response, called on every
// invoke, are routed here without the mux when their path is exactly one
// of the mux's own patterns (no escapes, nothing to clean), which the mux
// would route to the same handler: it saves the mux's path cleaning,
// unescaping and matching, about a tenth of the Runtime API's cost.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath == "" {
		switch p := r.URL.Path; {
		case r.Method == http.MethodGet && p == nextPath:
			s.serve(w, r, s.next(w, r))
			return
		case r.Method == http.MethodPost && len(p) > len(invocationPath)+len(responseSuffix) &&
			strings.HasPrefix(p, invocationPath) && strings.HasSuffix(p, responseSuffix):
			id := p[len(invocationPath) : len(p)-len(responseSuffix)]
			if id != "." && id != ".." && !strings.Contains(id, "/") {
				s.serve(w, r, s.response(w, r, id))
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

// ConnContext is an http.Server's ConnContext for the server's
// connections: it marks each with the runtime generation current when it
// was accepted. A runtime's connections are all accepted after the Reset
// that comes before its start; next and init/error on one accepted before
// the current generation (a runtime killed with its request on the way,
// read only after the reset) would take the new runtime's invocation or
// fail its Init, and get errReset instead.
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	return context.WithValue(ctx, connGenKey{}, g)
}

type connGenKey struct{}

// errReset answers a runtime that is not the current one.
var errReset = &apiError{http.StatusInternalServerError, "Runtime.Reset", "The execution environment was reset; exit"}

// stale returns errReset when r came on a connection of an earlier
// runtime (see ConnContext); s.mu is held.
func (s *Server) stale(r *http.Request) *apiError {
	if g, ok := r.Context().Value(connGenKey{}).(*generation); ok && g != s.gen {
		return errReset
	}
	return nil
}

// SetConcurrency lets the runtime hold up to n invocations at once
// (Lambda Managed Instances: AWS_LAMBDA_MAX_CONCURRENCY); it applies from
// the next Reset. n < 1 means 1.
func (s *Server) SetConcurrency(n int) {
	s.mu.Lock()
	s.conc = max(n, 1)
	s.mu.Unlock()
}

// Reset forgets the previous runtime, and any invocation it held, before a
// new runtime starts.
func (s *Server) Reset() Generation {
	s.mu.Lock()
	g := &generation{
		ready:     make(chan struct{}),
		initError: make(chan *Response, 1),
		pending:   make(chan *call, s.conc),
	}
	for _, c := range s.inflight {
		s.forget(c.invID, goneEnded)
	}
	s.gen = g
	clear(s.inflight)
	s.mu.Unlock()
	return Generation{Ready: g.ready, InitError: g.initError}
}

// InNext reports whether a worker of the current runtime waits in next:
// the runtime is done with its last invocation (Lambda's Invoke phase
// ends there). entered receives when a worker enters next, possibly for
// an earlier entry: check again.
func (s *Server) InNext() (in bool, entered <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen.inNext > 0, s.nextIn
}

// Dispatch queues inv for the runtime's next call. The returned channel
// receives the runtime's answer; the caller enforces the deadline.
func (s *Server) Dispatch(inv *Invocation) <-chan *Response {
	c := &call{inv: inv, done: make(chan *Response, 1)}
	var b [40]byte
	c.invID = string(strconv.AppendUint(append(b[:0], s.nonce...), s.seq.Add(1), 16))
	s.mu.Lock()
	g := s.gen
	if s.gone[inv.ID] == goneEnded {
		delete(s.gone, inv.ID) // the id is used again
	}
	s.mu.Unlock()
	select {
	case g.pending <- c:
	default:
		c.done <- ErrorResponse("Runtime.Unknown", "RequestId: "+inv.ID+" Error: an invocation is already pending")
	}
	return c.done
}

// Abandon gives up on the invocation with request id id, which timed out
// while the runtime kept it (Lambda Managed Instances do not reset the
// environment on a timeout): the runtime's late answer gets 410
// Runtime.InvokeTimeout and reaches no caller. It reports whether the
// runtime held it.
func (s *Server) Abandon(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.inflight[id]
	if !ok {
		s.forget(id, goneEnded) // next skips it if it is still pending
		return false
	}
	delete(s.inflight, id)
	s.forget(c.invID, goneEnded)
	s.forget(id, goneEnded) // a late answer without the echoed nonce
	return true
}

// forget remembers an id that may no longer be answered, and why; the
// caller holds s.mu.
func (s *Server) forget(id string, why goneReason) {
	if old := s.goneIDs[s.goneAt]; old != "" {
		delete(s.gone, old)
	}
	s.gone[id] = why
	s.goneIDs[s.goneAt] = id
	s.goneAt = (s.goneAt + 1) % maxGone
}

// Withdraw takes back the invocation dispatched to a runtime that has not
// fetched it with next, and reports whether there was one.
func (s *Server) Withdraw() bool {
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	select {
	case <-g.pending:
		return true
	default:
		return false
	}
}

// apiError is a Runtime API error, written once by handle.
type apiError struct {
	Status    int
	Type, Msg string
}

func (s *Server) handle(fn func(http.ResponseWriter, *http.Request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, fn(w, r)) }
}

// serve finishes a request whose handler returned e.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e == errDiscarded {
		s.log.Warn("discarding a late answer to an invocation that timed out", "path", r.URL.Path)
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxStreamSize))
		writeAccepted(w)
		return
	}
	if e != nil {
		s.log.Warn("runtime API request rejected", "path", r.URL.Path, "error_type", e.Type, "error", e.Msg)
		writeJSON(w, e.Status, map[string]string{"errorMessage": e.Msg, "errorType": e.Type})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var (
	accepted = []byte(`{"status":"OK"}`)
	// Header values shared by every answer, never modified: one
	// allocation fewer each on the hot path.
	jsonType       = []string{"application/json"}
	acceptedLength = []string{strconv.Itoa(len(accepted))}
)

func writeAccepted(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = acceptedLength
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(accepted)
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) *apiError {
	s.mu.Lock()
	if e := s.stale(r); e != nil {
		s.mu.Unlock()
		return e
	}
	if len(s.inflight) >= s.conc {
		var id string
		for id = range s.inflight {
			break
		}
		s.mu.Unlock()
		return &apiError{http.StatusForbidden, "InvalidStateTransition", "State transition from Running to Ready failed: invocation " + id + " has not been answered"}
	}
	g := s.gen
	if !g.isReady {
		g.isReady = true
		close(g.ready)
	}
	g.inNext++
	s.mu.Unlock()
	select {
	case s.nextIn <- struct{}{}:
	default:
	}

	var c *call
	for {
		select {
		case c = <-g.pending:
		case <-r.Context().Done():
			s.mu.Lock()
			g.inNext--
			s.mu.Unlock()
			return nil
		}
		s.mu.Lock()
		if s.gone[c.inv.ID] != goneEnded || s.gen != g {
			break
		}
		s.mu.Unlock() // abandoned before any worker took it
	}
	g.inNext--
	if s.gen != g { // the environment was reset while we waited
		s.mu.Unlock()
		c.done <- ErrorResponse("Runtime.Unknown", "RequestId: "+c.inv.ID+" Error: runtime was reset")
		return errReset
	}
	if _, dup := s.inflight[c.inv.ID]; dup {
		s.mu.Unlock()
		c.done <- ErrorResponse("Runtime.Unknown", "RequestId: "+c.inv.ID+" Error: an invocation with this request id is already running")
		return &apiError{http.StatusInternalServerError, "Runtime.DuplicateRequestId", "An invocation with this request id is already running"}
	}
	s.inflight[c.inv.ID] = c
	s.mu.Unlock()

	inv := c.inv
	h := w.Header()
	// Every value in one array, each header a one-element slice of it
	// (capacity 1: an append copies): one allocation instead of one per
	// header.
	v := []string{inv.ID, strconv.FormatInt(inv.Deadline.UnixMilli(), 10), inv.FunctionARN, inv.TraceID,
		c.invID, strconv.Itoa(len(inv.Payload)), inv.ClientContext, inv.CognitoIdentity, inv.TenantID, inv.ContentType}
	one := func(i int) []string { return v[i : i+1 : i+1] }
	h[HeaderRequestID] = one(0)
	h[HeaderDeadline] = one(1)
	h[HeaderFunctionARN] = one(2)
	h[HeaderTraceID] = one(3)
	h[HeaderInvocationID] = one(4)
	h["Content-Length"] = one(5)
	if inv.ClientContext != "" {
		h[HeaderClientContext] = one(6)
	}
	if inv.CognitoIdentity != "" {
		h[HeaderCognitoIdentity] = one(7)
	}
	if inv.TenantID != "" {
		h[HeaderTenantID] = one(8)
	}
	if ct := inv.ContentType; ct == "" || ct == "application/json" {
		h["Content-Type"] = jsonType
	} else {
		h["Content-Type"] = one(9)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
	return nil
}

// errDiscarded is claim's answer to a late answer, without an echoed
// Invocation-Id, to an invocation given up on: it is accepted (202), so
// that a runtime that does not know the header keeps running, and dropped.
var errDiscarded = &apiError{Status: http.StatusAccepted}

// claim takes the in-flight invocation with request id id, so that exactly
// one response or error is taken for it. invID is the echoed
// Invocation-Id, "" when the runtime did not send one: a stale or foreign
// one is answered 410 Runtime.InvokeTimeout and reaches no caller. A
// runtime that does not echo it is not checked: its late answer to an
// abandoned invocation gets errDiscarded.
func (s *Server) claim(id, invID string) (*call, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.inflight[id]
	why := s.gone[id]
	if invID != "" {
		why = s.gone[invID]
	}
	switch {
	case c != nil && (invID == "" || invID == c.invID):
	case why == goneAnswered:
		return nil, &apiError{http.StatusForbidden, "InvalidStateTransition", "State transition from ResponseSent to ResponseSent failed: invocation " + id + " was already answered"}
	case invID == "" && why == goneEnded:
		return nil, errDiscarded
	case invID != "":
		return nil, &apiError{http.StatusGone, "Runtime.InvokeTimeout", "Invoke timeout: the invocation " + id + " is no longer running; the response was discarded"}
	default:
		return nil, &apiError{http.StatusBadRequest, "InvalidRequestID", "Invalid request ID"}
	}
	delete(s.inflight, id)
	c.answered = true
	s.forget(id, goneAnswered)
	s.forget(c.invID, goneAnswered)
	return c, nil
}

// header returns the first value of a header by its canonical name
// (Header.Get canonicalizes the name on every call; these names are
// constants, already canonical).
func header(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *Server) response(w http.ResponseWriter, r *http.Request, id string) *apiError {
	c, e := s.claim(id, header(r.Header, HeaderInvocationID))
	if e != nil {
		return e
	}
	mode := header(r.Header, HeaderResponseMode)
	if mode != "" && mode != "streaming" {
		c.done <- ErrorResponse("Runtime.InvalidResponseModeHeader", "RequestId: "+id+" Error: invalid response mode "+strconv.Quote(mode))
		return &apiError{http.StatusBadRequest, "InvalidFunctionResponseMode", "Invalid response mode " + strconv.Quote(mode) + "; the only accepted value is streaming"}
	}
	ct := header(r.Header, "Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	if mode == "streaming" || c.inv.Streaming {
		return s.stream(w, r, c, ct)
	}
	body, n, err := s.readLimited(r.Body)
	switch {
	case errors.Is(err, errTooLarge):
		c.done <- ErrorResponse("Function.ResponseSizeTooLarge", "Response payload size ("+strconv.FormatInt(n, 10)+" bytes) exceeded maximum allowed payload size ("+strconv.Itoa(MaxResponseSize)+" bytes).")
		return tooLarge()
	case err != nil:
		c.done <- ErrorResponse("Runtime.TruncatedResponse", "RequestId: "+id+" Error: reading the runtime's response: "+err.Error())
		return &apiError{http.StatusBadRequest, "InvalidRequestFormat", "reading body: " + err.Error()}
	}
	if et := header(r.Trailer, HeaderErrorType); et != "" { // a failure reported after the body started
		resp := &Response{Payload: body, ContentType: "application/json", Error: true, ErrorType: errorType(et, nil)}
		if eb := r.Trailer.Get(HeaderErrorBody); eb != "" {
			if dec, err := base64.StdEncoding.DecodeString(eb); err == nil {
				resp.Payload = dec
			}
		}
		c.done <- resp
		writeAccepted(w)
		return nil
	}
	c.done <- &Response{Payload: body, ContentType: ct}
	writeAccepted(w)
	return nil
}

// stream hands the invoker a Stream at once and feeds it the runtime's
// body as it arrives; an error in the trailers ends it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c *call, ct string) *apiError {
	st := newStream()
	c.done <- &Response{ContentType: ct, Stream: st}
	n, tooLarge, err := st.copyFrom(r.Body, s.shaping)
	switch {
	case tooLarge:
		st.finish("Function.ResponseSizeTooLarge", ErrorResponse("Function.ResponseSizeTooLarge",
			"Response payload size exceeded maximum allowed payload size ("+strconv.Itoa(MaxStreamSize)+" bytes).").Payload, n)
		return &apiError{http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (" + strconv.Itoa(MaxStreamSize) + " bytes)."}
	case err != nil:
		st.finish("Runtime.TruncatedResponse", ErrorResponse("Runtime.TruncatedResponse", "RequestId: "+c.inv.ID+" Error: the runtime's stream ended early: "+err.Error()).Payload, n)
		return &apiError{http.StatusBadRequest, "InvalidRequestFormat", "reading body: " + err.Error()}
	}
	var errType string
	var errBody []byte
	if et := r.Trailer.Get(HeaderErrorType); et != "" {
		errType = errorType(et, nil)
		errBody, _ = base64.StdEncoding.DecodeString(r.Trailer.Get(HeaderErrorBody))
	}
	st.finish(errType, errBody, n)
	writeAccepted(w)
	return nil
}

func (s *Server) invocationError(w http.ResponseWriter, r *http.Request) *apiError {
	c, e := s.claim(r.PathValue("id"), header(r.Header, HeaderInvocationID))
	if e != nil {
		return e
	}
	resp, e := s.readError(r)
	if e != nil {
		c.done <- ErrorResponse("Function.ResponseSizeTooLarge", e.Msg)
		return e
	}
	c.done <- resp
	writeAccepted(w)
	return nil
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) *apiError {
	s.mu.Lock()
	if e := s.stale(r); e != nil {
		s.mu.Unlock()
		return e
	}
	g := s.gen
	ready := g.isReady
	s.mu.Unlock()
	if ready {
		return &apiError{http.StatusForbidden, "InvalidStateTransition", "State transition from Ready to InitError failed: init is over"}
	}
	resp, e := s.readError(r)
	if e != nil {
		return e
	}
	select {
	case g.initError <- resp:
	default: // only the first report counts
	}
	writeAccepted(w)
	return nil
}

// readError reads an error report posted to init/error or .../error.
func (s *Server) readError(r *http.Request) (*Response, *apiError) {
	body, _, err := s.readLimited(r.Body)
	if errors.Is(err, errTooLarge) {
		return nil, tooLarge()
	}
	// A body cut short still reports the error; keep what arrived.
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	et := r.Header.Get(HeaderErrorType)
	if et == "" {
		et = r.Trailer.Get(HeaderErrorType)
	}
	return &Response{Payload: body, ContentType: ct, Error: true, ErrorType: errorType(et, body)}, nil
}

func tooLarge() *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (" + strconv.Itoa(MaxResponseSize) + " bytes)."}
}

var errTooLarge = errors.New("payload too large")

// smallBody is the size of the pooled buffers readLimited reads into first.
const smallBody = 1024

// readLimited reads at most MaxResponseSize bytes. Past that it drains and
// counts the rest and returns errTooLarge with the full size.
func (s *Server) readLimited(body io.Reader) ([]byte, int64, error) {
	// Most answers are small, and sent chunked, of unknown length: they
	// are read into a pooled buffer and copied at their size, where
	// io.ReadAll would take 512 bytes and more for each.
	buf, _ := s.bodies.Get().(*[smallBody]byte)
	if buf == nil {
		buf = new([smallBody]byte)
	}
	defer s.bodies.Put(buf)
	n := 0
	for n < len(buf) {
		m, err := body.Read(buf[n:])
		n += m
		switch {
		case errors.Is(err, io.EOF):
			return append(make([]byte, 0, n), buf[:n]...), int64(n), nil
		case err != nil:
			return append(make([]byte, 0, n), buf[:n]...), int64(n), err
		}
	}
	body = io.MultiReader(bytes.NewReader(buf[:n]), body)
	b, err := io.ReadAll(io.LimitReader(body, MaxResponseSize+1))
	if err != nil {
		return b, int64(len(b)), err
	}
	if len(b) <= MaxResponseSize {
		return b, int64(len(b)), nil
	}
	rest, _ := io.Copy(io.Discard, body)
	return nil, int64(len(b)) + rest, errTooLarge
}

var errorTypePattern = regexp.MustCompile(`^(Runtime|Function)\.[A-Z][a-zA-Z]+$`)

// errorType applies Lambda's rules: a valid header wins; an invalid one is
// reported as Runtime.Unknown or Function.Unknown; without a header the
// body's errorType is used.
func errorType(header string, body []byte) string {
	if header != "" {
		switch {
		case errorTypePattern.MatchString(header):
			return header
		case strings.HasPrefix(header, "Function."):
			return "Function.Unknown"
		default:
			return "Runtime.Unknown"
		}
	}
	var v struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &v) == nil && v.ErrorType != "" {
		return v.ErrorType
	}
	return "Runtime.Unknown"
}
