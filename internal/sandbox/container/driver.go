package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// Mount is a host directory bound into the function's containers.
type Mount struct {
	Source   string // the host directory
	Target   string // where the container sees it
	ReadOnly bool
}

// Function describes the containers of one function.
type Function struct {
	// Image is the function's image, by name or id; it must be in the
	// engine already (the driver pulls nothing).
	Image string
	// Mounts are bound into every container, such as the code at
	// /var/task, read-only, for a function built from a folder.
	Mounts []Mount
	// TmpfsMB is the size of /tmp, a tmpfs; default 512, as Lambda's
	// default ephemeral storage.
	TmpfsMB int
	// User runs every process, as uid:gid; default "993:990", a non-root
	// user, as Lambda's sbx_user1051 is.
	User string
	// Labels are added to the containers' own (dev.lambdabox.owner and
	// dev.lambdabox.function).
	Labels map[string]string
	// Name is the function's name, for labels and logs.
	Name string
}

// Driver runs environments of one function as containers. It implements
// sandbox.Driver and sandbox.Network.
//
// Spec.Path and Spec.Args: an empty Path runs the image's ENTRYPOINT
// followed by its CMD, or by Args when Args is not empty (a handler given
// as CMD, as Lambda's ImageConfig.Command does). A Path runs Path and Args
// instead. Paths (Path, Dir, ExtensionsDir) under a Mount's Source are
// seen at its Target; others are paths of the image. The runtime and the
// extensions get Spec.Env as their whole environment (the image's ENV
// below it).
//
// Once an environment has started, the driver prepares one container
// ahead for the next (created and started, nothing of the function running
// in it), so that later cold starts skip the container's creation.
type Driver struct {
	e   *Engine
	fn  Function
	log *slog.Logger

	imgMu  sync.Mutex
	imgOK  bool
	img    imageConfig
	imgErr error // ErrImageNotFound, once seen

	mu        sync.Mutex
	spare     *keeper // a started container, waiting for an environment
	spareKey  keeperKey
	preparing bool
	closed    bool
}

// Close removes the container the driver prepared ahead, and prepares no
// more. Environments already started run on until they end.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	k := d.spare
	d.spare, d.closed = nil, true
	d.mu.Unlock()
	if k == nil {
		return nil
	}
	return k.remove()
}

var (
	_ sandbox.Driver  = (*Driver)(nil)
	_ sandbox.Network = (*Driver)(nil)
)

// Driver returns a driver that runs fn's environments on e.
func (e *Engine) Driver(fn Function) *Driver {
	if fn.TmpfsMB <= 0 {
		fn.TmpfsMB = 512
	}
	if fn.User == "" {
		fn.User = "993:990"
	}
	return &Driver{e: e, fn: fn, log: e.log.With("function", fn.Name, "image", fn.Image)}
}

// ListenAddr implements sandbox.Network: the containers share the host's
// network, so lambdabox listens where it was told.
func (d *Driver) ListenAddr(configured string) (string, error) { return configured, nil }

// RuntimeAPI implements sandbox.Network: the containers reach the
// listener at its own address.
func (d *Driver) RuntimeAPI(listening string) string { return listening }

// ErrImageNotFound is wrapped by Start's error when the function's image
// is not in the engine; the error also matches sandbox.ErrInvalidEntrypoint.
var ErrImageNotFound = errors.New("image not found")

// imageConfig is what the driver needs of the image.
type imageConfig struct {
	entrypoint, cmd []string
	workdir         string
}

func (d *Driver) image(ctx context.Context) (imageConfig, error) {
	d.imgMu.Lock()
	defer d.imgMu.Unlock()
	if d.imgOK || d.imgErr != nil {
		return d.img, d.imgErr
	}
	res, err := d.e.cli.ImageInspect(ctx, d.fn.Image)
	if err != nil {
		if isNotFound(err) {
			d.imgErr = fmt.Errorf("%w: %s", ErrImageNotFound, d.fn.Image)
			return imageConfig{}, d.imgErr
		}
		return imageConfig{}, fmt.Errorf("inspecting image %s: %w", d.fn.Image, err) // tried again next time
	}
	if c := res.Config; c != nil {
		d.img = imageConfig{entrypoint: c.Entrypoint, cmd: c.Cmd, workdir: c.WorkingDir}
	}
	d.imgOK = true
	return d.img, nil
}

// inContainer returns where the container sees host path p: under the
// Target of the Mount whose Source holds it, or p itself.
func (d *Driver) inContainer(p string) string {
	if p == "" {
		return ""
	}
	for _, m := range d.fn.Mounts {
		src := path.Clean(m.Source)
		if p == src {
			return m.Target
		}
		if rest, ok := strings.CutPrefix(p, src+"/"); ok {
			return path.Join(m.Target, rest)
		}
	}
	return p
}

// command returns the runtime's command line, as the container sees it.
func (d *Driver) command(ctx context.Context, spec sandbox.Spec) ([]string, error) {
	if spec.Path != "" {
		return append([]string{d.inContainer(spec.Path)}, spec.Args...), nil
	}
	img, err := d.image(ctx)
	if err != nil {
		return nil, err
	}
	args := img.cmd
	if len(spec.Args) > 0 {
		args = spec.Args
	}
	cmd := append(append([]string(nil), img.entrypoint...), args...)
	if len(cmd) == 0 {
		return nil, &sandbox.EntrypointError{Err: fmt.Errorf("image %s has neither ENTRYPOINT nor CMD", d.fn.Image)}
	}
	return cmd, nil
}

// Start implements sandbox.Driver.
func (d *Driver) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Env, error) {
	if d.fn.Image == "" {
		return nil, errors.New("container driver: no image")
	}
	cmd, err := d.command(ctx, spec)
	if err != nil {
		if errors.Is(err, ErrImageNotFound) {
			return nil, &sandbox.EntrypointError{Err: err}
		}
		return nil, err
	}
	key := keeperKey{memory: spec.MemoryLimit, extDir: d.inContainer(spec.ExtensionsDir), probe: cmd[0]}
	k, err := d.takeKeeper(ctx, key)
	if err != nil {
		if errors.Is(err, ErrImageNotFound) {
			return nil, &sandbox.EntrypointError{Err: err}
		}
		return nil, err
	}
	go d.prepare(key)
	go k.memcg()
	if k.noexec {
		k.remove()
		return nil, &sandbox.EntrypointError{Err: fmt.Errorf("%s: no such executable file in image %s", cmd[0], d.fn.Image)}
	}
	e := &env{k: k, d: d, done: make(chan struct{}), workdir: d.inContainer(spec.Dir)}
	if spec.Found != nil && len(k.exts) > 0 {
		spec.Found(k.exts)
	}
	for _, name := range k.exts {
		p, err := e.exec(ctx, spec, sandbox.Process{Kind: sandbox.KindExtension, Name: name}, []string{path.Join(key.extDir, name)})
		if err != nil {
			e.abort()
			return nil, &sandbox.ExtensionError{Name: name, Err: err}
		}
		e.exts = append(e.exts, sandbox.Extension{Name: name, Proc: p})
	}
	if spec.BeforeRuntime != nil && !spec.BeforeRuntime(e.Extensions()) {
		go e.wait()
		return e, nil
	}
	rt, err := e.exec(ctx, spec, sandbox.Process{Kind: sandbox.KindFunction}, cmd)
	if err != nil {
		e.abort()
		var xe *execError
		if errors.As(err, &xe) {
			return nil, &sandbox.EntrypointError{Err: err}
		}
		return nil, fmt.Errorf("starting the runtime: %w", err)
	}
	e.rt = rt
	go e.wait()
	return e, nil
}

// Prepare creates and starts, in the background, the container of the
// next environment that spec describes, so that its Start skips that
// (Start does it after each environment on its own). Errors are left for
// that Start to meet.
func (d *Driver) Prepare(spec sandbox.Spec) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd, err := d.command(ctx, spec)
		if err != nil {
			return
		}
		d.prepare(keeperKey{memory: spec.MemoryLimit, extDir: d.inContainer(spec.ExtensionsDir), probe: cmd[0]})
	}()
}

// takeKeeper returns the prepared container when it fits key, or a new
// one.
func (d *Driver) takeKeeper(ctx context.Context, key keeperKey) (*keeper, error) {
	d.mu.Lock()
	k := d.spare
	fits := k != nil && d.spareKey == key
	d.spare = nil
	d.mu.Unlock()
	if k != nil {
		if fits && k.alive() {
			return k, nil
		}
		go k.remove()
	}
	return d.newKeeper(ctx, key)
}

// prepare makes the next environment's container, unless one is ready or
// being made.
func (d *Driver) prepare(key keeperKey) {
	d.mu.Lock()
	if d.closed || d.preparing || (d.spare != nil && d.spareKey == key) {
		d.mu.Unlock()
		return
	}
	d.preparing = true
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := d.newKeeper(ctx, key)
	d.mu.Lock()
	d.preparing = false
	old := d.spare
	if err == nil {
		d.spare, d.spareKey = k, key
		if d.closed {
			d.spare, old = nil, k
		}
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Debug("preparing a container ahead", "error", err)
	}
	if old != nil {
		old.remove()
	}
}

// keeperKey is what makes a prepared container fit an environment.
type keeperKey struct {
	memory uint64
	extDir string
	probe  string // the runtime's executable
}

// keeper is a started container whose keeper runs.
type keeper struct {
	d      *Driver
	id     string
	attach client.HijackedResponse // holds the keeper's standard input
	exited chan struct{}           // closed when the keeper's output ends
	exts   []string
	noexec bool

	memOnce sync.Once
	mem     memcg // found on first use, off the cold start's path

	removeOnce sync.Once
	removeErr  error
}

func (d *Driver) newKeeper(ctx context.Context, key keeperKey) (*keeper, error) {
	labels := map[string]string{}
	for k, v := range d.fn.Labels {
		labels[k] = v
	}
	labels[LabelOwner] = d.e.owner
	labels[LabelFunction] = d.fn.Name
	// /tmp is the function's, empty and world-writable, as on Lambda.
	// (Podman copies the image's /tmp into it, mode included: an image
	// whose /tmp is not 1777 gets a /tmp the function cannot write.)
	mounts := []mount.Mount{
		{Type: mount.TypeTmpfs, Target: "/tmp", TmpfsOptions: &mount.TmpfsOptions{
			SizeBytes: int64(d.fn.TmpfsMB) << 20,
			Mode:      os.ModeSticky | 0o777,
		}},
		{Type: mount.TypeBind, Source: d.e.helper, Target: HelperPath, ReadOnly: true},
		{Type: mount.TypeBind, Source: d.e.out.dir, Target: OutputDir},
	}

	for _, m := range d.fn.Mounts {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	hc := &container.HostConfig{
		NetworkMode:    "host",
		ReadonlyRootfs: true,
		AutoRemove:     true,
		Mounts:         mounts,
		Resources: container.Resources{
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: 1024, Hard: 1024},
				{Name: "nproc", Soft: 1024, Hard: 1024},
			},
		},
	}
	if key.memory > 0 {
		hc.Memory = int64(key.memory)
		hc.MemorySwap = int64(key.memory) // swap off
	}
	if d.e.podman {
		hc.Runtime = "runc" // crun fails on hybrid cgroups
	}

	cfg := &container.Config{
		Image:        d.fn.Image,
		Entrypoint:   []string{HelperPath, "keeper", key.extDir, key.probe},
		Cmd:          []string{},
		User:         d.fn.User,
		Labels:       labels,
		OpenStdin:    true,
		StdinOnce:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
	}
	created, err := d.e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrImageNotFound, d.fn.Image)
		}
		return nil, fmt.Errorf("creating a container of %s: %w", d.fn.Image, err)
	}
	k := &keeper{d: d, id: created.ID, exited: make(chan struct{})}
	if !d.e.track(k.id) {
		k.remove()
		return nil, errors.New("the container engine connection is closed")
	}
	ok := false
	defer func() {
		if !ok {
			k.remove()
		}
	}()
	att, err := d.e.cli.ContainerAttach(ctx, k.id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("attaching to container %s of %s (its first process is lambdabox's helper): %w", shortID(k.id), d.fn.Image, err)
	}
	k.attach = att.HijackedResponse
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, k.attach.Reader)
		pw.CloseWithError(err)
		close(k.exited)
	}()
	if _, err := d.e.cli.ContainerStart(ctx, k.id, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("starting container %s of %s (its first process is lambdabox's helper): %w", shortID(k.id), d.fn.Image, err)
	}
	// The keeper's report; what it writes after that is drained.
	lines := bufio.NewScanner(pr)
	ready := false
	for !ready && lines.Scan() {
		switch l := lines.Text(); {
		case l == "ready":
			ready = true
		case l == "noexec":
			k.noexec = true
		case strings.HasPrefix(l, "ext "):
			k.exts = append(k.exts, strings.TrimPrefix(l, "ext "))
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !ready {
		return nil, fmt.Errorf("container %s of %s exited at start", shortID(k.id), d.fn.Image)
	}
	ok = true
	return k, nil
}

// memcg returns the container's memory cgroup, found through its first
// process's host pid.
func (k *keeper) memcg() memcg {
	k.memOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		insp, err := k.d.e.cli.ContainerInspect(ctx, k.id, client.ContainerInspectOptions{})
		if err != nil {
			k.d.log.Debug("inspecting a container for its cgroup", "container", shortID(k.id), "error", err)
			return
		}
		if st := insp.Container.State; st != nil && st.Pid > 0 {
			k.mem = findMemcg(st.Pid)
		}
	})
	return k.mem
}

// alive reports whether the keeper still runs.
func (k *keeper) alive() bool {
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// remove removes the container, killing what runs in it.
func (k *keeper) remove() error {
	k.removeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		k.removeErr = k.d.e.remove(ctx, k.id)
		if k.attach.Conn != nil {
			k.attach.Close() // the keeper's stdin ends: it exits, if still there
		}
	})
	return k.removeErr
}
