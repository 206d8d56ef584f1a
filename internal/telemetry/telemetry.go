// Package telemetry serves the Lambda Telemetry API
// (PUT /2022-07-01/telemetry) and the legacy Logs API
// (PUT /2020-08-15/logs) of one execution environment, and delivers the
// platform's events and the function's and extensions' log lines to each
// subscriber in batches, as its buffering settings ask, over HTTP or TCP.
package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Buffering bounds and defaults, as documented for the Telemetry API.
const (
	MinItems, MaxItems, DefaultItems       = 1000, 10000, 1000
	MinBytes, MaxBytes, DefaultBytes       = 262144, 1048576, 262144
	MinTimeoutMs, MaxTimeoutMs, DefTimeout = 25, 30000, 1000
)

// SandboxHost is the name extensions give for themselves in destination
// URIs; it resolves to the environment, here the loopback address.
const SandboxHost = "sandbox.localdomain"

// Event is one telemetry event.
type Event struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Record any    `json:"record"`
}

// Hub keeps the subscriptions of one environment.
type Hub struct {
	log    *slog.Logger
	lookup func(id string) (name string, ok bool)
	client *http.Client

	mu   sync.Mutex
	subs map[string]*subscriber // by extension identifier
}

// NewHub returns a hub. lookup resolves an extension identifier to its name.
func NewHub(lookup func(id string) (string, bool), log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, resolveSandbox(addr))
		},
		MaxIdleConnsPerHost: 4,
	}
	return &Hub{log: log, lookup: lookup, subs: map[string]*subscriber{},
		client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

func resolveSandbox(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && strings.EqualFold(host, SandboxHost) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// ServeHTTP implements the subscribe calls of both APIs.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || (r.URL.Path != "/2022-07-01/telemetry" && r.URL.Path != "/2020-08-15/logs") {
		writeError(w, http.StatusNotFound, "InvalidRequest", "Unknown path "+r.URL.Path)
		return
	}
	id := r.Header.Get("Lambda-Extension-Identifier")
	name, ok := h.lookup(id)
	if !ok {
		writeError(w, http.StatusForbidden, "Extension.UnknownExtensionIdentifier", "Unknown extension identifier "+strconv.Quote(id))
		return
	}
	sub, err := parseSubscription(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationError", err.Error())
		return
	}
	sub.hub, sub.name = h, name
	sub.wake = make(chan struct{}, 1)
	sub.done = make(chan struct{})
	h.mu.Lock()
	if old := h.subs[id]; old != nil {
		old.close()
	}
	h.subs[id] = sub
	h.mu.Unlock()
	go sub.deliver()
	h.log.Info("telemetry subscription", "extension", name, "types", sub.types, "destination", sub.dest())
	h.Publish("platform.telemetrySubscription", map[string]any{"name": name, "state": "Subscribed", "types": sub.typeList})
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("OK"))
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Publish sends an event of type typ ("platform.start", "function",
// "extension", ...) to the subscribers of its category.
func (h *Hub) Publish(typ string, record any) {
	cat, _, _ := strings.Cut(typ, ".")
	ev := Event{Time: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), Type: typ, Record: record}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		if s.types[cat] {
			s.add(ev)
		}
	}
}

// Active reports whether anyone subscribed to category cat.
func (h *Hub) Active(cat string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		if s.types[cat] {
			return true
		}
	}
	return false
}

// Flush delivers what is buffered now, waiting at most until ctx ends.
func (h *Hub) Flush(ctx context.Context) {
	h.mu.Lock()
	subs := make([]*subscriber, 0, len(h.subs))
	for _, s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.flush(ctx)
	}
}

// Reset ends every subscription, after delivering what is buffered.
func (h *Hub) Reset(ctx context.Context) {
	h.Flush(ctx)
	h.mu.Lock()
	for id, s := range h.subs {
		s.close()
		delete(h.subs, id)
	}
	h.mu.Unlock()
}

type subscriber struct {
	hub      *Hub
	name     string
	types    map[string]bool
	typeList []string
	maxItems int
	maxBytes int
	timeout  time.Duration
	protocol string // HTTP or TCP
	uri      string
	port     int

	mu       sync.Mutex
	queue    []Event
	size     int // bytes queued, approximately
	first    time.Time
	dropped  int // records dropped since the last report
	dropSize int
	sending  bool // a batch taken from the queue is being delivered
	closed   bool
	wake     chan struct{}
	done     chan struct{}
}

func (s *subscriber) dest() string {
	if s.protocol == "TCP" {
		return "tcp:" + strconv.Itoa(s.port)
	}
	return s.uri
}

func parseSubscription(body io.Reader) (*subscriber, error) {
	var req struct {
		SchemaVersion string   `json:"schemaVersion"`
		Types         []string `json:"types"`
		Buffering     *struct {
			MaxItems  *int `json:"maxItems"`
			MaxBytes  *int `json:"maxBytes"`
			TimeoutMs *int `json:"timeoutMs"`
		} `json:"buffering"`
		Destination *struct {
			Protocol string `json:"protocol"`
			URI      string `json:"URI"`
			Port     int    `json:"port"`
		} `json:"destination"`
	}
	dec := json.NewDecoder(body)
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	s := &subscriber{types: map[string]bool{}, maxItems: DefaultItems, maxBytes: DefaultBytes, timeout: DefTimeout * time.Millisecond}
	if len(req.Types) == 0 {
		return nil, errors.New("types: at least one of platform, function, extension")
	}
	for _, t := range req.Types {
		if t != "platform" && t != "function" && t != "extension" {
			return nil, fmt.Errorf("types: unknown type %q", t)
		}
		s.types[t] = true
		s.typeList = append(s.typeList, t)
	}
	if b := req.Buffering; b != nil {
		check := func(name string, v *int, lo, hi int, dst *int) error {
			if v == nil {
				return nil
			}
			if *v < lo || *v > hi {
				return fmt.Errorf("buffering.%s: %d is out of range [%d, %d]", name, *v, lo, hi)
			}
			*dst = *v
			return nil
		}
		ms := DefTimeout
		if err := errors.Join(
			check("maxItems", b.MaxItems, MinItems, MaxItems, &s.maxItems),
			check("maxBytes", b.MaxBytes, MinBytes, MaxBytes, &s.maxBytes),
			check("timeoutMs", b.TimeoutMs, MinTimeoutMs, MaxTimeoutMs, &ms),
		); err != nil {
			return nil, err
		}
		s.timeout = time.Duration(ms) * time.Millisecond
	}
	d := req.Destination
	if d == nil {
		return nil, errors.New("destination: required")
	}
	s.protocol = strings.ToUpper(d.Protocol)
	switch s.protocol {
	case "HTTP":
		u, err := url.Parse(d.URI)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("destination.URI: %q is not an http URL", d.URI)
		}
		s.uri = d.URI
	case "TCP":
		if d.Port < 1 || d.Port > 65535 {
			return nil, fmt.Errorf("destination.port: %d is not a port", d.Port)
		}
		s.port = d.Port
	default:
		return nil, fmt.Errorf("destination.protocol: %q is not HTTP or TCP", d.Protocol)
	}
	return s, nil
}

// maxQueued is how far a subscriber may fall behind before records are
// dropped and reported with platform.logsDropped.
func (s *subscriber) maxQueued() int { return 10 * s.maxItems }

func (s *subscriber) add(ev Event) {
	size := approxSize(ev)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.maxQueued() || s.size+size > 10*s.maxBytes {
		s.dropped++
		s.dropSize += size
		s.mu.Unlock()
		return
	}
	if len(s.queue) == 0 {
		s.first = time.Now()
	}
	s.queue = append(s.queue, ev)
	s.size += size
	// Wake the deliverer for the first record of a batch or a full one;
	// decided under the lock, which take also holds.
	wake := len(s.queue) == 1 || len(s.queue) >= s.maxItems || s.size >= s.maxBytes
	s.mu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func approxSize(ev Event) int {
	switch r := ev.Record.(type) {
	case string:
		return len(r) + 64
	default:
		return 256
	}
}

// take removes the next batch, and a logsDropped event when records were
// dropped.
func (s *subscriber) take() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var batch []Event
	if s.dropped > 0 {
		batch = append(batch, Event{Time: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), Type: "platform.logsDropped",
			Record: map[string]any{"reason": "Some logs were dropped because the subscriber could not keep up", "droppedRecords": s.dropped, "droppedBytes": s.dropSize}})
		s.dropped, s.dropSize = 0, 0
	}
	n := len(s.queue)
	if n > s.maxItems {
		n = s.maxItems
	}
	batch = append(batch, s.queue[:n]...)
	s.queue = append([]Event(nil), s.queue[n:]...)
	s.size = 0
	for _, ev := range s.queue {
		s.size += approxSize(ev)
	}
	if len(s.queue) > 0 {
		s.first = time.Now()
	}
	s.sending = len(batch) > 0
	return batch
}

// deliver sends batches when one is full or the oldest event has waited
// the buffering timeout.
func (s *subscriber) deliver() {
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		n, size, first, closed := len(s.queue), s.size, s.first, s.closed
		s.mu.Unlock()
		if closed {
			close(s.done)
			return
		}
		if n > 0 && (n >= s.maxItems || size >= s.maxBytes || time.Since(first) >= s.timeout) {
			s.send(&conn, s.take())
			s.mu.Lock()
			s.sending = false
			s.mu.Unlock()
			continue
		}
		wait := time.Hour
		if n > 0 {
			wait = s.timeout - time.Since(first)
		}
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (s *subscriber) send(conn *net.Conn, batch []Event) {
	if len(batch) == 0 {
		return
	}
	var err error
	if s.protocol == "TCP" {
		err = s.sendTCP(conn, batch)
	} else {
		err = s.sendHTTP(batch)
	}
	if err != nil {
		s.hub.log.Warn("telemetry delivery failed", "extension", s.name, "destination", s.dest(), "events", len(batch), "error", err)
		return
	}
}

func (s *subscriber) sendHTTP(batch []Event) error {
	b, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	resp, err := s.hub.client.Post(s.uri, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("destination answered %s", resp.Status)
	}
	return nil
}

func (s *subscriber) sendTCP(conn *net.Conn, batch []Event) error {
	if *conn == nil {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), 2*time.Second)
		if err != nil {
			return err
		}
		*conn = c
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one JSON object a line
	for _, ev := range batch {
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	_ = (*conn).SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := (*conn).Write(buf.Bytes()); err != nil {
		(*conn).Close()
		*conn = nil
		return err
	}
	return nil
}

// flush sends everything queued, batch after batch without waiting for
// the buffering timeout, until all is delivered or ctx ends.
func (s *subscriber) flush(ctx context.Context) {
	for {
		s.mu.Lock()
		queued := len(s.queue) > 0 || s.dropped > 0
		if queued {
			s.first = time.Time{} // due now
		}
		busy := queued || s.sending
		s.mu.Unlock()
		if !busy {
			return
		}
		select {
		case s.wake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
