package httpfront

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// ErrMalformedResponse is wrapped by the errors of ResponseV1, ResponseV2,
// ReadPrelude and WriteStream when a function's result cannot be mapped to
// an HTTP response; the front answers 502.
var ErrMalformedResponse = errors.New("malformed Lambda proxy response")

// Response is an HTTP response mapped from a function's result.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Write sends the response.
func (r *Response) Write(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range r.Header {
		h[k] = append(h[k], vs...)
	}
	h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	w.WriteHeader(r.StatusCode)
	_, _ = w.Write(r.Body)
}

// v2Result is the structured payload format 2.0 result; pointers tell
// absent fields from zero values.
type v2Result struct {
	StatusCode      *int              `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Cookies         []string          `json:"cookies"`
	Body            *string           `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

// ResponseV2 maps a payload format 2.0 result (function URLs, HTTP APIs):
// a JSON object with statusCode gives that status, its headers, its cookies
// (one Set-Cookie each) and its body (base64-decoded when isBase64Encoded);
// any other JSON value is a 200 application/json response with the payload
// as body. A payload that is not JSON is malformed.
func ResponseV2(payload []byte) (*Response, error) {
	if !json.Valid(payload) {
		return nil, fmt.Errorf("%w: the result is not JSON", ErrMalformedResponse)
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(payload, &probe) != nil || probe["statusCode"] == nil {
		// Not an object, or one without statusCode: the body itself.
		h := http.Header{"Content-Type": {"application/json"}}
		return &Response{StatusCode: http.StatusOK, Header: h, Body: payload}, nil
	}
	var res v2Result
	if err := unmarshalExact(payload, &res); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	if res.StatusCode == nil {
		return nil, fmt.Errorf("%w: statusCode is null", ErrMalformedResponse)
	}
	body, err := decodeBody(res.Body, res.IsBase64Encoded)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, k := range sortedKeys(res.Headers) {
		h.Set(k, res.Headers[k])
	}
	for _, c := range res.Cookies {
		h.Add("Set-Cookie", c)
	}
	defaultContentType(h)
	return newResponse(*res.StatusCode, endToEnd(h), body)
}

// v1Result is the payload format 1.0 result.
type v1Result struct {
	StatusCode        *int                `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Body              *string             `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// ResponseV1 maps a payload format 1.0 result (REST APIs): a JSON object
// with statusCode, headers, multiValueHeaders, body and isBase64Encoded.
// Headers and multiValueHeaders are merged as API Gateway does: a pair
// given in both appears once. Anything else is malformed.
func ResponseV1(payload []byte) (*Response, error) {
	var res v1Result
	if err := unmarshalExact(payload, &res); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	if res.StatusCode == nil {
		return nil, fmt.Errorf("%w: no statusCode", ErrMalformedResponse)
	}
	body, err := decodeBody(res.Body, res.IsBase64Encoded)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, k := range sortedKeys(res.MultiValueHeaders) {
		for _, v := range res.MultiValueHeaders[k] {
			h.Add(k, v)
		}
	}
	for _, k := range sortedKeys(res.Headers) {
		if !contains(h.Values(k), res.Headers[k]) {
			h.Add(k, res.Headers[k])
		}
	}
	defaultContentType(h)
	return newResponse(*res.StatusCode, endToEnd(h), body)
}

// unmarshalExact decodes a JSON object into the struct v points to,
// matching member names to the fields' json tags exactly, as Lambda reads
// results: encoding/json alone would also take "StatusCode" or "BODY".
func unmarshalExact(data []byte, v any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	t := reflect.TypeOf(v).Elem()
	exact := make(map[string]json.RawMessage, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if m, ok := members[name]; ok {
			exact[name] = m
		}
	}
	b, err := json.Marshal(exact)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// newResponse checks a result's status: a final status, 200 to 599. A 1xx
// status is no response at all (net/http would send it as an
// informational response and then a 200), so it is malformed too.
func newResponse(status int, h http.Header, body []byte) (*Response, error) {
	if status < 200 || status > 599 {
		return nil, fmt.Errorf("%w: statusCode %d", ErrMalformedResponse, status)
	}
	return &Response{StatusCode: status, Header: h, Body: body}, nil
}

func decodeBody(body *string, isBase64 bool) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	if !isBase64 {
		return []byte(*body), nil
	}
	b, err := base64.StdEncoding.DecodeString(*body)
	if err != nil {
		return nil, fmt.Errorf("%w: body is not base64: %w", ErrMalformedResponse, err)
	}
	return b, nil
}

func defaultContentType(h http.Header) {
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// ContentTypeHTTPIntegration is the content type of a streamed response
// that starts with an HTTP-integration prelude.
const ContentTypeHTTPIntegration = "application/vnd.awslambda.http-integration-response"

// maxPrelude bounds the prelude a stream may send before its 8 NULs.
const maxPrelude = 1 << 20

// Prelude is the head of an HTTP-integration response stream: a JSON
// object, then 8 NUL bytes, then the body.
type Prelude struct {
	// StatusCode is the response status; default 200.
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
}

// Header is the response header the prelude asks for, but for hop-by-hop
// fields (see endToEnd).
func (p *Prelude) Header() http.Header {
	h := http.Header{}
	for _, k := range sortedKeys(p.MultiValueHeaders) {
		for _, v := range p.MultiValueHeaders[k] {
			h.Add(k, v)
		}
	}
	for _, k := range sortedKeys(p.Headers) {
		if !contains(h.Values(k), p.Headers[k]) {
			h.Add(k, p.Headers[k])
		}
	}
	for _, c := range p.Cookies {
		h.Add("Set-Cookie", c)
	}
	return endToEnd(h)
}

// ReadPrelude reads the prelude of an HTTP-integration stream and returns
// it with a reader of the rest of the stream, the body. A stream that ends,
// or goes on for more than 1 MiB, before the prelude's 8 NUL bytes, or
// whose prelude is not a JSON object, is malformed.
func ReadPrelude(stream io.Reader) (*Prelude, io.Reader, error) {
	br := bufio.NewReader(stream)
	var head []byte
	for {
		chunk, err := br.ReadSlice(0)
		head = append(head, chunk...)
		if len(head) > maxPrelude {
			return nil, nil, fmt.Errorf("%w: no NUL separator in the first %d bytes of the stream", ErrMalformedResponse, maxPrelude)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: the stream ended before the prelude's 8 NUL bytes", ErrMalformedResponse)
		}
		return nil, nil, fmt.Errorf("reading the response prelude: %w", err)
	}
	// JSON text holds no raw NUL, so the first one starts the separator.
	head = head[:len(head)-1]
	var sep [7]byte
	if _, err := io.ReadFull(br, sep[:]); err != nil || sep != [7]byte{} {
		return nil, nil, fmt.Errorf("%w: the prelude is not followed by 8 NUL bytes", ErrMalformedResponse)
	}
	p := &Prelude{}
	if err := unmarshalExact(head, p); err != nil {
		return nil, nil, fmt.Errorf("%w: prelude: %w", ErrMalformedResponse, err)
	}
	if p.StatusCode == 0 {
		p.StatusCode = http.StatusOK
	}
	if p.StatusCode < 200 || p.StatusCode > 599 { // not 1xx: see newResponse
		return nil, nil, fmt.Errorf("%w: statusCode %d", ErrMalformedResponse, p.StatusCode)
	}
	return p, br, nil
}

// WriteStream writes an HTTP-integration stream to w: the status and
// headers from its prelude, then the body as it arrives, flushed after each
// read. When the prelude is malformed it writes nothing and returns an
// error wrapping ErrMalformedResponse, so the caller can still answer 502;
// any later error is the body's and the response is already under way.
func WriteStream(w http.ResponseWriter, stream io.Reader) error {
	p, body, err := ReadPrelude(stream)
	if err != nil {
		return err
	}
	h := w.Header()
	for k, vs := range p.Header() {
		h[k] = append(h[k], vs...)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	w.WriteHeader(p.StatusCode)
	return copyFlushing(w, body)
}

// copyFlushing copies body to w, flushing after each read so every chunk
// reaches the client as it comes.
func copyFlushing(w http.ResponseWriter, body io.Reader) error {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing the response body: %w", werr)
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the response stream: %w", err)
		}
	}
}
