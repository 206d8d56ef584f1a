package function

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"
)

// MaxResponseSize is the largest buffered response Lambda returns: 6 MB
// plus a little for the encoding.
const MaxResponseSize = 6291556

// ErrThrottled is returned by Invoke when no execution environment can take
// the invocation: the function's concurrency is used up and it does not
// queue. Callers answer 429 TooManyRequestsException.
var ErrThrottled = errors.New("concurrency limit reached")

// Invocation is one invocation as the runtime receives it.
type Invocation struct {
	ID              string
	Payload         []byte
	ContentType     string // default application/json
	Deadline        time.Time
	FunctionARN     string
	TraceID         string
	ClientContext   string // JSON, already decoded from base64
	CognitoIdentity string // JSON
	TenantID        string
	// Streaming is set for invokes whose caller takes a stream
	// (InvokeWithResponseStream, streaming function URLs): the runtime's
	// response is then streamed even without the response-mode header,
	// which aws-lambda-go never sends.
	Streaming bool
}

// Request is one invocation to run.
type Request struct {
	Invocation // Deadline is set by whatever runs it
	// Tail asks for the invocation's log in Result.WaitLog.
	Tail bool
}

// Stream is the reader's side of a streamed response: the bytes arrive as
// the runtime writes them. Read it to EOF (or Close it to discard the
// rest), then Wait for the outcome.
type Stream interface {
	// Read reads the next bytes the runtime wrote.
	Read(p []byte) (int, error)
	// Close discards the rest of the stream.
	Close() error
	// Wait waits for the end of the stream and returns the error the
	// runtime reported mid-stream, if any.
	Wait() (errorType string, errorBody []byte)
}

// Result is the outcome of an invocation, as the caller that answers it
// sees it. It is the caller's own: whatever ran the invocation shares
// nothing with it that the caller can change. A streamed response comes as
// a Stream, which can read the stream but not fail or end it.
type Result struct {
	// Payload is the response, or the error body when Error is set; it is
	// empty when Stream is set.
	Payload     []byte
	ContentType string
	// Error is set for a function error or a platform failure; ErrorType
	// is then its Lambda error type, e.g. "Sandbox.Timedout".
	Error     bool
	ErrorType string
	// Stream, when set, carries a streamed response as the runtime writes
	// it. Read it to EOF or Close it, then Wait for its outcome; or call
	// Buffered.
	Stream Stream
	// Log, when set, is the invocation's log that Tail asked for; WaitLog
	// reads it.
	Log *LogTail
}

// LogTail is an invocation's log, filled in once by whatever ran it when
// the invocation has settled.
type LogTail struct {
	done chan struct{}
	log  []byte // written before done is closed
}

// NewLogTail returns a log that is not filled in yet.
func NewLogTail() *LogTail { return &LogTail{done: make(chan struct{})} }

// Set fills the log in; it must be called once.
func (t *LogTail) Set(log []byte) {
	t.log = log
	close(t.done)
}

// ErrorResult is a platform error in Lambda's shape, as a Result.
func ErrorResult(errorType, message string) *Result {
	return &Result{Payload: ErrorBody(errorType, message), ContentType: "application/json", Error: true, ErrorType: errorType}
}

// ErrorBody is Lambda's JSON body of an error.
func ErrorBody(errorType, message string) []byte {
	b, _ := json.Marshal(struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{errorType, message})
	return b
}

// WaitLog returns the last 4 KB of the invocation's log when Tail was
// asked, else nil. For a streamed response it waits until the stream has
// ended and the invocation has settled.
func (r *Result) WaitLog() []byte {
	if r.Log == nil {
		return nil
	}
	<-r.Log.done
	return r.Log.log
}

// Buffered returns the result as a buffered invoke answers it: a streamed
// response read whole, within MaxResponseSize, or the error the runtime
// reported mid-stream. Past the limit it stops reading at once and returns
// Function.ResponseSizeTooLarge without waiting for the runtime to finish
// (the rest of the stream is discarded). A result without a stream is
// returned as it is.
func (r *Result) Buffered() *Result {
	st := r.Stream
	if st == nil {
		return r
	}
	b, _ := io.ReadAll(io.LimitReader(st, MaxResponseSize+1))
	_ = st.Close() // the runtime's rest, if any, is discarded
	var out *Result
	if len(b) > MaxResponseSize {
		out = ErrorResult("Function.ResponseSizeTooLarge",
			"Response payload size exceeded maximum allowed payload size ("+strconv.Itoa(MaxResponseSize)+" bytes).")
	} else if errType, errBody := st.Wait(); errType != "" {
		out = &Result{Payload: errBody, ContentType: "application/json", Error: true, ErrorType: errType}
	} else {
		out = &Result{Payload: b, ContentType: r.ContentType}
	}
	out.Log = r.Log
	return out
}
