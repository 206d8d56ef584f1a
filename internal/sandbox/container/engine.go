// Package container runs execution environments as containers of a
// function's image, through the Docker Engine API that Docker and Podman
// (`podman system service`) serve.
//
// Each environment is one container. Its first process is lambdabox's
// helper (a static lambdabox bound in read-only at HelperPath, so that
// images need no shell): it reports the extensions it finds and whether
// the bootstrap can be executed, then waits on its standard input. The
// extensions and the runtime are started in the container with the exec
// API, each through the helper, which fetches the process's output file
// from lambdabox over a Unix socket bound into the container (SCM_RIGHTS)
// and then becomes the process: the process writes to the environment's
// log pipe as a host process does, and the engine relays nothing but its
// exit. The runtime starts only once Spec.BeforeRuntime has let it.
//
// The container uses the host's network: AWS_LAMBDA_RUNTIME_API=
// 127.0.0.1:port reaches lambdabox as it does for the process driver. As
// on Lambda, the root file system is read-only, /tmp is a tmpfs, the
// processes run as a non-root user, and memory is limited to
// Spec.MemoryLimit with swap off; the container's memory cgroup gives
// the peak and tells an OOM kill.
//
// Containers are labelled with their owner (dev.lambdabox.owner: host,
// boot, pid and start time of the lambdabox that made them) and removed
// when their environment ends, when the Engine closes, or, once their
// owner has died, by the next Connect. The owner holds the helper's
// standard input: if the owner or the engine's service dies, the helper
// reads end-of-file, the container exits, and the engine removes it
// (AutoRemove).
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// Labels set on every container the package creates.
const (
	LabelOwner    = "dev.lambdabox.owner"
	LabelFunction = "dev.lambdabox.function"
)

// Config configures Connect.
type Config struct {
	// Host is the engine's address, such as unix:///run/podman/podman.sock.
	// Empty means $DOCKER_HOST, else Podman's root socket
	// (/run/podman/podman.sock), else the user's Podman socket
	// ($XDG_RUNTIME_DIR/podman/podman.sock), else Docker's
	// (/var/run/docker.sock), whichever exists first.
	Host string
	// Helper is the host path of the statically linked executable that is
	// bound into every container as its first process and starts the
	// others (see RunHelper); default this executable, which must then be
	// static and call RunHelper first in main.
	Helper string
	// Log receives diagnostics; nil discards them.
	Log *slog.Logger
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Host != "" && !strings.Contains(c.Host, "://") {
		return fmt.Errorf("engine host %q: want a URL such as unix:///run/podman/podman.sock", c.Host)
	}
	return nil
}

// host returns the engine address that c means.
func (c Config) host() string {
	if c.Host != "" {
		return c.Host
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	candidates := []string{"/run/podman/podman.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, d+"/podman/podman.sock")
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return "unix://" + p
		}
	}
	return "unix:///var/run/docker.sock"
}

// ErrNoEngine is wrapped by Connect's error when no engine answers.
var ErrNoEngine = errors.New("no container engine answers")

// Engine is a connection to a container engine. It owns every container
// its drivers create.
type Engine struct {
	cli    *client.Client
	log    *slog.Logger
	host   string
	helper string
	podman bool
	owner  string // this process's dev.lambdabox.owner label
	out    *outputs

	mu     sync.Mutex
	live   map[string]struct{} // containers created and not yet removed
	closed bool
}

// Connect connects to the engine that cfg names, checks that it answers,
// and removes the containers that a lambdabox which has since died left
// behind.
func Connect(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	helper := cfg.Helper
	if helper == "" {
		var err error
		if helper, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding this executable, the containers' helper: %w", err)
		}
	}
	if err := staticBinary(helper); err != nil {
		return nil, fmt.Errorf("the containers' helper: %w", err)
	}
	host := cfg.host()
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("container engine at %s: %w", host, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w at %s: %w", ErrNoEngine, host, err)
	}
	v, err := cli.ServerVersion(pctx, client.ServerVersionOptions{})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("asking the container engine at %s its version: %w", host, err)
	}
	self, err := currentOwner()
	if err != nil {
		cli.Close()
		return nil, err
	}
	e := &Engine{
		cli:    cli,
		host:   host,
		helper: helper,
		podman: strings.Contains(strings.ToLower(v.Platform.Name), "podman"),
		owner:  self.String(),
		live:   map[string]struct{}{},
	}
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c.Name), "podman") {
			e.podman = true
		}
	}
	if e.out, err = newOutputs(); err != nil {
		cli.Close()
		return nil, fmt.Errorf("listening for the containers' output: %w", err)
	}
	e.log = log.With("driver", "container", "engine", e.Kind(), "host", host)
	e.log.Debug("connected", "version", v.Version, "api", cli.ClientVersion())
	if err := e.removeStale(ctx); err != nil {
		e.log.Warn("removing containers left by a lambdabox that died", "error", err)
	}
	return e, nil
}

// Kind is "podman" or "docker", as detected.
func (e *Engine) Kind() string {
	if e.podman {
		return "podman"
	}
	return "docker"
}

// Host is the engine's address.
func (e *Engine) Host() string { return e.host }

// removeStale removes the labelled containers whose owner has died.
func (e *Engine) removeStale(ctx context.Context) error {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelOwner),
	})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		o, ok := parseOwner(c.Labels[LabelOwner])
		if !ok || o.alive() {
			continue
		}
		e.log.Info("removing a container left by a lambdabox that died", "container", shortID(c.ID), "owner", c.Labels[LabelOwner])
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", shortID(c.ID), err))
		}
	}
	return errors.Join(errs...)
}

// track records a container the engine must remove; false once closed.
func (e *Engine) track(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.live[id] = struct{}{}
	return true
}

// remove removes container id, forcibly, and forgets it once the engine
// confirms it is gone. A container the engine could not remove stays
// tracked, for Close to try again.
func (e *Engine) remove(ctx context.Context, id string) error {
	_, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing container %s: %w", shortID(id), err)
	}
	e.mu.Lock()
	delete(e.live, id)
	e.mu.Unlock()
	return nil
}

// Close removes every container the engine's drivers created and still
// run, and closes the connection.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	ids := make([]string, 0, len(e.live))
	for id := range e.live {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := e.remove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, e.out.close(), e.cli.Close())...)
}

// isNotFound reports whether err says the container (or image) does not
// exist; Podman's compatible API answers 404 with its own message.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	type notFound interface{ NotFound() }
	var nf notFound
	if errors.As(err, &nf) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such container") || strings.Contains(s, "no such image") ||
		strings.Contains(s, "not found") || strings.Contains(s, "not known")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// owner identifies a running lambdabox process: its host, the kernel's
// boot, its pid and its start time, so that a recycled pid is not taken
// for it.
type owner struct {
	host, boot string
	pid        int
	start      uint64
}

func (o owner) String() string {
	return o.host + "/" + o.boot + "/" + strconv.Itoa(o.pid) + "/" + strconv.FormatUint(o.start, 10)
}

func parseOwner(s string) (owner, bool) {
	f := strings.Split(s, "/")
	if len(f) != 4 {
		return owner{}, false
	}
	pid, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[3], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return owner{}, false
	}
	return owner{host: f[0], boot: f[1], pid: pid, start: start}, true
}

func currentOwner() (owner, error) {
	host, _ := os.Hostname()
	boot, err := bootID()
	if err != nil {
		return owner{}, err
	}
	start, err := startTime(os.Getpid())
	if err != nil {
		return owner{}, fmt.Errorf("reading this process's start time: %w", err)
	}
	return owner{host: strings.ReplaceAll(host, "/", "_"), boot: boot, pid: os.Getpid(), start: start}, nil
}

// alive reports whether o still runs. An owner on another host is taken
// to be alive: its containers are not this process's to judge.
func (o owner) alive() bool {
	self, err := currentOwner()
	if err != nil || o.host != self.host {
		return true
	}
	if o.boot != self.boot {
		return false
	}
	start, err := startTime(o.pid)
	return err == nil && start == o.start
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// startTime is field 22 of /proc/pid/stat, in clock ticks since boot.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}
