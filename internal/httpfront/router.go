package httpfront

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultRoute is the path of the HTTP API route that takes every request
// no other route matches.
const DefaultRoute = "$default"

// Route is one API Gateway route: a method and a resource path template,
// and the function it integrates with.
type Route struct {
	// Method is an HTTP method, or ANY for every method; default ANY.
	Method string
	// Path is the resource path template: literal segments, {name} for one
	// non-empty segment, and a last {name+} for one or more segments (a
	// greedy path variable); or DefaultRoute.
	Path string
	// Version is the payload format version: "2.0" (HTTP APIs) or "1.0"
	// (REST APIs, and HTTP APIs configured for it); default "2.0".
	Version string
	// Function is invoked for the route; only NewAPIGateway needs it.
	Function Function
	// FunctionARN is the invoked function's ARN, as the runtime sees it;
	// only NewAPIGateway needs it.
	FunctionARN string
}

// Key is the route key as HTTP API events carry it: "GET /items/{id}",
// "ANY /{proxy+}" or "$default".
func (r *Route) Key() string {
	if r.Path == DefaultRoute {
		return DefaultRoute
	}
	return r.method() + " " + r.Path
}

func (r *Route) method() string {
	if r.Method == "" {
		return "ANY"
	}
	return r.Method
}

// Match is a request matched to a route.
type Match struct {
	Route *Route
	// Params are the path parameters, URL-decoded; nil when the route has
	// none.
	Params map[string]string
}

// Router matches requests to API Gateway routes by their specificity, as
// API Gateway does: segment by segment from the left, a literal beats a
// {name}, which beats a greedy {name+}; among routes of the same shape a
// route for the request's method beats ANY; DefaultRoute comes last.
type Router struct {
	routes []compiled
	def    *Route
}

type compiled struct {
	route *Route
	segs  []segment
}

type segment struct {
	literal string // when name is empty
	name    string
	greedy  bool
}

// rank orders segment kinds by specificity.
func (s segment) rank() int {
	switch {
	case s.name == "":
		return 2
	case !s.greedy:
		return 1
	}
	return 0
}

// ErrRoute is wrapped by the errors NewRouter returns for invalid routes.
var ErrRoute = errors.New("invalid route")

// NewRouter checks and compiles routes. The Router refers to the Routes in
// the slice, which the caller must not change afterwards.
func NewRouter(routes []Route) (*Router, error) {
	rt := &Router{}
	seen := map[string]bool{}
	for i := range routes {
		r := &routes[i]
		if r.Version != "" && r.Version != "1.0" && r.Version != "2.0" {
			return nil, fmt.Errorf("%w %q: payload format version %q is not 1.0 or 2.0", ErrRoute, r.Key(), r.Version)
		}
		if r.Path == DefaultRoute {
			if rt.def != nil {
				return nil, fmt.Errorf("%w: two %s routes", ErrRoute, DefaultRoute)
			}
			rt.def = r
			continue
		}
		if !validMethod(r.method()) {
			return nil, fmt.Errorf("%w %q: unknown method", ErrRoute, r.Key())
		}
		segs, err := parseTemplate(r.Path)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrRoute, r.Key(), err)
		}
		// Routes with the same method and shape would be ambiguous.
		shape := r.method() + " " + shapeOf(segs)
		if seen[shape] {
			return nil, fmt.Errorf("%w %q: another route has the same method and path", ErrRoute, r.Key())
		}
		seen[shape] = true
		rt.routes = append(rt.routes, compiled{route: r, segs: segs})
	}
	return rt, nil
}

func validMethod(m string) bool {
	switch m {
	case "ANY", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

func parseTemplate(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("path must start with /")
	}
	if path == "/" {
		return nil, nil
	}
	parts := strings.Split(path[1:], "/")
	segs := make([]segment, 0, len(parts))
	names := map[string]bool{}
	for i, p := range parts {
		if p == "" {
			return nil, errors.New("empty path segment")
		}
		if !strings.HasPrefix(p, "{") && !strings.HasSuffix(p, "}") {
			if strings.ContainsAny(p, "{}") {
				return nil, fmt.Errorf("segment %q mixes text and a parameter", p)
			}
			segs = append(segs, segment{literal: p})
			continue
		}
		if !strings.HasPrefix(p, "{") || !strings.HasSuffix(p, "}") {
			return nil, fmt.Errorf("segment %q mixes text and a parameter", p)
		}
		name := p[1 : len(p)-1]
		greedy := strings.HasSuffix(name, "+")
		name = strings.TrimSuffix(name, "+")
		switch {
		case name == "" || strings.ContainsAny(name, "{}+"):
			return nil, fmt.Errorf("bad parameter %q", p)
		case names[name]:
			return nil, fmt.Errorf("parameter %q appears twice", name)
		case greedy && i != len(parts)-1:
			return nil, fmt.Errorf("greedy parameter %q must be the last segment", p)
		}
		names[name] = true
		segs = append(segs, segment{name: name, greedy: greedy})
	}
	return segs, nil
}

// shapeOf is the template with parameter names erased.
func shapeOf(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		switch {
		case s.name == "":
			b.WriteString(s.literal)
		case s.greedy:
			b.WriteString("{+}")
		default:
			b.WriteString("{}")
		}
	}
	return b.String()
}

// Match finds the route for a request's method and escaped path (as
// url.URL.EscapedPath gives it). It reports false when no route matches.
func (rt *Router) Match(method, escapedPath string) (*Match, bool) {
	parts, ok := splitPath(escapedPath)
	if !ok {
		return rt.matchDefault()
	}
	var best *compiled
	var bestParams map[string]string
	for i := range rt.routes {
		c := &rt.routes[i]
		m := c.route.method()
		if m != "ANY" && m != method {
			continue
		}
		params, ok := c.match(parts)
		if !ok {
			continue
		}
		if best == nil || c.beats(best) {
			best, bestParams = c, params
		}
	}
	if best == nil {
		return rt.matchDefault()
	}
	return &Match{Route: best.route, Params: bestParams}, true
}

func (rt *Router) matchDefault() (*Match, bool) {
	if rt.def == nil {
		return nil, false
	}
	return &Match{Route: rt.def}, true
}

// splitPath splits an escaped path into its segments, still escaped.
func splitPath(p string) ([]string, bool) {
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	if p == "/" {
		return nil, true
	}
	return strings.Split(p[1:], "/"), true
}

func (c *compiled) match(parts []string) (map[string]string, bool) {
	var params map[string]string
	set := func(name, escaped string) bool {
		v, err := url.PathUnescape(escaped)
		if err != nil || v == "" {
			return false
		}
		if params == nil {
			params = map[string]string{}
		}
		params[name] = v
		return true
	}
	for i, s := range c.segs {
		if i >= len(parts) {
			return nil, false
		}
		switch {
		case s.greedy:
			return params, set(s.name, strings.Join(parts[i:], "/"))
		case s.name != "":
			if !set(s.name, parts[i]) {
				return nil, false
			}
		default:
			v, err := url.PathUnescape(parts[i])
			if err != nil || v != s.literal {
				return nil, false
			}
		}
	}
	return params, len(parts) == len(c.segs)
}

// beats reports whether c is more specific than d; both matched the same
// request.
func (c *compiled) beats(d *compiled) bool {
	for i := 0; i < len(c.segs) && i < len(d.segs); i++ {
		if a, b := c.segs[i].rank(), d.segs[i].rank(); a != b {
			return a > b
		}
	}
	if len(c.segs) != len(d.segs) {
		// One is a prefix of the other in shape; the longer one holds
		// more literal or single segments where the other's greedy
		// parameter starts.
		return len(c.segs) > len(d.segs)
	}
	return c.route.method() != "ANY" && d.route.method() == "ANY"
}
