package httpfront

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Meta is what the front knows of a request beyond the request itself; it
// fills the event's requestContext. The zero value of each field is its
// documented default.
type Meta struct {
	// RequestID is requestContext.requestId; for function URLs it is also
	// the Lambda request id.
	RequestID string
	// Time is when the request arrived; default: now.
	Time time.Time
	// AccountID is the account that owns the URL or API; default
	// DefaultAccountID.
	AccountID string
	// APIID is the URL id or the API id.
	APIID string
	// DomainName is the URL's or API's domain name; domainPrefix is its
	// first label. Default: APIID.
	DomainName string
	// Stage is the API stage; default "$default".
	Stage string
	// StageVariables are the stage's variables; default none.
	StageVariables map[string]string
	// SourceIP is the client's address; default: the host part of the
	// request's RemoteAddr.
	SourceIP string
	// TraceID is the X-Ray trace header the front adds as x-amzn-trace-id
	// when the request has none; default: none is added.
	TraceID string
}

// DefaultAccountID is the account id used when none is configured.
const DefaultAccountID = "123456789012"

// timeLayout is API Gateway's requestContext time format.
const timeLayout = "02/Jan/2006:15:04:05 -0700"

func (m Meta) withDefaults(r *http.Request) Meta {
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = m.Time.UTC()
	if m.AccountID == "" {
		m.AccountID = DefaultAccountID
	}
	if m.DomainName == "" {
		m.DomainName = m.APIID
	}
	if m.Stage == "" {
		m.Stage = "$default"
	}
	if m.SourceIP == "" {
		m.SourceIP = r.RemoteAddr
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			m.SourceIP = host
		}
	}
	return m
}

func (m Meta) domainPrefix() string {
	prefix, _, _ := strings.Cut(m.DomainName, ".")
	return prefix
}

// FunctionURLEvent is the payload format 2.0 event a function URL sends for
// r, whose body (already read) is body. It is an HTTP API event whose
// routeKey and stage are "$default": events.LambdaFunctionURLRequest has
// no field for the routeKey Lambda sends, and decodes the event all the
// same.
func FunctionURLEvent(r *http.Request, body []byte, m Meta) *events.APIGatewayV2HTTPRequest {
	m.Stage, m.StageVariables = "$default", nil
	return HTTPAPIEvent(r, body, &Match{Route: &Route{Path: DefaultRoute}}, m)
}

// HTTPAPIEvent is the payload format 2.0 event an HTTP API sends for r,
// whose body (already read) is body, to the route in match.
func HTTPAPIEvent(r *http.Request, body []byte, match *Match, m Meta) *events.APIGatewayV2HTTPRequest {
	m = m.withDefaults(r)
	headers, cookies := v2Headers(r, m)
	text, b64 := encodeBody(r.Header.Get("Content-Type"), body)
	key := match.Route.Key()
	return &events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              key,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: v2Query(r.URL.RawQuery),
		PathParameters:        nilIfEmpty(match.Params),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     key,
			AccountID:    m.AccountID,
			Stage:        m.Stage,
			RequestID:    m.RequestID,
			APIID:        m.APIID,
			DomainName:   m.DomainName,
			DomainPrefix: m.domainPrefix(),
			Time:         m.Time.Format(timeLayout),
			TimeEpoch:    m.Time.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  m.SourceIP,
				UserAgent: r.UserAgent(),
			},
		},
		StageVariables:  nilIfEmpty(m.StageVariables),
		Body:            text,
		IsBase64Encoded: b64,
	}
}

// RESTEvent is the payload format 1.0 event a REST API sends for r, whose
// body (already read) is body, to the resource in match.
func RESTEvent(r *http.Request, body []byte, match *Match, m Meta) *events.APIGatewayProxyRequest {
	m = m.withDefaults(r)
	headers, multi := v1Headers(r, m)
	query, multiQuery := v1Query(r.URL.RawQuery)
	text, b64 := encodeBody(r.Header.Get("Content-Type"), body)
	ctxPath := r.URL.Path
	if m.Stage != "$default" {
		ctxPath = "/" + m.Stage + ctxPath
	}
	return &events.APIGatewayProxyRequest{
		Resource:                        match.Route.Path,
		Path:                            r.URL.Path,
		HTTPMethod:                      r.Method,
		Headers:                         headers,
		MultiValueHeaders:               multi,
		QueryStringParameters:           query,
		MultiValueQueryStringParameters: multiQuery,
		PathParameters:                  nilIfEmpty(match.Params),
		StageVariables:                  nilIfEmpty(m.StageVariables),
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID:         m.AccountID,
			ResourceID:        shortID(match.Route.Key(), 6),
			Stage:             m.Stage,
			DomainName:        m.DomainName,
			DomainPrefix:      m.domainPrefix(),
			RequestID:         m.RequestID,
			ExtendedRequestID: m.RequestID,
			Protocol:          r.Proto,
			Identity: events.APIGatewayRequestIdentity{
				SourceIP:  m.SourceIP,
				UserAgent: r.UserAgent(),
			},
			ResourcePath:     match.Route.Path,
			Path:             ctxPath,
			HTTPMethod:       r.Method,
			RequestTime:      m.Time.Format(timeLayout),
			RequestTimeEpoch: m.Time.UnixMilli(),
			APIID:            m.APIID,
		},
		Body:            text,
		IsBase64Encoded: b64,
	}
}

// MarshalEvent encodes an event as Lambda sends it: compact, without
// HTML escaping, and without the empty requestContext.authentication that
// aws-lambda-go's APIGatewayV2HTTPRequest always encodes (real events carry
// it only for mutual TLS).
func MarshalEvent(event any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(event); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if _, ok := event.(*events.APIGatewayV2HTTPRequest); ok {
		// A raw quote cannot occur inside a JSON string, so this
		// sequence is only ever the field itself.
		b = bytes.Replace(b, emptyAuthentication, nil, 1)
	}
	return b, nil
}

// emptyAuthentication is the encoding of a zero
// requestContext.authentication, with its leading comma.
var emptyAuthentication = func() []byte {
	b, _ := json.Marshal(struct {
		A events.APIGatewayV2HTTPRequestContextAuthentication `json:"authentication"`
	}{})
	return append([]byte(","), b[1:len(b)-1]...)
}()

// v2Headers gives payload 2.0 headers: the end-to-end ones (see
// endToEnd), names lower-cased, repeated values joined with commas, the
// Cookie header moved to cookies, and the headers the front itself adds.
func v2Headers(r *http.Request, m Meta) (map[string]string, []string) {
	in := endToEnd(r.Header)
	headers := make(map[string]string, len(in)+4)
	var cookies []string
	for name, values := range in {
		name = strings.ToLower(name)
		if name == "cookie" {
			for _, v := range values {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		if old, ok := headers[name]; ok {
			values = append([]string{old}, values...)
		}
		headers[name] = strings.Join(values, ",")
	}
	for name, v := range added(r, in, m) {
		headers[strings.ToLower(name)] = v
	}
	return headers, cookies
}

// v1Headers gives payload 1.0 headers: the last value of each end-to-end
// header (see endToEnd), and all of them.
func v1Headers(r *http.Request, m Meta) (map[string]string, map[string][]string) {
	in := endToEnd(r.Header)
	headers := make(map[string]string, len(in)+4)
	multi := make(map[string][]string, len(in)+4)
	for name, values := range in {
		if len(values) == 0 {
			continue
		}
		headers[name] = values[len(values)-1]
		multi[name] = append([]string(nil), values...)
	}
	for name, v := range added(r, in, m) {
		headers[name] = v
		multi[name] = []string{v}
	}
	return headers, multi
}

// added are the headers the front adds to (or replaces in) the request,
// whose end-to-end headers are in: Host, which net/http keeps out of
// r.Header, and the X-Forwarded-* and X-Amzn-Trace-Id headers Lambda and
// API Gateway add.
func added(r *http.Request, in http.Header, m Meta) map[string]string {
	h := map[string]string{}
	if r.Host != "" {
		h["Host"] = r.Host
	}
	xff := m.SourceIP
	if prev := in.Values("X-Forwarded-For"); len(prev) > 0 {
		xff = strings.Join(prev, ", ") + ", " + m.SourceIP
	}
	h["X-Forwarded-For"] = xff
	proto, port := "http", "80"
	if r.TLS != nil {
		proto, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil && p != "" {
		port = p
	}
	h["X-Forwarded-Proto"] = proto
	h["X-Forwarded-Port"] = port
	if m.TraceID != "" && in.Get("X-Amzn-Trace-Id") == "" {
		h["X-Amzn-Trace-Id"] = m.TraceID
	}
	return h
}

// v2Query gives payload 2.0 query parameters: repeated values joined with
// commas; nil when there are none.
func v2Query(raw string) map[string]string {
	values := parseQuery(raw)
	if len(values) == 0 {
		return nil
	}
	q := make(map[string]string, len(values))
	for k, vs := range values {
		q[k] = strings.Join(vs, ",")
	}
	return q
}

// v1Query gives payload 1.0 query parameters: the last value of each, and
// all of them; both nil when there are none.
func v1Query(raw string) (map[string]string, map[string][]string) {
	values := parseQuery(raw)
	if len(values) == 0 {
		return nil, nil
	}
	q := make(map[string]string, len(values))
	for k, vs := range values {
		q[k] = vs[len(vs)-1]
	}
	return q, values
}

// parseQuery splits a raw query into its parameters: pairs separated by
// "&" only, names and values decoded. A ";" is data (url.ParseQuery would
// drop the whole pair); a pair whose escapes do not decode is left out.
func parseQuery(raw string) map[string][]string {
	values := map[string][]string{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		values[k] = append(values[k], v)
	}
	return values
}

// encodeBody gives the event's body: the text itself, or base64 when the
// content type is not a text type or the bytes are not valid UTF-8 (JSON
// strings cannot carry them). Without a content type, the body is text
// when it looks like text.
func encodeBody(contentType string, body []byte) (string, bool) {
	if len(body) == 0 {
		return "", false
	}
	text := isText(contentType)
	if contentType == "" {
		text = looksLikeText(body)
	}
	if text && utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

// looksLikeText reports whether b is UTF-8 without control characters
// other than tab, newline and carriage return.
func looksLikeText(b []byte) bool {
	for _, r := range string(b) {
		if r == utf8.RuneError || (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return false
		}
	}
	return true
}

// isText reports whether a content type is a text type.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	typ, sub, _ := strings.Cut(mt, "/")
	switch {
	case typ == "text":
		return true
	case typ != "application":
		return false
	case sub == "json", sub == "xml", sub == "javascript", sub == "ecmascript",
		sub == "yaml", sub == "x-yaml", sub == "graphql",
		strings.HasSuffix(sub, "+json"), strings.HasSuffix(sub, "+xml"):
		return true
	}
	return false
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// sortedKeys is used where output order must be stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
