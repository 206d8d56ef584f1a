// Package launch turns a function of a SAM template into a
// service.FunctionSpec: the command that runs its runtime, its working
// folder, environment and limits, on the process or the container driver.
//
// On the process driver (the default) a Zip function runs on the host:
//
//   - python3.x: python3 -m awslambdaric <handler> (the host's python3, with
//     awslambdaric installed), PYTHONPATH = the code folder, then each
//     layer's python/ and python/lib/python3.*/site-packages;
//   - nodejs*: the aws-lambda-ric npm package's bin, from the code folder's
//     node_modules, a layer's nodejs/node_modules, or Config.NodeRIC;
//     NODE_PATH = each layer's nodejs/node_modules and
//     nodejs/node*/node_modules (CommonJS require only: ES modules resolve
//     from the code folder's node_modules);
//   - provided.* and go1.x: the code folder's bootstrap (go1.x: the file
//     the Handler names); a folder of Go source without one is built with
//     go build (CGO_ENABLED=0) into Config.CacheDir first, as SAM's
//     BuildMethod go1.x does;
//   - java*, dotnet*, ruby*: an error, ErrNeedsContainer.
//
// Layers are folders (a LayerVersion's ContentUri) made visible as /opt
// would be: each layer's bin/ is put first on PATH and its lib/ on
// LD_LIBRARY_PATH, besides the language paths above.
//
// On the container driver, Zip functions run in Config.BaseImage(runtime)
// with the code folder at /var/task and the layers at /opt; Image
// functions run their ImageUri, or the image that internal/build makes
// from their Metadata DockerContext, handed to Config.LoadImage. The
// container driver itself comes from Config.Containers, so that this
// package depends on no engine.
package launch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lambdabox/lambdabox/internal/build"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
)

// Drivers.
const (
	Process   = "process"
	Container = "container"
)

// Lambda's defaults for what a template leaves unset.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultMemoryMB = 128
)

// ErrNeedsContainer is returned for a function the process driver cannot
// run (Java, .NET, Ruby, Image functions).
var ErrNeedsContainer = errors.New("needs --driver container")

// ContainerRequest asks for a container driver for one function.
type ContainerRequest struct {
	Image string
	// CodeDir is bound read-only at /var/task; "" for image functions.
	CodeDir string
	// LayerDirs are merged at /opt, in order.
	LayerDirs []string
	// MemoryMB and EphemeralMB are MemorySize and EphemeralStorage.Size.
	MemoryMB, EphemeralMB int
	// Name is the function's name.
	Name string
}

// Config configures a Launcher. Zero values are the documented defaults.
type Config struct {
	// Driver is Process (default) or Container.
	Driver string
	// Dir is the folder relative paths start from (the template's).
	Dir string
	// Region and AccountID of the functions; defaults: function's.
	Region, AccountID string
	// Credentials are given to every runtime.
	Credentials function.Credentials
	// BaseEnv is the environment every runtime starts from on the process
	// driver (lambdabox passes its own, so that PATH and HOME reach the
	// runtime); the function's variables come after it.
	BaseEnv []string
	// CacheDir holds the bootstraps built from Go source; default
	// <user cache dir>/lambdabox/serve.
	CacheDir string
	// Python runs awslambdaric; default "python3".
	Python string
	// Go builds Go functions; default "go".
	Go string
	// NodeRIC is the aws-lambda-ric npm package's bin, or a folder holding
	// node_modules/.bin/aws-lambda-ric, used when the function's own
	// folder has none.
	NodeRIC string

	// Containers makes the container driver of one function. Required
	// for Driver Container; with Driver Process, the functions that need
	// a container (ErrNeedsContainer) run on it when it is set.
	Containers func(ctx context.Context, req ContainerRequest) (sandbox.Driver, error)
	// BaseImage, when set, names the image Zip functions of runtime run
	// in, on the container driver; nil: lambdabox's base for the runtime,
	// from Bases, loaded with LoadImage unless HasImage says the engine
	// has it.
	BaseImage func(runtime string) (string, error)
	// HasImage reports whether the engine has the image ref.
	HasImage func(ctx context.Context, ref string) bool
	// Bases makes lambdabox's base images for image builds (Metadata
	// DockerContext); LoadImage loads a built image into the engine under
	// tag.
	Bases     build.Bases
	LoadImage func(ctx context.Context, img v1.Image, tag string) error
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	switch c.Driver {
	case "", Process:
	case Container:
		if c.Containers == nil {
			return errors.New("the container driver is not available in this build of lambdabox yet (no container engine wired); use --driver process")
		}
	default:
		return fmt.Errorf("driver %q: want %s or %s", c.Driver, Process, Container)
	}
	return nil
}

// Launcher makes FunctionSpecs. Besides its Config it holds only what it
// finds once: the Python interpreter Config.Python resolves to, and the
// base images it loaded.
type Launcher struct {
	cfg Config

	pyOnce sync.Once
	python string

	baseMu sync.Mutex        // serialises base image builds and loads
	bases  map[string]string // recipe → the loaded base image's reference
}

// pythonExe is the interpreter Config.Python names, resolved to the file
// it runs (sys.executable): a version manager's shim, such as pyenv's, is
// a shell script that costs a few hundred milliseconds at every cold
// start. Unresolvable, it is Config.Python itself.
func (l *Launcher) pythonExe(ctx context.Context) string {
	l.pyOnce.Do(func() {
		l.python = l.cfg.Python
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, l.cfg.Python, "-c", "import sys; print(sys.executable)")
		cmd.Env = l.cfg.BaseEnv
		if out, err := cmd.Output(); err == nil {
			if p := strings.TrimSpace(string(out)); filepath.IsAbs(p) {
				l.python = p
			}
		}
	})
	return l.python
}

// New returns a Launcher.
func New(cfg Config) (*Launcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Driver = cmp.Or(cfg.Driver, Process)
	cfg.Python = cmp.Or(cfg.Python, "python3")
	cfg.Go = cmp.Or(cfg.Go, "go")
	if cfg.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("cache folder: %w", err)
		}
		cfg.CacheDir = filepath.Join(d, "lambdabox", "serve")
	}
	return &Launcher{cfg: cfg}, nil
}

// Driver is the driver the Launcher makes specs for.
func (l *Launcher) Driver() string { return l.cfg.Driver }

// path resolves p against Config.Dir, absolutely.
func (l *Launcher) path(p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.cfg.Dir, p)
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Folders are the local folders f's code comes from (code folder, layer
// folders, Docker context), absolute: what hot reload watches.
func (l *Launcher) Folders(f template.Function) []string {
	var dirs []string
	if f.PackageType == "Image" {
		if f.Docker != nil && f.ImageURI == "" {
			dirs = append(dirs, l.path(f.Docker.Context))
		}
		return dirs
	}
	if f.CodeURI != "" {
		dirs = append(dirs, l.path(f.CodeURI))
	}
	for _, ly := range f.Layers {
		dirs = append(dirs, l.path(ly.ContentURI))
	}
	return dirs
}

// Spec makes the spec of f, with env (from --env-vars) over its
// variables. For a Go source folder it runs go build; for an image built
// from a folder, lambdabox build and LoadImage.
func (l *Launcher) Spec(ctx context.Context, f template.Function, env map[string]string) (service.FunctionSpec, error) {
	name := f.Name()
	timeout := time.Duration(f.Timeout) * time.Second
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cfg := function.Config{
		Name:        name,
		Region:      l.cfg.Region,
		AccountID:   l.cfg.AccountID,
		Handler:     f.Handler,
		Timeout:     timeout,
		MemoryMB:    cmp.Or(f.MemorySize, DefaultMemoryMB),
		Credentials: l.cfg.Credentials,

		PerEnvironmentConcurrency: f.PerEnvironmentConcurrency,
		TenantIsolation:           f.TenantIsolation,
	}
	if f.Runtime != "" && !strings.HasPrefix(f.Runtime, "provided") {
		cfg.ExecutionEnv = "AWS_Lambda_" + f.Runtime
	}
	vars := map[string]string{}
	for k, v := range f.Environment {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	spec := service.FunctionSpec{Queue: true, StreamShaping: true}
	if r := f.ReservedConcurrency; r != nil {
		// Lambda's cap: an invoke past it is throttled (429), not queued,
		// and reserved concurrency 0 throttles every invoke. Without it,
		// requests past the local cap wait (Lambda's account limit is far
		// above what one machine runs).
		spec.MaxConcurrency, spec.Queue, spec.Throttled = max(*r, 1), false, *r == 0
	}
	if f.FunctionURL != nil {
		spec.URLStreaming = f.FunctionURL.InvokeMode == "RESPONSE_STREAM"
	}
	routes, err := Routes(f)
	if err != nil {
		return spec, err
	}
	spec.Routes = routes
	var cerr error
	onContainer := l.cfg.Driver == Container
	if onContainer {
		cerr = l.container(ctx, f, &cfg, &spec)
	} else if cerr = l.process(ctx, f, &cfg); errors.Is(cerr, ErrNeedsContainer) && l.cfg.Containers != nil {
		// What only a container runs (Image, Java, .NET functions) runs
		// in one beside the host processes, when an engine is wired.
		onContainer = true
		cerr = l.container(ctx, f, &cfg, &spec)
	}
	if cerr != nil {
		return spec, fmt.Errorf("function %s: %w", name, cerr)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg.Env = append(cfg.Env, k+"="+vars[k])
	}
	if !onContainer {
		cfg.Env = append(slices.Clone(l.cfg.BaseEnv), append(cfg.Env, l.layerEnv(f, cfg.Env)...)...)
	}
	spec.Function = cfg
	if err := cfg.WithDefaults().Validate(); err != nil {
		return spec, fmt.Errorf("function %s: %w", name, err)
	}
	return spec, nil
}

// Routes are the API Gateway routes of f's Api and HttpApi events.
func Routes(f template.Function) ([]httpfront.Route, error) {
	var routes []httpfront.Route
	for _, ev := range f.Events {
		method, path := strings.ToUpper(ev.Method), ev.Path
		if method == "ANY" {
			method = ""
		}
		if path == httpfront.DefaultRoute {
			method = ""
		}
		if path == "" {
			return nil, fmt.Errorf("function %s: event %s has no path", f.Name(), ev.Name)
		}
		routes = append(routes, httpfront.Route{Method: method, Path: path, Version: ev.PayloadFormatVersion})
	}
	return routes, nil
}

// process fills in how f runs as a host process.
// NeedsContainer reports whether only the container driver runs f: an
// Image function, or a runtime the process driver does not run (Java,
// .NET, Ruby).
func NeedsContainer(f template.Function) bool {
	if f.PackageType == "Image" {
		return true
	}
	for _, p := range []string{"java", "dotnet", "ruby"} {
		if strings.HasPrefix(f.Runtime, p) {
			return true
		}
	}
	return false
}

func (l *Launcher) process(ctx context.Context, f template.Function, cfg *function.Config) error {
	if f.PackageType == "Image" {
		return fmt.Errorf("an Image function %w", ErrNeedsContainer)
	}
	code := l.path(f.CodeURI)
	if code == "" {
		return errors.New("no local code folder (CodeUri): nothing to run")
	}
	if fi, err := os.Stat(code); err != nil || !fi.IsDir() {
		return fmt.Errorf("code folder %s: not a folder", code)
	}
	cfg.Dir, cfg.TaskRoot = code, code
	rt := f.Runtime
	switch {
	case strings.HasPrefix(rt, "python3"):
		cfg.Command = []string{l.pythonExe(ctx), "-m", "awslambdaric", f.Handler}
		// No __pycache__ in the user's folder: Python checks a cached
		// module by its source's size and mtime in whole seconds, so an
		// edit of the same length within a second (hot reload) would run
		// the old code.
		cfg.Env = append(cfg.Env, "PYTHONDONTWRITEBYTECODE=1")
	case strings.HasPrefix(rt, "nodejs"):
		ric, err := l.nodeRIC(code, f)
		if err != nil {
			return err
		}
		cfg.Command = []string{ric, f.Handler}
	case strings.HasPrefix(rt, "provided"), rt == "go1.x", rt == "":
		boot := "bootstrap"
		if rt == "go1.x" && f.Handler != "" {
			boot = f.Handler
		}
		p := filepath.Join(code, boot)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			cfg.Command = []string{p}
			return nil
		}
		if !goSource(code) {
			return fmt.Errorf("runtime %q: no %s in %s, and no Go source to build one from", rt, boot, code)
		}
		bin, err := l.goBuild(ctx, code)
		if err != nil {
			return err
		}
		cfg.Command = []string{bin}
	case strings.HasPrefix(rt, "java"), strings.HasPrefix(rt, "dotnet"), strings.HasPrefix(rt, "ruby"):
		return fmt.Errorf("runtime %s %w (the process driver runs python, nodejs, provided and go1.x)", rt, ErrNeedsContainer)
	default:
		return fmt.Errorf("runtime %q: unknown (want python3.x, nodejs*, provided.* or go1.x on the process driver)", rt)
	}
	return nil
}

// goSource reports whether dir holds Go source.
func goSource(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return true
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}

// goBuild builds the Go package in dir into a fresh folder of the cache
// and returns the bootstrap's path; it keeps the previous build (an
// instance being replaced may still run it) and removes older ones.
func (l *Launcher) goBuild(ctx context.Context, dir string) (string, error) {
	sum := sha256.Sum256([]byte(dir))
	base := filepath.Join(l.cfg.CacheDir, "go", filepath.Base(dir)+"-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("go build cache: %w", err)
	}
	out, err := os.MkdirTemp(base, time.Now().UTC().Format("20060102T150405.000000000-"))
	if err != nil {
		return "", fmt.Errorf("go build cache: %w", err)
	}
	// Readable by all: the container driver binds it at /var/task, where
	// the function runs as a user that is not its owner.
	if err := os.Chmod(out, 0o755); err != nil {
		return "", fmt.Errorf("go build cache: %w", err)
	}
	bin := filepath.Join(out, "bootstrap")
	cmd := exec.CommandContext(ctx, l.cfg.Go, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(out)
		return "", fmt.Errorf("go build in %s: %w\n%s", dir, err, strings.TrimSpace(string(b)))
	}
	if old, err := os.ReadDir(base); err == nil && len(old) > 2 {
		for _, e := range old[:len(old)-2] { // names sort by build time
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
	return bin, nil
}

// nodeRIC finds the aws-lambda-ric bin for a Node function.
func (l *Launcher) nodeRIC(code string, f template.Function) (string, error) {
	candidates := []string{filepath.Join(code, "node_modules", ".bin", "aws-lambda-ric")}
	for _, ly := range f.Layers {
		candidates = append(candidates, filepath.Join(l.path(ly.ContentURI), "nodejs", "node_modules", ".bin", "aws-lambda-ric"))
	}
	if r := l.cfg.NodeRIC; r != "" {
		if a, err := filepath.Abs(r); err == nil {
			r = a
		}
		candidates = append(candidates, r, filepath.Join(r, "aws-lambda-ric"),
			filepath.Join(r, "node_modules", ".bin", "aws-lambda-ric"),
			filepath.Join(r, ".bin", "aws-lambda-ric"))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("the Node.js runtime interface client (npm package aws-lambda-ric) is not installed: run npm install aws-lambda-ric in %s, or give --node-ric a folder where it is installed", code)
}

// layerEnv is what makes f's layers visible on the process driver:
// PATH, LD_LIBRARY_PATH, PYTHONPATH and NODE_PATH, each ahead of the value
// in env (or BaseEnv).
func (l *Launcher) layerEnv(f template.Function, env []string) []string {
	lookup := func(k string) string {
		for _, list := range [][]string{env, l.cfg.BaseEnv} {
			for i := len(list) - 1; i >= 0; i-- {
				if v, ok := strings.CutPrefix(list[i], k+"="); ok {
					return v
				}
			}
		}
		return ""
	}
	paths := map[string][]string{}
	if strings.HasPrefix(f.Runtime, "python") {
		paths["PYTHONPATH"] = []string{l.path(f.CodeURI)}
	}
	for _, ly := range f.Layers {
		d := l.path(ly.ContentURI)
		paths["PATH"] = append(paths["PATH"], filepath.Join(d, "bin"))
		paths["LD_LIBRARY_PATH"] = append(paths["LD_LIBRARY_PATH"], filepath.Join(d, "lib"))
		switch {
		case strings.HasPrefix(f.Runtime, "python"):
			sp, _ := filepath.Glob(filepath.Join(d, "python", "lib", "python3*", "site-packages"))
			paths["PYTHONPATH"] = append(append(paths["PYTHONPATH"], filepath.Join(d, "python")), sp...)
		case strings.HasPrefix(f.Runtime, "nodejs"):
			nm, _ := filepath.Glob(filepath.Join(d, "nodejs", "node*", "node_modules"))
			paths["NODE_PATH"] = append(append(paths["NODE_PATH"], filepath.Join(d, "nodejs", "node_modules")), nm...)
		}
	}
	var out []string
	for _, k := range []string{"PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "NODE_PATH"} {
		if len(paths[k]) == 0 {
			continue
		}
		v := strings.Join(paths[k], string(os.PathListSeparator))
		if old := lookup(k); old != "" {
			v += string(os.PathListSeparator) + old
		}
		out = append(out, k+"="+v)
	}
	return out
}

// container fills in how f runs on the container driver.
func (l *Launcher) container(ctx context.Context, f template.Function, cfg *function.Config, spec *service.FunctionSpec) error {
	req := ContainerRequest{Name: f.Name(), MemoryMB: cfg.MemoryMB, EphemeralMB: cmp.Or(f.EphemeralStorageMB, 512)}
	cfg.TaskRoot, cfg.Dir = function.DefaultTaskRoot, function.DefaultTaskRoot
	if f.PackageType == "Image" {
		ref, err := l.image(ctx, f)
		if err != nil {
			return err
		}
		req.Image = ref
		// The image's ENTRYPOINT runs the bootstrap, as on Lambda, with
		// its CMD, or the template's handler instead (ImageConfig).
		cfg.Command = []string{""}
		if f.Handler != "" {
			cfg.Command = append(cfg.Command, f.Handler)
		}
	} else {
		img, err := l.baseImage(ctx, f.Runtime)
		if err != nil {
			return fmt.Errorf("base image of runtime %q: %w", f.Runtime, err)
		}
		req.Image = img
		if req.CodeDir = l.path(f.CodeURI); req.CodeDir == "" {
			return errors.New("no local code folder (CodeUri): nothing to run")
		}
		if r, _ := build.LookupRuntime(f.Runtime); r.Recipe == "provided" && goSource(req.CodeDir) {
			if _, err := os.Stat(filepath.Join(req.CodeDir, "bootstrap")); err != nil {
				bin, err := l.goBuild(ctx, req.CodeDir) // for the image's arch: the host's
				if err != nil {
					return err
				}
				req.CodeDir = filepath.Dir(bin)
			}
		}
		for _, ly := range f.Layers {
			req.LayerDirs = append(req.LayerDirs, l.path(ly.ContentURI))
		}
		cfg.Command = []string{"/lambda-entrypoint.sh", f.Handler}
	}
	drv, err := l.cfg.Containers(ctx, req)
	if err != nil {
		return fmt.Errorf("container driver: %w", err)
	}
	spec.Driver, spec.OwnsDriver = drv, true // one per spec: closed when its instance retires
	return nil
}

// image is the image an Image function runs: its ImageUri, or the image
// lambdabox build makes from its Metadata, loaded as DockerTag.
func (l *Launcher) image(ctx context.Context, f template.Function) (string, error) {
	if f.ImageURI != "" {
		return f.ImageURI, nil
	}
	if f.Docker == nil {
		return "", errors.New("an Image function needs ImageUri or Metadata DockerContext")
	}
	if f.Docker.Dockerfile != "Dockerfile" {
		return "", fmt.Errorf("the Metadata Dockerfile %q: lambdabox build reads the folder's Dockerfile only", f.Docker.Dockerfile)
	}
	if l.cfg.LoadImage == nil {
		return "", errors.New("no image loader wired: cannot build Metadata DockerContext images")
	}
	dir := l.path(f.Docker.Context)
	res, err := build.Build(ctx, build.Config{
		Dir:      dir,
		Runtime:  f.Runtime,
		Handler:  f.Handler,
		CacheDir: filepath.Join(l.cfg.CacheDir, "build"),
		Bases:    l.cfg.Bases,
	})
	if err != nil {
		return "", fmt.Errorf("building the image of %s: %w", dir, err)
	}
	tag := strings.ToLower(f.Name()) + ":" + f.Docker.Tag
	if err := l.cfg.LoadImage(ctx, res.Image, tag); err != nil {
		return "", fmt.Errorf("loading image %s: %w", tag, err)
	}
	return tag, nil
}
