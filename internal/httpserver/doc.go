// Package httpserver serves HTTP/1.1 with the limits a server facing
// hostile or careless clients needs, for every lambdabox server: the Invoke
// API, the function URL and API Gateway fronts and each environment's
// Runtime API.
//
// A Server is a net/http server with:
//
//   - read-header and idle timeouts, so a client that connects and says
//     nothing, or keeps an idle keep-alive connection, does not hold it for
//     ever;
//   - a body-read timeout, set per request around the reading of its body
//     and cleared once the body is read, so a slow body is cut but a long
//     handler (a 15-minute invoke) is not: http.Server.ReadTimeout would
//     also expire during the handler, fail net/http's background read and
//     cancel the request's context;
//   - a cap on connections (see ConnShare), at which the oldest connection
//     that is idle or has not sent a request yet is closed to make room,
//     so idle clients cannot lock a new one out;
//   - rejection of request-smuggling framing: a request head with both
//     Content-Length and Transfer-Encoding, or Transfer-Encoding before
//     HTTP/1.1, gets 400 and the connection is closed (RFC 9112 §6.1).
//     net/http drops Content-Length when Transfer-Encoding is present, so
//     a handler cannot see it; each connection's bytes are followed as
//     net/http reads them, by a scanner that frames requests as net/http
//     does, and the handler wrapper looks up its request's verdict.
package httpserver
