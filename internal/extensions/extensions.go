// Package extensions serves the Lambda Extensions API
// (/2020-01-01/extension) of one execution environment and keeps each
// extension's state: registered, waiting in event/next, or busy with an
// event. The environment drives the lifecycle: it opens registration,
// hands INVOKE and SHUTDOWN events out, and waits for every extension to
// come back to event/next.
package extensions

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// MaxExtensions is how many extensions may register in one environment.
const MaxExtensions = 10

// Header names of the Extensions API.
const (
	HeaderName       = "Lambda-Extension-Name"
	HeaderIdentifier = "Lambda-Extension-Identifier"
	HeaderEventID    = "Lambda-Extension-Event-Identifier"
	HeaderErrorType  = "Lambda-Extension-Function-Error-Type"
	HeaderFeatures   = "Lambda-Extension-Accept-Feature"
)

// Function describes the function to registering extensions.
type Function struct {
	Name, Version, Handler, AccountID string
}

// Tracing is the X-Ray context of an INVOKE event.
type Tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Event is an INVOKE or SHUTDOWN event.
type Event struct {
	EventType          string   `json:"eventType"`
	DeadlineMs         int64    `json:"deadlineMs"`
	RequestID          string   `json:"requestId,omitempty"`
	InvokedFunctionArn string   `json:"invokedFunctionArn,omitempty"`
	Tracing            *Tracing `json:"tracing,omitempty"`
	ShutdownReason     string   `json:"shutdownReason,omitempty"`
}

// Error is an extension's init/error or exit/error report.
type Error struct {
	Extension, Type string
	Body            []byte
}

// Server serves the Extensions API. It is an http.Handler.
type Server struct {
	log *slog.Logger
	fn  Function
	mux *http.ServeMux

	mu       sync.Mutex
	open     bool            // registration is open
	external map[string]bool // names of the launched external extensions
	exts     map[string]*ext // by identifier
	order    []*ext          // in registration order
	errs     []Error         // init/exit errors reported
	changed  chan struct{}   // closed, and replaced, on every state change
}

type ext struct {
	id, name string
	internal bool
	events   map[string]bool
	waiting  bool       // blocked in event/next, ready for an event
	queue    chan Event // events handed out, not yet fetched
}

// NewServer returns a server with registration closed; Reset opens it.
func NewServer(fn Function, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, fn: fn, mux: http.NewServeMux(), changed: make(chan struct{})}
	s.mux.HandleFunc("POST /2020-01-01/extension/register", s.register)
	s.mux.HandleFunc("GET /2020-01-01/extension/event/next", s.next)
	s.mux.HandleFunc("POST /2020-01-01/extension/init/error", s.reportError)
	s.mux.HandleFunc("POST /2020-01-01/extension/exit/error", s.reportError)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Reset forgets every extension and opens registration for a new Init.
// external names the executables launched from the extensions directory;
// any other name registers as an internal extension.
func (s *Server) Reset(external []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
	s.external = map[string]bool{}
	for _, n := range external {
		s.external[n] = true
	}
	s.exts = map[string]*ext{}
	s.order = nil
	s.errs = nil
	s.notifyLocked()
}

// CloseRegistration ends the Init phase's registration window.
func (s *Server) CloseRegistration() {
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
}

// Changed returns a channel closed at the next change of any extension's
// state; wait on it, then check the state again.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Registered reports which of names have registered.
func (s *Server) Registered(names []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := map[string]bool{}
	for _, e := range s.order {
		have[e.name] = true
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return true
}

// Ready reports whether every registered extension waits in event/next.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.order {
		if !e.waiting {
			return false
		}
	}
	return true
}

// Count returns the number of registered extensions, and of those the
// internal ones.
func (s *Server) Count() (all, internal int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.order {
		if e.internal {
			internal++
		}
	}
	return len(s.order), internal
}

// Name returns the name of the extension with identifier id.
func (s *Server) Name(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exts[id]
	if !ok {
		return "", false
	}
	return e.name, true
}

// Errors returns the init/exit errors extensions reported since Reset.
func (s *Server) Errors() []Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Error(nil), s.errs...)
}

// eventQueue is how many events an extension may leave unfetched before
// the next is dropped: in Lambda Managed Instances mode every concurrent
// invoke sends one INVOKE.
const eventQueue = 256

// Send hands ev to every extension subscribed to its type. Each is busy
// until it calls event/next again.
func (s *Server) Send(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.order {
		if !e.events[ev.EventType] {
			continue
		}
		e.waiting = false
		select {
		case e.queue <- ev:
		default:
			s.log.Warn("extension has unfetched events; dropping one", "extension", e.name, "event", ev.EventType)
		}
	}
	s.notifyLocked()
}

type apiError struct {
	status   int
	typ, msg string
}

func writeError(w http.ResponseWriter, e apiError) {
	writeJSON(w, e.status, map[string]string{"errorType": e.typ, "errorMessage": e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func forbidden(typ, msg string) apiError { return apiError{http.StatusForbidden, typ, msg} }

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(HeaderName)
	var body struct {
		Events []string `json:"events"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, forbidden("InvalidRequestFormat", "Bad request format: "+err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	internal := !s.external[name]
	var e apiError
	switch {
	case name == "" || strings.ContainsAny(name, "/\x00"):
		e = forbidden("Extension.InvalidExtensionName", "Invalid extension name "+strconv.Quote(name))
	case !s.open:
		e = forbidden("Extension.RegistrationClosed", "Extension registration closed already")
	case len(s.order) >= MaxExtensions:
		e = forbidden("Extension.TooManyExtensions", "Too many extensions registered")
	}
	for _, n := range s.order {
		if n.name == name && e.typ == "" {
			e = forbidden("Extension.InvalidExtensionName", "Extension "+strconv.Quote(name)+" is registered already")
		}
	}
	events := map[string]bool{}
	for _, ev := range body.Events {
		switch {
		case e.typ != "":
		case ev != "INVOKE" && ev != "SHUTDOWN":
			e = forbidden("Extension.InvalidEventType", "Unknown event type "+strconv.Quote(ev))
		case ev == "SHUTDOWN" && internal:
			e = forbidden("Extension.InvalidEventType", "Internal extensions cannot register for the SHUTDOWN event")
		}
		events[ev] = true
	}
	if e.typ != "" {
		s.log.Warn("extension registration rejected", "extension", name, "error_type", e.typ)
		writeError(w, e)
		return
	}
	x := &ext{id: uuid.NewString(), name: name, internal: internal, events: events, queue: make(chan Event, eventQueue)}
	s.exts[x.id] = x
	s.order = append(s.order, x)
	s.notifyLocked()
	resp := map[string]string{"functionName": s.fn.Name, "functionVersion": s.fn.Version, "handler": s.fn.Handler}
	if strings.Contains(r.Header.Get(HeaderFeatures), "accountId") {
		resp["accountId"] = s.fn.AccountID
	}
	w.Header().Set(HeaderIdentifier, x.id)
	writeJSON(w, http.StatusOK, resp)
}

// lookup finds the calling extension by its identifier header.
func (s *Server) lookup(r *http.Request) (*ext, *apiError) {
	id := r.Header.Get(HeaderIdentifier)
	if id == "" {
		e := forbidden("Extension.MissingExtensionIdentifier", "Missing "+HeaderIdentifier+" header")
		return nil, &e
	}
	if _, err := uuid.Parse(id); err != nil {
		e := forbidden("Extension.InvalidExtensionIdentifier", "Invalid extension identifier "+strconv.Quote(id))
		return nil, &e
	}
	s.mu.Lock()
	x, ok := s.exts[id]
	s.mu.Unlock()
	if !ok {
		e := forbidden("Extension.UnknownExtensionIdentifier", "Unknown extension identifier "+id)
		return nil, &e
	}
	return x, nil
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	x, e := s.lookup(r)
	if e != nil {
		writeError(w, *e)
		return
	}
	s.mu.Lock()
	x.waiting = true
	s.notifyLocked()
	s.mu.Unlock()
	select {
	case ev := <-x.queue:
		w.Header().Set(HeaderEventID, uuid.NewString())
		writeJSON(w, http.StatusOK, ev)
	case <-r.Context().Done():
	}
}

func (s *Server) reportError(w http.ResponseWriter, r *http.Request) {
	x, e := s.lookup(r)
	if e != nil {
		writeError(w, *e)
		return
	}
	typ := r.Header.Get(HeaderErrorType)
	if typ == "" {
		writeError(w, forbidden("Extension.MissingHeader", "Missing "+HeaderErrorType+" header"))
		return
	}
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	s.mu.Lock()
	s.errs = append(s.errs, Error{Extension: x.name, Type: typ, Body: body})
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}
