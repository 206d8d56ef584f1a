// Package serve runs a SAM project as a local Lambda service: every
// function of its template (and those the control plane creates) on one
// Invoke API, as host processes or containers, with Lambda's control-plane
// API, function URLs, API events and hot reload. It wires the packages that
// do each part (template, launch, service, controlplane, store, console,
// watch through launch.Reload, sandbox/container) for lambdabox serve.
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lambdabox/lambdabox/internal/build"
	"github.com/lambdabox/lambdabox/internal/console"
	"github.com/lambdabox/lambdabox/internal/controlplane"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/container"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/store"
	"github.com/lambdabox/lambdabox/internal/template"
)

// Config is what lambdabox serve's flags set; the zero value of a field is
// its flag's default, except where said.
type Config struct {
	// Template is the SAM template; "" reads template.yaml, else
	// template.yml, in the working directory, else serves the control
	// plane's functions only.
	Template string
	// Parameters override the template's parameters' defaults.
	Parameters map[string]string
	// Addr is the Invoke API's (and the control plane's) address; required.
	Addr string
	// APIAddr serves the Api and HttpApi events; "" serves none.
	APIAddr string
	// Driver is launch.Process or launch.Container; required.
	Driver string
	// EnvVars is a JSON file of environment overrides, SAM's format.
	EnvVars string
	// LogFormat is the functions' log format (console.Text or console.JSON);
	// Color colours the text one.
	LogFormat string
	Color     bool
	// Region is AWS::Region and the functions' AWS_REGION; default
	// $AWS_REGION, else $AWS_DEFAULT_REGION, else us-east-1.
	Region string
	// NoWatch turns hot reload off.
	NoWatch bool
	// URLBasePort is the first function URL's port; default Addr's port + 1.
	URLBasePort int
	// NodeRIC is aws-lambda-ric for Node.js functions whose folder has none.
	NodeRIC string
	// CacheDir holds Go builds and base images' layers (see launch.Config).
	CacheDir string
	// StateDir holds the control plane's database (see store.Config).
	StateDir string
	// Emulator is the static aws-lambda-rie the base images carry; default
	// built from the source tree serve runs in.
	Emulator string
	// ShutdownTimeout is the grace of the invokes in flight at shutdown;
	// EndGrace, when it closes, ends that grace early (a second signal).
	ShutdownTimeout time.Duration
	EndGrace        <-chan struct{}
	// Stdout receives the functions' log lines; Stderr the table of
	// functions and the warnings; Log lambdabox's own messages.
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// findTemplate is the template serve reads; "" when there is none (the
// control plane's functions only).
func findTemplate(path string) string {
	if path != "" {
		return path
	}
	for _, p := range []string{"template.yaml", "template.yml"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Run serves the project o describes until ctx ends (lambdabox serve
// cancels it at SIGTERM or SIGINT), then shuts every function down and
// removes what it started.
func Run(ctx context.Context, o Config) (err error) {
	log, stdout, stderr := o.Log, o.Stdout, o.Stderr
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	cons, err := console.New(console.Config{Out: stdout, Format: o.LogFormat, Color: o.Color})
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", o.Addr, err)
	}
	if o.URLBasePort == 0 {
		p, err := strconv.Atoi(port)
		if err != nil || p == 0 {
			return fmt.Errorf("--addr %q: give a port, or --function-url-base-port", o.Addr)
		}
		o.URLBasePort = p + 1
	}
	region := cmp.Or(o.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), template.DefaultRegion)
	tpl := &template.Template{}
	if path := findTemplate(o.Template); path != "" {
		if tpl, err = (template.Config{Parameters: o.Parameters, Region: region}).Load(path); err != nil {
			return err
		}
	}
	for _, w := range tpl.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	envVars := launch.EnvVars{}
	if o.EnvVars != "" {
		f, err := os.Open(o.EnvVars)
		if err != nil {
			return fmt.Errorf("--env-vars: %w", err)
		}
		envVars, err = launch.ParseEnvVars(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--env-vars %s: %w", o.EnvVars, err)
		}
	}
	lcfg := launch.Config{
		Driver:    o.Driver,
		Dir:       tpl.Dir,
		Region:    region,
		AccountID: template.DefaultAccountID,
		Credentials: function.Credentials{
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		},
		BaseEnv:  os.Environ(),
		CacheDir: o.CacheDir,
		NodeRIC:  o.NodeRIC,
	}
	// The container driver runs every function with --driver container;
	// with --driver process, those that need a container (Image, Java,
	// .NET). The engine is connected to when first needed: at start when
	// the template has such functions, else when the control plane
	// creates one.
	eng := &engineOnce{log: log}
	defer func() { err = errors.Join(err, eng.close()) }()
	if o.Driver == launch.Container || slices.ContainsFunc(tpl.Functions, launch.NeedsContainer) {
		if _, cerr := eng.get(ctx); cerr != nil {
			if o.Driver == launch.Container {
				return fmt.Errorf("--driver container: %w", cerr)
			}
			log.Warn("no container engine: the functions that need one cannot start", "error", cerr)
		}
	}
	if !eng.failed() {
		wireContainers(&lcfg, eng, o.CacheDir, o.Emulator)
	}
	l, err := launch.New(lcfg)
	if err != nil {
		return err
	}
	drv, err := process.New(process.Config{Log: log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drv.Close(context.Background())) }()
	log.Info("containing runtimes with " + drv.Mechanism())
	st, err := store.Open(store.Config{Dir: o.StateDir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	var cp *controlplane.Server // set before the service serves
	svc, err := service.New(service.Config{
		Control:         http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cp.ServeHTTP(w, r) }),
		InvokeAddr:      o.Addr,
		APIAddr:         o.APIAddr,
		Driver:          drv,
		ShutdownTimeout: o.ShutdownTimeout,
		EndGrace:        o.EndGrace,
		Output:          stdout,
		Log:             log,
	})
	if err != nil {
		return err
	}
	names := make([]string, len(tpl.Functions))
	for i, f := range tpl.Functions {
		names[i] = f.Name()
	}
	cons.Align(names)
	drivers := map[string]string{} // the functions not on l.Driver()
	nextPort := o.URLBasePort
	reload := launch.Reload{Launcher: l, Replace: svc.Replace, Log: log}
	for _, f := range tpl.Functions {
		env := envVars.For(f)
		spec, err := l.Spec(ctx, f, env)
		if err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
		// What serve sets in each spec, kept across reloads.
		url, output := "", cons.For(f.Name())
		if f.FunctionURL != nil {
			url = net.JoinHostPort(host, strconv.Itoa(nextPort))
			nextPort++
		}
		spec.FunctionURL, spec.Output = url, output
		if spec.Driver != nil {
			drivers[f.Name()] = launch.Container
		}
		if err := svc.Add(ctx, spec); err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
		if !o.NoWatch && l.Watchable(f) {
			reload.Targets = append(reload.Targets, launch.Target{
				Function: f, Env: env,
				Adjust: func(s *service.FunctionSpec) { s.FunctionURL, s.Output = url, output },
			})
		}
	}
	cp, err = controlplane.New(controlplane.Config{
		Store: st,
		Runner: launch.NewRunner(l, svc, func(name string, spec *service.FunctionSpec) {
			spec.Output = cons.For(name)
		}),
		Region:    region,
		AccountID: template.DefaultAccountID,
		Log:       log,
	})
	if err != nil {
		return errors.Join(err, svc.Close(ctx))
	}
	defer func() { err = errors.Join(err, cp.Close()) }()
	if err := cp.Start(ctx); err != nil {
		return errors.Join(err, svc.Close(ctx))
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(runCtx) }()
	select {
	case <-svc.Ready():
	case err := <-runErr:
		return err
	}
	printTable(stderr, svc, tpl, l.Driver(), drivers, o.NoWatch)
	var wg sync.WaitGroup
	if len(reload.Targets) > 0 {
		wg.Go(func() {
			if err := reload.Run(runCtx); err != nil {
				log.Warn("hot reload is off", "error", err)
			}
		})
	}
	err = <-runErr
	cancel()
	wg.Wait()
	return err
}

// printTable says what is served where.
func printTable(w io.Writer, svc *service.Service, tpl *template.Template, driver string, drivers map[string]string, noWatch bool) {
	inv := "http://" + svc.InvokeAddr()
	fmt.Fprintf(w, "lambdabox serve: %d functions on the %s driver; Invoke API %s/2015-03-31/functions/{name}/invocations\n", len(tpl.Functions), driver, inv)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tRUNTIME\tDRIVER\tURLS")
	api := svc.APIAddr()
	for _, f := range tpl.Functions {
		rt := cmp.Or(f.Runtime, f.PackageType)
		var urls []string
		if a := svc.FunctionURLAddr(f.Name()); a != "" {
			urls = append(urls, "http://"+a+"/ (function URL)")
		}
		if api != "" {
			for _, ev := range f.Events {
				urls = append(urls, ev.Method+" http://"+api+strings.TrimPrefix(ev.Path, "$default")+" ("+ev.Type+")")
			}
		}
		sort.Strings(urls)
		if len(urls) == 0 {
			urls = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name(), rt, cmp.Or(drivers[f.Name()], driver), urls[0])
		for _, u := range urls[1:] {
			fmt.Fprintf(tw, "\t\t\t%s\n", u)
		}
	}
	tw.Flush()
	if !noWatch {
		fmt.Fprintln(w, "watching code folders: saved changes reload their function (--no-watch: off)")
	}
}

// engineOnce connects to the container engine once, when first asked.
type engineOnce struct {
	log *slog.Logger

	mu     sync.Mutex // held while connecting
	tried  bool
	closed bool
	eng    *container.Engine
	err    error
}

// get returns the engine, connecting to it the first time.
func (e *engineOnce) get(ctx context.Context) (*container.Engine, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("lambdabox serve is shutting down")
	}
	if !e.tried {
		e.tried = true
		if e.eng, e.err = container.Connect(ctx, container.Config{Log: e.log}); e.err == nil {
			e.log.Info("container engine: " + e.eng.Kind() + " at " + e.eng.Host())
		}
	}
	return e.eng, e.err
}

// failed reports whether connecting failed.
func (e *engineOnce) failed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err != nil
}

// close removes every container of the engine, if it was connected to;
// no get connects after it.
func (e *engineOnce) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.eng == nil {
		return nil
	}
	return e.eng.Close(context.Background())
}

// wireContainers makes lc run functions as containers on eng: Zip
// functions in lambdabox's base image of their runtime (built from its
// recipe, or taken from the layer cache in cacheDir), with their code
// bound read-only at /var/task and their layer at /opt.
func wireContainers(lc *launch.Config, engines *engineOnce, cacheDir, emulator string) {
	lc.Containers = func(ctx context.Context, req launch.ContainerRequest) (sandbox.Driver, error) {
		eng, err := engines.get(ctx)
		if err != nil {
			return nil, err
		}
		fn := container.Function{Image: req.Image, Name: req.Name, TmpfsMB: req.EphemeralMB}
		if req.CodeDir != "" {
			fn.Mounts = append(fn.Mounts, container.Mount{Source: req.CodeDir, Target: "/var/task", ReadOnly: true})
		}
		switch len(req.LayerDirs) {
		case 0:
		case 1:
			fn.Mounts = append(fn.Mounts, container.Mount{Source: req.LayerDirs[0], Target: "/opt", ReadOnly: true})
		default:
			return nil, fmt.Errorf("%d layers: the container driver binds one layer folder at /opt; merge them into one", len(req.LayerDirs))
		}
		return eng.Driver(fn), nil
	}
	lc.HasImage = func(ctx context.Context, ref string) bool {
		eng, err := engines.get(ctx)
		return err == nil && eng.HasImage(ctx, ref)
	}
	lc.LoadImage = func(ctx context.Context, img v1.Image, tag string) error {
		eng, err := engines.get(ctx)
		if err != nil {
			return err
		}
		return eng.LoadImage(ctx, img, tag)
	}
	if cacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "lambdabox") // lambdabox build's and base build's
		}
	}
	wd, _ := os.Getwd()
	lc.Bases = &build.RecipeBases{CacheDir: cacheDir, WorkDir: wd, Emulator: emulator, Log: io.Discard}
}
