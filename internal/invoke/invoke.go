// Package invoke serves the client side of Lambda: the Invoke API
// (POST /2015-03-31/functions/{name}/invocations) that the AWS CLI, the AWS
// SDKs and curl call. It validates requests as Lambda does, routes them to
// a function and writes the result back in Lambda's shape.
package invoke

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/xray"
)

// Payload limits of the Invoke API.
const (
	MaxSyncPayload   = 6291456 // 6 MiB
	MaxAsyncPayload  = 1048576 // 1 MiB
	maxClientContext = 3583
)

// Function runs invocations of one function; a pool or a service implements it.
type Function interface {
	Invoke(ctx context.Context, req *function.Request) (*function.Result, error)
}

// Queue runs asynchronous (Event) invocations; *async.Queue implements it.
type Queue interface {
	Enqueue(req *function.Request) error
	Failures() []async.Record
}

// Server is the Invoke API front. It is an http.Handler.
type Server struct {
	log *slog.Logger
	mux *http.ServeMux

	other atomic.Pointer[http.Handler] // see HandleOthers

	mu      sync.RWMutex
	funcs   map[string]map[string]entry // by function name, then version
	aliases map[string]Alias            // by "name:alias"
	def     string                      // the function the alias "function" names
}

// Alias routes invokes of a function's alias to a version and,
// optionally, a share of them to others (AdditionalVersionWeights).
type Alias struct {
	// Version is the version the alias names ("$LATEST" or a number).
	Version string
	// Weights maps other versions to the share of invokes (0 to 1) they
	// take; the rest go to Version.
	Weights map[string]float64
}

// pick chooses the version an invoke runs, with r uniform in [0,1).
func (a Alias) pick(r float64) string {
	for _, v := range slices.Sorted(maps.Keys(a.Weights)) {
		if r < a.Weights[v] {
			return v
		}
		r -= a.Weights[v]
	}
	return a.Version
}

type entry struct {
	cfg   function.Config
	arn   string // cfg.ARN(), made once
	fn    Function
	queue Queue
}

// NewServer returns a server with no functions. A nil logger discards logs.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, mux: http.NewServeMux(), funcs: map[string]map[string]entry{}, aliases: map[string]Alias{}}
	s.mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.handle(func(w http.ResponseWriter, r *http.Request, id string) *apiError {
		return s.invoke(w, r, r.PathValue("name"), id)
	}))
	s.mux.HandleFunc("POST "+StreamPath, s.handle(s.invokeStream))
	s.mux.HandleFunc("GET "+FailedEventsPath, s.handle(s.failedEvents))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := s.other.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		s.handle(func(_ http.ResponseWriter, r *http.Request, _ string) *apiError {
			return &apiError{Status: http.StatusNotFound, Code: "UnknownOperationException", Msg: "Unknown operation " + r.Method + " " + r.URL.Path}
		})(w, r)
	})
	return s
}

// HandleOthers makes h answer every request the Invoke API does not route
// (the control-plane API of lambdabox serve), and the invocations of
// functions it does not run; nil restores the UnknownOperationException
// and ResourceNotFoundException answers.
func (s *Server) HandleOthers(h http.Handler) {
	if h == nil {
		s.other.Store(nil)
		return
	}
	s.other.Store(&h)
}

// FailedEventsPath lists a function's asynchronous events that failed every
// attempt, as on-failure destination records (a lambdabox addition).
const FailedEventsPath = "/lambdabox/functions/{name}/failed-events"

// Add registers version cfg.Version of function cfg.Name, with q for its
// Event invocations; one already registered under that name and version is
// replaced (requests that already looked it up finish on it). The first
// function added also answers to the official emulator's name "function".
// An unqualified invoke runs $LATEST or, for a function registered under
// one other version only, that version.
func (s *Server) Add(cfg function.Config, fn Function, q Queue) {
	cfg = cfg.WithDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.funcs[cfg.Name] == nil {
		s.funcs[cfg.Name] = map[string]entry{}
	}
	s.funcs[cfg.Name][cfg.Version] = entry{cfg, cfg.ARN(), fn, q}
	if s.def == "" {
		s.def = cfg.Name
	}
}

// Remove unregisters a function: key is its name (for $LATEST) or
// "name:version". Later requests get ResourceNotFoundException. If it was
// the last version of the function that answered to "function", the next
// function added does. Aliases stay until RemoveAlias.
func (s *Server) Remove(key string) {
	name, version, ok := strings.Cut(key, ":")
	if !ok {
		version = function.DefaultVersion
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.funcs[name], version)
	if len(s.funcs[name]) == 0 {
		delete(s.funcs, name)
		if s.def == name {
			s.def = ""
		}
	}
}

// SetAlias makes alias of the named function route as a says.
func (s *Server) SetAlias(name, alias string, a Alias) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[name+":"+alias] = a
}

// RemoveAlias removes an alias of the named function.
func (s *Server) RemoveAlias(name, alias string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.aliases, name+":"+alias)
}

// invokePrefix and invokeSuffix frame the Invoke API's path.
const (
	invokePrefix = "/2015-03-31/functions/"
	invokeSuffix = "/invocations"
)

// ServeHTTP implements http.Handler. Invoke, on every request, is routed
// here without the mux when its path is exactly the mux's pattern (no
// escapes, nothing to clean), which the mux would route to the same
// handler: it saves the mux's path cleaning, unescaping and matching.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; r.Method == http.MethodPost && r.URL.RawPath == "" &&
		len(p) > len(invokePrefix)+len(invokeSuffix) && strings.HasPrefix(p, invokePrefix) && strings.HasSuffix(p, invokeSuffix) {
		name := p[len(invokePrefix) : len(p)-len(invokeSuffix)]
		if name != "." && name != ".." && !strings.Contains(name, "/") {
			s.serve(w, r, func(w http.ResponseWriter, r *http.Request, id string) *apiError { return s.invoke(w, r, name, id) })
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// apiError is an Invoke API error, written once by handle.
type apiError struct {
	Status     int
	Code       string // X-Amzn-ErrorType, e.g. ResourceNotFoundException
	Msg        string
	Reason     string // for TooManyRequestsException
	RetryAfter int    // seconds, for TooManyRequestsException
	// unknown is set for a function this server does not run: an
	// invocation of it goes to the HandleOthers handler, when there is
	// one, which may know it (e.g. one still being created).
	unknown bool
}

func (e *apiError) write(w http.ResponseWriter, requestID string) {
	typ := "User"
	if e.Status >= 500 {
		typ = "Service"
	}
	body := map[string]string{"Type": typ, "Message": e.Msg}
	if e.Reason != "" {
		body["Reason"] = e.Reason
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-ErrorType", e.Code)
	h.Set("X-Amzn-RequestId", requestID)
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// handler answers a request given its new request id.
type handler func(w http.ResponseWriter, r *http.Request, id string) *apiError

func (s *Server) handle(fn handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, fn) }
}

// serve runs fn with a new request id and writes the error it returns.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, fn handler) {
	id := uuid.NewString()
	if e := fn(w, r, id); e != nil {
		if h := s.other.Load(); e.unknown && h != nil && r.Method == http.MethodPost {
			(*h).ServeHTTP(w, r)
			return
		}
		s.log.Warn("invoke rejected", "path", r.URL.Path, "error_type", e.Code, "error", e.Msg, "request_id", id)
		e.write(w, id)
	}
}

// lookup resolves a FunctionName path element (name, name:qualifier,
// partial or full ARN) and the Qualifier parameter.
func (s *Server) lookup(name, qualifier string) (entry, *apiError) {
	fname, qual, ok := function.ParseName(name)
	if !ok {
		return entry{}, validationError(name, "functionName", function.NamePattern)
	}
	if qualifier != "" {
		if !function.ValidQualifier(qualifier) {
			return entry{}, validationError(qualifier, "qualifier", function.QualifierPattern)
		}
		if qual != "" && qual != qualifier {
			return entry{}, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameterValueException", Msg: "The derived qualifier from the function name does not match the specified qualifier."}
		}
		qual = qualifier
	}
	s.mu.RLock()
	if fname == "function" && s.funcs["function"] == nil && s.def != "" {
		fname = s.def
	}
	versions := s.funcs[fname]
	version := qual
	if a, isAlias := s.aliases[fname+":"+qual]; isAlias {
		version = a.pick(rand.Float64())
	}
	e, ok := versions[version]
	if !ok && (version == "" || version == function.DefaultVersion) {
		if e, ok = versions[function.DefaultVersion]; !ok && len(versions) == 1 {
			for _, e = range versions {
				ok = true
			}
		}
	}
	s.mu.RUnlock()
	if !ok {
		arn := function.Config{Name: fname}.WithDefaults().ARN()
		for _, other := range versions {
			arn = other.arn
			break
		}
		if qual != "" {
			arn += ":" + qual
		}
		return entry{}, &apiError{Status: http.StatusNotFound, Code: "ResourceNotFoundException", Msg: "Function not found: " + arn, unknown: true}
	}
	return e, nil
}

// validationError is Lambda's answer to a parameter that does not satisfy
// its documented pattern.
func validationError(value, param, pattern string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "ValidationException",
		Msg: "1 validation error detected: Value '" + value + "' at '" + param + "' failed to satisfy constraint: Member must satisfy regular expression pattern: " + pattern}
}

func badParam(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "InvalidParameterValueException", Msg: msg}
}

// parseInvoke validates an Invoke or InvokeWithResponseStream request as
// Lambda does, and builds the invocation. allowed lists the invocation
// types the operation takes.
func (s *Server) parseInvoke(r *http.Request, name, id string, allowed ...string) (entry, *function.Request, string, *apiError) {
	var qualifier string
	if r.URL.RawQuery != "" { // most invokes have none: no query parsed
		qualifier = r.URL.Query().Get("Qualifier")
	}
	fn, e := s.lookup(name, qualifier)
	if e != nil {
		return fn, nil, "", e
	}
	invType := header(r.Header, "X-Amz-Invocation-Type")
	if invType == "" {
		invType = "RequestResponse"
	}
	if !slices.Contains(allowed, invType) {
		return fn, nil, "", badParam("1 validation error detected: Value '" + invType + "' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [" + strings.Join(allowed, ", ") + "]")
	}
	tail := false
	switch lt := header(r.Header, "X-Amz-Log-Type"); lt {
	case "", "None":
	case "Tail":
		if invType == "Event" {
			return fn, nil, "", badParam("LogType Tail is supported only for synchronous invocations (RequestResponse)")
		}
		tail = true
	default:
		return fn, nil, "", badParam("1 validation error detected: Value '" + lt + "' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]")
	}
	if e := checkTenant(fn.cfg, header(r.Header, HeaderTenantID)); e != nil {
		return fn, nil, "", e
	}
	clientContext, e := decodeClientContext(header(r.Header, "X-Amz-Client-Context"))
	if e != nil {
		return fn, nil, "", e
	}
	limit := int64(MaxSyncPayload)
	if invType == "Event" {
		limit = MaxAsyncPayload
	}
	payload, e := readPayload(r.Body, r.ContentLength, limit, invType)
	if e != nil {
		return fn, nil, "", e
	}
	traceID := header(r.Header, "X-Amzn-Trace-Id")
	if traceID == "" {
		traceID = xray.NewTraceID(time.Now())
	}
	// The runtime sees the ARN the client invoked: qualified by the
	// version or alias it named.
	arn := fn.arn
	_, q, _ := function.ParseName(name)
	if qualifier != "" {
		q = qualifier
	}
	if q != "" {
		arn += ":" + q
	}
	req := &function.Request{
		Invocation: runtimeInvocation(r, id, payload, arn, traceID, clientContext),
		Tail:       tail,
	}
	return fn, req, invType, nil
}

// run invokes fn, mapping throttles and lambdabox's own failures to
// Lambda's errors.
func run(ctx context.Context, fn entry, req *function.Request) (*function.Result, *apiError) {
	res, err := fn.fn.Invoke(ctx, req)
	switch {
	case errors.Is(err, function.ErrThrottled):
		return nil, &apiError{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException", Msg: "Rate Exceeded.",
			Reason: "ReservedFunctionConcurrentInvocationLimitExceeded", RetryAfter: 1}
	case err != nil:
		return nil, &apiError{Status: http.StatusInternalServerError, Code: "ServiceException", Msg: err.Error()}
	}
	return res, nil
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, name, id string) *apiError {
	fn, req, invType, e := s.parseInvoke(r, name, id, "Event", "RequestResponse", "DryRun")
	if e != nil {
		return e
	}
	switch invType {
	case "DryRun":
		w.Header().Set("X-Amzn-RequestId", req.ID)
		w.WriteHeader(http.StatusNoContent)
		return nil
	case "Event":
		if fn.queue == nil {
			return &apiError{Status: http.StatusInternalServerError, Code: "ServiceException", Msg: "asynchronous invocation is not set up for this function"}
		}
		if err := fn.queue.Enqueue(req); err != nil {
			return enqueueError(err)
		}
		w.Header().Set("X-Amzn-RequestId", req.ID)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	res, e := run(r.Context(), fn, req)
	if e != nil {
		return e
	}
	// A function that streams, invoked without streaming: Lambda buffers
	// its response, within the usual limit.
	res = res.Buffered()
	h := w.Header()
	// The values in one array, each header a one-element slice of it
	// (capacity 1: an append copies): one allocation for four.
	v := []string{res.ContentType, strconv.Itoa(len(res.Payload)), fn.cfg.Version, req.ID}
	h["Content-Type"] = v[0:1:1]
	h["Content-Length"] = v[1:2:2]
	h["X-Amz-Executed-Version"] = v[2:3:3]
	h["X-Amzn-Requestid"] = v[3:4:4]
	if res.Error {
		h["X-Amz-Function-Error"] = []string{"Unhandled"}
	}
	if req.Tail {
		h["X-Amz-Log-Result"] = []string{base64.StdEncoding.EncodeToString(res.WaitLog())}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
	return nil
}

// enqueueError maps a refused Event invocation to Lambda's errors: a full
// queue is a throttle, as Lambda answers when it cannot take an event.
func enqueueError(err error) *apiError {
	switch {
	case errors.Is(err, async.ErrFull):
		return &apiError{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException",
			Msg: "Rate Exceeded. " + err.Error(), Reason: "FunctionInvocationRateLimitExceeded", RetryAfter: 1}
	case errors.Is(err, async.ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "ServiceException", Msg: err.Error()}
	default:
		return &apiError{Status: http.StatusInternalServerError, Code: "ServiceException", Msg: "The event was not accepted: " + err.Error()}
	}
}

func (s *Server) failedEvents(w http.ResponseWriter, r *http.Request, _ string) *apiError {
	fn, e := s.lookup(r.PathValue("name"), "")
	if e != nil {
		return e
	}
	failures := []async.Record{} // [] when nothing failed, never null
	if fn.queue != nil {
		failures = append(failures, fn.queue.Failures()...)
	}
	b, _ := json.Marshal(failures)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// header returns the first value of a header by its canonical name
// (Header.Get canonicalizes the name on every call; these names are
// constants, already canonical, as net/http stores a request's).
func header(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// HeaderCognitoIdentity carries a Cognito identity (JSON) to the runtime.
// The Invoke API has no such header (mobile SDKs set it on the platform
// side); it is lambdabox's way to test handlers that read it.
const HeaderCognitoIdentity = "X-Lambdabox-Cognito-Identity"

// runtimeInvocation is the event as the runtime will see it. Its id is the
// request id the client gets back in x-amzn-RequestId.
func runtimeInvocation(r *http.Request, id string, payload []byte, arn, traceID, clientContext string) function.Invocation {
	ct := header(r.Header, "Content-Type")
	if ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		ct = "application/json" // what curl -d and some SDKs send by default
	}
	return function.Invocation{
		ID:              id,
		Payload:         payload,
		ContentType:     ct,
		FunctionARN:     arn,
		TraceID:         traceID,
		ClientContext:   clientContext,
		CognitoIdentity: header(r.Header, HeaderCognitoIdentity),
		TenantID:        header(r.Header, HeaderTenantID),
	}
}

// HeaderTenantID names the tenant of an invoke of a function with tenant
// isolation.
const HeaderTenantID = "X-Amz-Tenant-Id"

// maxTenantID is the longest tenant id Lambda takes.
const maxTenantID = 256

// checkTenant answers as Lambda does an invoke without a tenant id to a
// function with tenant isolation, or with one to a function without
// (InvalidParameterValueException, 400). AWS documents the error type, not
// its message: the messages are lambdabox's.
func checkTenant(cfg function.Config, tenant string) *apiError {
	switch {
	case cfg.TenantIsolation && tenant == "":
		return badParam("The function " + cfg.Name + " has tenant isolation enabled (TenantIsolationMode PER_TENANT): the invoke must specify a tenant ID (X-Amz-Tenant-Id, --tenant-id)")
	case !cfg.TenantIsolation && tenant != "":
		return badParam("The function " + cfg.Name + " does not have tenant isolation enabled: remove the tenant ID (X-Amz-Tenant-Id) from the invoke")
	case len(tenant) > maxTenantID:
		return &apiError{Status: http.StatusBadRequest, Code: "ValidationException",
			Msg: "1 validation error detected: Value at 'tenantId' failed to satisfy constraint: Member must have length less than or equal to 256"}
	}
	return nil
}

// decodeClientContext checks X-Amz-Client-Context (base64 of a JSON
// object) and returns the decoded JSON.
func decodeClientContext(h string) (string, *apiError) {
	if h == "" {
		return "", nil
	}
	const msg = "Client context must be a valid Base64-encoded JSON object of at most 3583 bytes"
	if len(h) > maxClientContext {
		return "", badParam(msg)
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return "", badParam(msg)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil || obj == nil { // "null" decodes to no object

		return "", badParam(msg)
	}
	return string(b), nil
}

// readPayload reads the whole body, refusing (never truncating) one over
// limit, and checks that it is JSON. An empty body is the event {}. A body
// that does not arrive within the server's body-read timeout is a 408.
// presized is the largest declared body readPayload allocates at once.
const presized = 64 << 10

func readPayload(body io.Reader, size, limit int64, invType string) ([]byte, *apiError) {
	var b []byte
	var err error
	if size >= 0 && size <= min(limit, presized) {
		// The length is known, allowed and small: one allocation of it,
		// where io.ReadAll starts at 512 bytes and grows. net/http's body
		// stops at it, and reports one cut short. (A large one grows as
		// it arrives: a client must send what it declared.)
		b = make([]byte, size)
		var n int
		n, err = io.ReadFull(body, b)
		b = b[:n]
	} else {
		b, err = io.ReadAll(io.LimitReader(body, limit+1))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, &apiError{Status: http.StatusRequestTimeout, Code: "RequestTimeoutException", Msg: "Timed out reading the request body"}
	}
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidRequestContentException", Msg: "Could not read request body: " + err.Error()}
	}
	if int64(len(b)) > limit {
		op := "InvokeFunction"
		if invType == "Event" {
			op = "InvokeAsync"
		}
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "RequestTooLargeException",
			Msg: "Request must be smaller than " + strconv.FormatInt(limit, 10) + " bytes for the " + op + " operation"}
	}
	if len(b) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidRequestContentException",
			Msg: "Could not parse request body into json: Could not parse payload into json: " + err.Error()}
	}
	return b, nil
}
