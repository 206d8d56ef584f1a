package httpfront

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/xray"
)

// Function runs invocations of one function; a pool or a service implements it.
type Function interface {
	// Invoke runs one invocation and returns its result; an error means
	// the invocation did not run.
	Invoke(ctx context.Context, req *function.Request) (*function.Result, error)
}

// MaxPayload is the largest request body, and the largest event, a
// synchronous invoke takes: 6 MiB.
const MaxPayload = 6291456

// Config configures a Server. The zero value of each field is its
// documented default.
type Config struct {
	// FunctionARN is the ARN of the function a function URL invokes;
	// NewFunctionURL requires it. API Gateway routes carry their own.
	FunctionARN string
	// AccountID is requestContext.accountId; default: the account in
	// FunctionARN (or in the first route's), else DefaultAccountID.
	AccountID string
	// ID is the URL id (32 characters) or API id (10 characters); default:
	// derived from the function ARN or the routes, so it is stable.
	ID string
	// DomainName is requestContext.domainName; default the AWS form,
	// <id>.lambda-url.<region>.on.aws or <id>.execute-api.<region>.amazonaws.com.
	DomainName string
	// Stage is the API stage; default "$default". Function URLs always
	// use "$default".
	Stage string
	// StageVariables are the API stage's variables; default none.
	StageVariables map[string]string
	// Streaming makes a function URL's invokes streaming invokes (invoke
	// mode RESPONSE_STREAM): the response reaches the client as the
	// function writes it. Default: buffered.
	Streaming bool
	// ErrThrottled is the error Function.Invoke returns (tested with
	// errors.Is) when the function is at its concurrency limit; the front
	// then answers 429. Default: function.ErrThrottled. Any other Invoke
	// error is a 500.
	ErrThrottled error
	// Log receives the front's diagnostics; default: discarded.
	Log *slog.Logger
}

// Server is an HTTP front for a function URL or an API; it is an
// http.Handler.
type Server struct {
	cfg    Config
	log    *slog.Logger
	url    *Route // the function URL's single route
	router *Router
}

var _ http.Handler = (*Server)(nil)

// NewFunctionURL serves fn as a function URL: every request, whatever its
// method and path, becomes a payload format 2.0 event with routeKey
// "$default".
func NewFunctionURL(fn Function, cfg Config) (*Server, error) {
	if fn == nil {
		return nil, errors.New("function URL: no function")
	}
	if cfg.FunctionARN == "" {
		return nil, errors.New("function URL: no function ARN")
	}
	region, account := arnParts(cfg.FunctionARN)
	if cfg.AccountID == "" {
		cfg.AccountID = account
	}
	if cfg.ID == "" {
		cfg.ID = shortID(cfg.FunctionARN, 32)
	}
	if cfg.DomainName == "" {
		cfg.DomainName = cfg.ID + ".lambda-url." + region + ".on.aws"
	}
	cfg.Stage = "$default"
	s := newServer(cfg)
	s.url = &Route{Path: DefaultRoute, Version: "2.0", Function: fn, FunctionARN: cfg.FunctionARN}
	return s, nil
}

// NewAPIGateway serves routes as API Gateway does: each request goes to
// the most specific matching route (see Router), as a payload format 1.0
// or 2.0 event as the route says. A request no route matches gets 404
// {"message":"Not Found"}.
func NewAPIGateway(routes []Route, cfg Config) (*Server, error) {
	if len(routes) == 0 {
		return nil, errors.New("API: no routes")
	}
	routes = slices.Clone(routes)
	var arns []string
	for i := range routes {
		r := &routes[i]
		if r.Function == nil || r.FunctionARN == "" {
			return nil, fmt.Errorf("API route %q: no function or function ARN", r.Key())
		}
		if r.Version == "" {
			r.Version = "2.0"
		}
		arns = append(arns, r.Key()+"="+r.FunctionARN)
	}
	router, err := NewRouter(routes)
	if err != nil {
		return nil, fmt.Errorf("API: %w", err)
	}
	region, account := arnParts(routes[0].FunctionARN)
	if cfg.AccountID == "" {
		cfg.AccountID = account
	}
	if cfg.ID == "" {
		cfg.ID = shortID(strings.Join(arns, "\n"), 10)
	}
	if cfg.DomainName == "" {
		cfg.DomainName = cfg.ID + ".execute-api." + region + ".amazonaws.com"
	}
	if cfg.Stage == "" {
		cfg.Stage = "$default"
	}
	s := newServer(cfg)
	s.router = router
	return s, nil
}

func newServer(cfg Config) *Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ErrThrottled == nil {
		cfg.ErrThrottled = function.ErrThrottled
	}
	return &Server{cfg: cfg, log: log}
}

// frontError is a response the front itself gives instead of the
// function's; serve writes it, in one place.
type frontError struct {
	Status int
	Code   string // X-Amzn-ErrorType, when set
	Body   any    // sent as JSON
}

func gatewayError(status int, msg string) *frontError {
	return &frontError{Status: status, Body: map[string]string{"message": msg}}
}

func (e *frontError) write(w http.ResponseWriter, requestID string) {
	b, _ := json.Marshal(e.Body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if e.Code != "" {
		h.Set("X-Amzn-ErrorType", e.Code)
	}
	if requestID != "" {
		h.Set("X-Amzn-RequestId", requestID)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// ServeHTTP invokes the function for the request and writes its response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := uuid.NewString()
	if e := s.serve(w, r, id); e != nil {
		s.log.Warn("request answered by the front", "request_id", id, "path", r.URL.Path, "status", e.Status)
		e.write(w, id)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, id string) *frontError {
	route, match := s.url, &Match{Route: s.url}
	if s.router != nil {
		var ok bool
		if match, ok = s.router.Match(r.Method, r.URL.EscapedPath()); !ok {
			return gatewayError(http.StatusNotFound, "Not Found")
		}
		route = match.Route
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayload))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return requestTooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's body-read timeout: a slow or stalled client.
		return gatewayError(http.StatusRequestTimeout, "Request Timeout")
	case err != nil:
		return gatewayError(http.StatusBadRequest, "Bad Request")
	}
	traceID := r.Header.Get("X-Amzn-Trace-Id")
	if traceID == "" {
		traceID = xray.NewTraceID(time.Now())
	}
	meta := Meta{
		RequestID:      id,
		AccountID:      s.cfg.AccountID,
		APIID:          s.cfg.ID,
		DomainName:     s.cfg.DomainName,
		Stage:          s.cfg.Stage,
		StageVariables: s.cfg.StageVariables,
		TraceID:        traceID,
	}
	var event any
	switch {
	case s.router == nil:
		event = FunctionURLEvent(r, body, meta)
	case route.Version == "1.0":
		event = RESTEvent(r, body, match, meta)
	default:
		event = HTTPAPIEvent(r, body, match, meta)
	}
	payload, err := MarshalEvent(event)
	if err != nil {
		return gatewayError(http.StatusInternalServerError, "Internal Server Error")
	}
	if len(payload) > MaxPayload {
		return requestTooLarge()
	}
	req := &function.Request{Invocation: function.Invocation{
		ID:          id,
		Payload:     payload,
		ContentType: "application/json",
		FunctionARN: route.FunctionARN,
		TraceID:     traceID,
		Streaming:   s.cfg.Streaming,
	}}
	res, err := route.Function.Invoke(r.Context(), req)
	switch {
	case err != nil && s.cfg.ErrThrottled != nil && errors.Is(err, s.cfg.ErrThrottled):
		return gatewayError(http.StatusTooManyRequests, "Too Many Requests")
	case err != nil:
		s.log.Error("invoke failed", "request_id", id, "error", err)
		return gatewayError(http.StatusInternalServerError, "Internal Server Error")
	case res == nil:
		s.log.Error("invoke returned no result", "request_id", id)
		return badGateway()
	}
	if res.Stream != nil && isJSON(res.ContentType) {
		// A JSON result that comes as a stream (a handler that does not
		// stream, invoked in streaming mode as aws-lambda-go is; or one
		// that streams, behind a buffered URL) maps like a buffered one,
		// within the buffered limit.
		res = res.Buffered()
	}
	if res.Error {
		s.log.Warn("function error", "request_id", id, "error_type", res.ErrorType)
		return badGateway()
	}
	w.Header().Set("X-Amzn-RequestId", id)
	if res.Stream != nil {
		return s.writeStream(w, res, id)
	}
	if isHTTPIntegration(res.ContentType) {
		if err := WriteStream(w, bytes.NewReader(res.Payload)); err != nil {
			if errors.Is(err, ErrMalformedResponse) {
				s.log.Warn("malformed streamed response", "request_id", id, "error", err)
				return badGateway()
			}
			s.log.Warn("streaming the response", "request_id", id, "error", err)
		}
		return nil
	}
	var resp *Response
	if route.Version == "1.0" {
		resp, err = ResponseV1(res.Payload)
	} else {
		resp, err = ResponseV2(res.Payload)
	}
	if err != nil {
		s.log.Warn("malformed response", "request_id", id, "error", err)
		return badGateway()
	}
	resp.Write(w)
	return nil
}

// writeStream sends a streamed response on as it arrives: with the
// HTTP-integration prelude its status and headers, else as a 200 of its
// content type. The rest of a stream the client left is discarded, so the
// runtime's response ends cleanly.
func (s *Server) writeStream(w http.ResponseWriter, res *function.Result, id string) *frontError {
	st := res.Stream
	defer func() {
		_ = st.Close()
		if errType, _ := st.Wait(); errType != "" {
			s.log.Warn("function error mid-stream", "request_id", id, "error_type", errType)
		}
	}()
	var err error
	if isHTTPIntegration(res.ContentType) {
		err = WriteStream(w, st)
	} else {
		w.Header().Set("Content-Type", res.ContentType)
		err = copyFlushing(w, st)
	}
	if errors.Is(err, ErrMalformedResponse) {
		s.log.Warn("malformed streamed response", "request_id", id, "error", err)
		return badGateway()
	}
	return nil
}

func isJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

func isHTTPIntegration(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), ContentTypeHTTPIntegration)
}

// badGateway is the answer to a function error or a malformed result.
func badGateway() *frontError {
	return gatewayError(http.StatusBadGateway, "Internal Server Error")
}

// requestTooLarge is Lambda's answer to a payload over MaxPayload.
func requestTooLarge() *frontError {
	return &frontError{Status: http.StatusRequestEntityTooLarge, Code: "RequestTooLargeException", Body: map[string]string{
		"Type":    "User",
		"Message": "Request must be smaller than " + strconv.Itoa(MaxPayload) + " bytes for the InvokeFunction operation",
	}}
}

// arnParts gives the region and account of a function ARN, with defaults
// for a partial ARN.
func arnParts(arn string) (region, account string) {
	region, account = "us-east-1", DefaultAccountID
	parts := strings.Split(arn, ":")
	if len(parts) >= 5 && parts[0] == "arn" {
		if parts[3] != "" {
			region = parts[3]
		}
		if parts[4] != "" {
			account = parts[4]
		}
	}
	return region, account
}

// shortID derives a stable lowercase id of n characters from s.
func shortID(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	id := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
	return id[:n]
}
