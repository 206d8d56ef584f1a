package httpfront

import (
	"net/http"
	"strings"
)

// endToEnd returns h without its hop-by-hop fields (RFC 9110 §7.6.1):
// Connection and the fields it names, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization and
// the obsolete Proxy-Connection. They describe one connection, so a front
// consumes them and passes neither a client's to the function nor a
// function's to the client. h itself is left as it is.
func endToEnd(h http.Header) http.Header {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for token := range strings.SplitSeq(v, ",") {
			if token = strings.TrimSpace(token); token != "" {
				named[http.CanonicalHeaderKey(token)] = true
			}
		}
	}
	out := make(http.Header, len(h))
	for name, values := range h {
		key := http.CanonicalHeaderKey(name)
		if isHopByHop(key) || named[key] {
			continue
		}
		out[name] = values
	}
	return out
}

// isHopByHop reports whether a canonical header name is always hop-by-hop.
func isHopByHop(key string) bool {
	switch key {
	case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection":
		return true
	}
	return false
}
