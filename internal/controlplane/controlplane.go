// Package controlplane serves the local Lambda service's control-plane API
// (CreateFunction, UpdateFunctionCode, PublishVersion, CreateAlias…) as an
// http.Handler, on the paths and in the JSON shapes of AWS's Lambda API, so
// that the AWS CLI, boto3 and the SDKs drive it unchanged. Signed requests
// are accepted without checking their signatures.
//
// Functions, versions and aliases live in a store.Store; the package runs
// them through a Runner it declares (lambdabox serve adapts its function
// service to it). A create or a code/configuration update answers at once
// with State Pending or LastUpdateStatus InProgress, deploys in the
// background, and records Active/Successful or Failed with the reason, as
// the CLI's waiters (function-active-v2, function-updated-v2) expect.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/store"
)

// Function is one version of a function as the Runner deploys it.
type Function struct {
	Name      string
	Version   string // "$LATEST" or a published version ("1", "2"…)
	Region    string
	AccountID string
	ARN       string // unqualified

	PackageType string // "Zip" or "Image"
	Runtime     string // Zip: e.g. "python3.12", "provided.al2023"
	Handler     string
	// CodeDir is a Zip function's unpacked code, owned by the store: read
	// it, never change it.
	CodeDir  string
	ImageURI string // Image: the image

	Env         map[string]string
	Timeout     time.Duration
	MemoryMB    int
	EphemeralMB int
	// ReservedConcurrency caps the function's environments; nil: not
	// reserved. Zero throttles every invoke, as on Lambda.
	ReservedConcurrency *int
	// TenantIsolation: TenancyConfig.TenantIsolationMode PER_TENANT.
	TenantIsolation bool
	// URL is the function URL's configuration ($LATEST only); nil: none.
	URL *URL
}

// URL is a function URL's configuration.
type URL struct {
	AuthType   string // "NONE" or "AWS_IAM"
	InvokeMode string // "BUFFERED" or "RESPONSE_STREAM"
	// Port is the local port it answered on before, to keep; 0: any.
	Port int
}

// Routing is what an alias routes to: a version and, optionally, shares
// of the invokes (0 to 1) given to other versions.
type Routing struct {
	Version string
	Weights map[string]float64
}

// Runner runs the functions the control plane manages.
type Runner interface {
	// Deploy starts fn (its Name and Version), or replaces the one
	// running under that name and version. An error means the code cannot
	// start: it is reported as the function's State or LastUpdateStatus
	// reason.
	Deploy(ctx context.Context, fn Function) error
	// Undeploy stops a version of a function ("$LATEST" or a number).
	Undeploy(ctx context.Context, name, version string) error
	// Route makes the alias of the named function route as r says; nil
	// removes the alias.
	Route(name, alias string, r *Routing) error
}

// URLer is a Runner that serves function URLs: FunctionURL is where the
// named function's URL answers, once deployed. Without it, the control
// plane reports a Lambda-shaped URL nothing answers on.
type URLer interface {
	FunctionURL(name string) string
}

// urlPort is the port of a function URL (http://127.0.0.1:PORT/), 0 for
// any other.
func urlPort(u string) int {
	pu, err := url.Parse(u)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(pu.Port())
	return port
}

// Defaults of Config.
const (
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
)

// Config configures a Server. Zero values are the documented defaults.
type Config struct {
	// Store holds the functions; required.
	Store *store.Store
	// Runner runs them; required.
	Runner Runner
	// Region and AccountID make the ARNs; defaults DefaultRegion and
	// DefaultAccountID.
	Region, AccountID string
	// Log receives diagnostics; default: discarded.
	Log *slog.Logger
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("control plane: no store"))
	}
	if c.Runner == nil {
		errs = append(errs, errors.New("control plane: no runner"))
	}
	return errors.Join(errs...)
}

// Server is the control-plane API. Create it with New, call Start, then
// serve it; Close stops its background deploys.
type Server struct {
	cfg Config
	st  *store.Store
	run Runner
	log *slog.Logger
	mux *http.ServeMux

	ctx    context.Context // of the background deploys; ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	bgMu   sync.Mutex // guards closed and wg.Go against Close's wg.Wait
	closed bool

	// deployMu serialises the Runner's Deploy and Undeploy calls, so that
	// each reads the store's newest record; codeMu serialises storing
	// code with pruning it.
	deployMu sync.Mutex
	codeMu   sync.Mutex
}

// New returns a server; Start deploys what the store holds.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, st: cfg.Store, run: cfg.Runner, log: cfg.Log, mux: http.NewServeMux(), ctx: ctx, cancel: cancel}
	s.routes()
	return s, nil
}

// Start deploys every function in the store: each $LATEST, version and
// alias, recording the outcome as each function's state. A function that
// fails to start is reported in its state, not as an error; Start's error
// is the store's.
func (s *Server) Start(ctx context.Context) error {
	fns, err := s.st.Functions()
	if err != nil {
		return fmt.Errorf("reading the functions: %w", err)
	}
	for _, f := range fns {
		s.deployLatest(ctx, f.Name, false)
		versions, err := s.st.Versions(f.Name)
		if err != nil {
			return fmt.Errorf("reading the versions of %s: %w", f.Name, err)
		}
		for _, v := range versions {
			s.deployVersion(ctx, v)
		}
		aliases, err := s.st.Aliases(f.Name)
		if err != nil {
			return fmt.Errorf("reading the aliases of %s: %w", f.Name, err)
		}
		for _, a := range aliases {
			if err := s.run.Route(a.Function, a.Name, &Routing{Version: a.Version, Weights: a.Weights}); err != nil {
				s.log.Warn("routing an alias failed", "function", a.Function, "alias", a.Name, "error", err)
			}
		}
	}
	return nil
}

// Close cancels the deploys in flight and waits for them. Requests that
// would start a deploy after Close are refused (ServiceException); the
// store keeps them Pending or InProgress, and the next Start deploys them.
func (s *Server) Close() error {
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// background runs fn as a deploy Close waits for; false once closed.
func (s *Server) background(fn func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(fn)
	return true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// apiError is a control-plane error, written once by handle.
type apiError struct {
	Status int
	Type   string // x-amzn-ErrorType, e.g. ResourceNotFoundException
	Msg    string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Msg }

func (e *apiError) write(w http.ResponseWriter, requestID string) {
	typ := "User"
	if e.Status >= 500 {
		typ = "Service"
	}
	b, _ := json.Marshal(map[string]string{"Type": typ, "message": e.Msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-ErrorType", e.Type)
	h.Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

func notFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "ResourceNotFoundException", Msg: msg}
}

func conflict(msg string) *apiError {
	return &apiError{Status: http.StatusConflict, Type: "ResourceConflictException", Msg: msg}
}

func badParam(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "InvalidParameterValueException", Msg: msg}
}

func serviceError(err error) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: "ServiceException", Msg: err.Error()}
}

// storeError maps the store's errors; what names the resource.
func storeError(err error, what string) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return notFound(what + " not found")
	case errors.Is(err, store.ErrExists):
		return conflict(what + " already exist")
	default:
		return serviceError(err)
	}
}

// handle adapts a handler returning an *apiError.
func (s *Server) handle(fn func(http.ResponseWriter, *http.Request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := uuid.NewString()
		if e := fn(w, r); e != nil {
			s.log.Warn("control-plane request rejected", "method", r.Method, "path", r.URL.Path, "error_type", e.Type, "error", e.Msg, "request_id", id)
			e.write(w, id)
		}
	}
}

// reply writes v as JSON with status.
func reply(w http.ResponseWriter, status int, v any) *apiError {
	b, err := json.Marshal(v)
	if err != nil {
		return serviceError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

func (s *Server) routes() {
	const fns = "/2015-03-31/functions"
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request) *apiError{
		"POST " + fns:                                                      s.createFunction,
		"GET " + fns + "/{$}":                                              s.listFunctions,
		"GET " + fns:                                                       s.listFunctions,
		"GET " + fns + "/{name}":                                           s.getFunction,
		"DELETE " + fns + "/{name}":                                        s.deleteFunction,
		"GET " + fns + "/{name}/configuration":                             s.getConfiguration,
		"PUT " + fns + "/{name}/configuration":                             s.updateConfiguration,
		"PUT " + fns + "/{name}/code":                                      s.updateCode,
		"POST " + fns + "/{name}/versions":                                 s.publishVersion,
		"GET " + fns + "/{name}/versions":                                  s.listVersions,
		"POST " + fns + "/{name}/aliases":                                  s.createAlias,
		"GET " + fns + "/{name}/aliases":                                   s.listAliases,
		"GET " + fns + "/{name}/aliases/{alias}":                           s.getAlias,
		"PUT " + fns + "/{name}/aliases/{alias}":                           s.updateAlias,
		"DELETE " + fns + "/{name}/aliases/{alias}":                        s.deleteAlias,
		"PUT /2017-10-31/functions/{name}/concurrency":                     s.putConcurrency,
		"GET /2017-10-31/functions/{name}/concurrency":                     s.getConcurrency,
		"GET /2019-09-30/functions/{name}/concurrency":                     s.getConcurrency,
		"DELETE /2017-10-31/functions/{name}/concurrency":                  s.deleteConcurrency,
		"POST /2021-10-31/functions/{name}/url":                            s.createURL,
		"GET /2021-10-31/functions/{name}/url":                             s.getURL,
		"PUT /2021-10-31/functions/{name}/url":                             s.updateURL,
		"DELETE /2021-10-31/functions/{name}/url":                          s.deleteURL,
		"POST " + fns + "/{name}/invocations":                              s.invokeUnserved,
		"POST /2021-11-15/functions/{name}/response-streaming-invocations": s.invokeUnserved,
		"GET /lambdabox/code/{sha}":                                        s.getCode,
	} {
		s.mux.HandleFunc(pattern, s.handle(h))
	}
	s.mux.HandleFunc("/", s.handle(func(_ http.ResponseWriter, r *http.Request) *apiError {
		return &apiError{Status: http.StatusNotFound, Type: "UnknownOperationException", Msg: "Unknown operation " + r.Method + " " + r.URL.Path}
	}))
}
