package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// outputs hands each process its output file itself: the helper connects
// to a Unix socket bound into the container (OutputDir), sends the token
// it was given, and receives the file's descriptor (SCM_RIGHTS), which
// becomes the process's stdout and stderr. The process then writes to
// the environment's pipe as a host process does, and nothing relays its
// output.
type outputs struct {
	dir string // on the host, bound at OutputDir
	ln  *net.UnixListener

	mu      sync.Mutex
	waiting map[string]*handoff
	handed  atomic.Int64 // files handed over, for tests
}

// handoff is one process's output file, waiting for its helper.
type handoff struct {
	done chan handed

	mu     sync.Mutex // held while the file is sent, and to close it
	f      *os.File
	closed bool
}

// close closes the file, once it is not being sent.
func (h *handoff) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		h.f.Close()
	}
}

// send sends the file on c.
func (h *handoff) send(c *net.UnixConn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	_, _, err := c.WriteMsgUnix([]byte{'f'}, unix.UnixRights(int(h.f.Fd())), nil)
	return err
}

// handed is how a handoff went: sent, the helper has the file; execErr,
// when not empty, is why the helper then failed to execute the process.
type handed struct {
	sent    bool
	execErr string
}

// OutputDir is where the output socket's directory is bound in the
// containers.
const OutputDir = "/.lambdabox/output"

func newOutputs() (*outputs, error) {
	dir, err := os.MkdirTemp("", "lambdabox-output-")
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	_ = os.Chmod(sock, 0o777) // the containers' non-root user connects
	o := &outputs{dir: dir, ln: ln, waiting: map[string]*handoff{}}
	go o.serve()
	return o, nil
}

func (o *outputs) serve() {
	for {
		c, err := o.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go o.hello(c)
	}
}

// hello reads a connection's token and sends the file waiting for it.
func (o *outputs) hello(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, tokenLen+1)
	if _, err := io.ReadFull(c, b); err != nil || b[tokenLen] != '\n' {
		return
	}
	token := string(b[:tokenLen])
	o.mu.Lock()
	h, ok := o.waiting[token]
	delete(o.waiting, token)
	o.mu.Unlock()
	if !ok {
		return
	}
	if err := h.send(c); err != nil {
		h.done <- handed{}
		return
	}
	o.handed.Add(1)
	// The connection closes when the helper executes the process, or
	// carries why it could not.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, _ := io.ReadAll(io.LimitReader(c, 4096))
	h.done <- handed{sent: true, execErr: string(msg)}
}

// expect registers f for a helper to fetch with the token it returns;
// cancel stops waiting, and closeFile closes f (not while it is sent).
func (o *outputs) expect(f *os.File) (token string, result <-chan handed, cancel, closeFile func()) {
	b := make([]byte, tokenLen/2)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	h := &handoff{f: f, done: make(chan handed, 1)}
	o.mu.Lock()
	o.waiting[token] = h
	o.mu.Unlock()
	return token, h.done, func() {
		o.mu.Lock()
		delete(o.waiting, token)
		o.mu.Unlock()
	}, h.close
}

func (o *outputs) close() error {
	err := o.ln.Close()
	os.RemoveAll(o.dir)
	return err
}

const tokenLen = 32 // hex digits

// fetchOutput is the helper's side: it connects to the socket in
// OutputDir, sends token, and returns the file it receives, and the
// connection, left open (it closes on exec).
func fetchOutput(token string) (*os.File, *net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: OutputDir + "/sock", Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	f, err := receiveFile(c, token)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return f, c, nil
}

func receiveFile(c *net.UnixConn, token string) (*os.File, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(token + "\n")); err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("no file received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("no file received")
	}
	return os.NewFile(uintptr(fds[0]), "output"), nil
}
