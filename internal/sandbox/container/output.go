package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// outputs receives the processes' output straight from the helper (see
// OutputEnv), over loopback TCP: the containers share the host's network.
// Each process's connection starts with the token it was given.
type outputs struct {
	ln net.Listener

	mu      sync.Mutex
	waiting map[string]chan net.Conn
}

func newOutputs() (*outputs, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := &outputs{ln: ln, waiting: map[string]chan net.Conn{}}
	go o.serve()
	return o, nil
}

func (o *outputs) serve() {
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go o.hello(c)
	}
}

// hello reads a connection's token and hands it to whoever waits for it.
func (o *outputs) hello(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, tokenLen+1)
	_, err := io.ReadFull(c, b)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil || b[tokenLen] != '\n' {
		c.Close()
		return
	}
	token := string(b[:tokenLen])
	o.mu.Lock()
	ch, ok := o.waiting[token]
	delete(o.waiting, token)
	o.mu.Unlock()
	if !ok {
		c.Close()
		return
	}
	ch <- c
}

// expect returns a token and the channel its connection arrives on, and
// a func that stops waiting.
func (o *outputs) expect() (token string, conn <-chan net.Conn, cancel func()) {
	b := make([]byte, tokenLen/2)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	ch := make(chan net.Conn, 1)
	o.mu.Lock()
	o.waiting[token] = ch
	o.mu.Unlock()
	return token, ch, func() {
		o.mu.Lock()
		delete(o.waiting, token)
		o.mu.Unlock()
	}
}

func (o *outputs) close() error { return o.ln.Close() }

// addr is where the helper connects.
func (o *outputs) addr() string { return o.ln.Addr().String() }

const tokenLen = 32 // hex digits
