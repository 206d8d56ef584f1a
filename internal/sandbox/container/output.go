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
	f    *os.File
	done chan bool // true once sent
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
	_, _, err := c.WriteMsgUnix([]byte{'f'}, unix.UnixRights(int(h.f.Fd())), nil)
	if err == nil {
		o.handed.Add(1)
	}
	h.done <- err == nil
}

// expect registers f for a helper to fetch with the token it returns;
// cancel stops waiting.
func (o *outputs) expect(f *os.File) (token string, sent <-chan bool, cancel func()) {
	b := make([]byte, tokenLen/2)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	h := &handoff{f: f, done: make(chan bool, 1)}
	o.mu.Lock()
	o.waiting[token] = h
	o.mu.Unlock()
	return token, h.done, func() {
		o.mu.Lock()
		delete(o.waiting, token)
		o.mu.Unlock()
	}
}

func (o *outputs) close() error {
	err := o.ln.Close()
	os.RemoveAll(o.dir)
	return err
}

const tokenLen = 32 // hex digits

// fetchOutput is the helper's side: it connects to the socket in
// OutputDir, sends token, and returns the file it receives.
func fetchOutput(token string) (*os.File, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: OutputDir + "/sock", Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
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
