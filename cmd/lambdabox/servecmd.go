package main

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
	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/build"
	"github.com/lambdabox/lambdabox/internal/console"
	"github.com/lambdabox/lambdabox/internal/controlplane"
	rie "github.com/lambdabox/lambdabox/internal/emulator"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/container"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/store"
	"github.com/lambdabox/lambdabox/internal/template"
)

const serveLong = `Serves every function of a SAM template on one Invoke API, as a local
Lambda service:

  lambdabox serve -t template.yaml
  curl -d '{}' http://127.0.0.1:9001/2015-03-31/functions/HelloFunction/invocations
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    aws lambda invoke --endpoint-url http://127.0.0.1:9001 \
    --function-name HelloFunction --payload '{}' --cli-binary-format raw-in-base64-out out.json

Functions answer to their FunctionName, else their logical id. The template's
AWS::Serverless::Function and AWS::Lambda::Function resources are read, with
Globals, Parameters (Default, overridden by --parameter-overrides), layers
(AWS::Serverless::LayerVersion ContentUri), Environment, Timeout (default 3 s),
MemorySize (default 128), ReservedConcurrentExecutions (the function's
execution environments; requests past it wait), FunctionUrlConfig and the
Api and HttpApi events. !Ref and !Sub of parameters and of AWS::Region,
AWS::AccountId (123456789012) and AWS::StackName resolve; what cannot resolve
locally (!GetAtt, !ImportValue, !If) is left empty with a warning naming the
function and property.

The process driver (default) runs Zip functions as host processes:
  python3.x  python3 -m awslambdaric <handler> (pip install awslambdaric);
             PYTHONPATH is the code folder, then the layers' python/
  nodejs*    the npm package aws-lambda-ric, from the code folder's
             node_modules or --node-ric (npm install aws-lambda-ric)
  provided.*, go1.x
             the code folder's bootstrap; a folder of Go source without one
             is built first with go build (CGO_ENABLED=0)
Layers' bin/ go first on PATH, lib/ on LD_LIBRARY_PATH, nodejs/node_modules
on NODE_PATH. Java, .NET, Ruby and Image functions need --driver container.

Hot reload: the code and layer folders are watched; a saved change (Go: after
go build) swaps the function's code in: requests in flight finish on the old
code, new ones get the new code, none fails. --no-watch turns it off.

Function URLs: each function with FunctionUrlConfig gets its own port,
from --function-url-base-port up, printed at start (InvokeMode
RESPONSE_STREAM streams). API events are served by the API Gateway emulation
on --api-address.

Logs: every line of every function goes to stdout prefixed by the function's
name (coloured on a terminal), or with --log-format json as one object per
line: {"time":...,"function":...,"stream":"function"|"platform","message":...}.
lambdabox's own messages, the table of functions and warnings go to stderr.

Control plane: the Invoke API's address also serves Lambda's control-plane
API, so the AWS CLI and the SDKs manage functions there (--endpoint-url):
create-function (Zip with --zip-file, or Image), get-function, list-functions,
update-function-code and -configuration (with the State and LastUpdateStatus
their waiters poll), publish-version, aliases (invoke --qualifier), reserved
concurrency, function URL configs, delete-function. Signatures are accepted
unchecked. Those functions, their code, versions and aliases persist in an
embedded database (bbolt) in --state-dir, and run again at the next start. A
template is optional: without one, serve runs the control plane's functions.

--env-vars takes SAM's format, overriding variables the template declares:
  {"Parameters": {"STAGE": "local"}, "HelloFunction": {"TABLE": "items"}}`

// serveOptions are lambdabox serve's flags.
type serveOptions struct {
	template      string
	addr          string
	apiAddr       string
	driver        string
	envVars       string
	params        []string
	logFormat     string
	logLevel      string
	region        string
	noWatch       bool
	urlBasePort   int
	nodeRIC       string
	cacheDir      string
	shutdownGrace time.Duration
	stateDir      string
	emulator      string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve [-t template.yaml] [flags]",
		Short: "Serve every function of a SAM template as a local Lambda service",
		Long:  serveLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.template, "template", "t", "", "SAM template (default template.yaml, else template.yml, in the current folder)")
	fs.StringVar(&o.addr, "addr", service.DefaultInvokeAddr, "address of the Invoke API, for every function")
	fs.StringVar(&o.apiAddr, "api-address", service.DefaultAPIAddr, "address of the API Gateway emulation serving the Api and HttpApi events")
	fs.StringVar(&o.driver, "driver", launch.Process, "where functions run: process (host processes) or container")
	fs.StringVar(&o.envVars, "env-vars", "", `JSON file of environment overrides, SAM's format: {"Parameters": {...}, "FunctionLogicalId": {...}}`)
	fs.StringArrayVar(&o.params, "parameter-overrides", nil, "template parameters, KEY=VALUE or SAM's ParameterKey=KEY,ParameterValue=VALUE; several per flag separated by spaces; repeatable")
	fs.StringVar(&o.logFormat, "log-format", console.Text, "functions' log lines: text (prefixed by the function's name) or json (one object per line)")
	fs.StringVar(&o.logLevel, "log-level", "", "lambdabox's own log level: debug, info, warn, error (default $LOG_LEVEL, else info)")
	fs.StringVar(&o.region, "region", "", "AWS::Region and the functions' AWS_REGION (default $AWS_REGION, else us-east-1)")
	fs.BoolVar(&o.noWatch, "no-watch", false, "do not watch code folders for hot reload")
	fs.IntVar(&o.urlBasePort, "function-url-base-port", 0, "first port of the function URLs, one per function with FunctionUrlConfig, on 127.0.0.1 (default: the Invoke API's port + 1)")
	fs.StringVar(&o.nodeRIC, "node-ric", "", "aws-lambda-ric for Node.js functions whose folder has none: its bin, or a folder with node_modules/.bin/aws-lambda-ric")
	fs.StringVar(&o.cacheDir, "cache", "", "folder of Go builds and, with --driver container, of the base images' layers (default <user cache>/lambdabox/serve for Go builds and <user cache>/lambdabox for base images, shared with lambdabox build)")
	fs.StringVar(&o.emulator, "emulator", "", "with --driver container: the static aws-lambda-rie that lambdabox's base images carry (default: built from the lambdabox source tree serve runs in)")
	fs.StringVar(&o.stateDir, "state-dir", "", "folder of the control plane's database: functions created through the API, their code, versions and aliases (default $XDG_STATE_HOME/lambdabox, else ~/.local/state/lambdabox)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-timeout", service.DefaultShutdownTimeout, "at SIGTERM or SIGINT, grace for the invokes in flight; a second signal ends it")
	return cmd
}

// parseParameterOverrides reads --parameter-overrides values.
func parseParameterOverrides(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, arg := range args {
		for _, item := range strings.Fields(arg) {
			if strings.HasPrefix(item, "ParameterKey=") {
				k, v, ok := strings.Cut(strings.TrimPrefix(item, "ParameterKey="), ",ParameterValue=")
				if !ok || k == "" {
					return nil, fmt.Errorf("--parameter-overrides %q: want ParameterKey=KEY,ParameterValue=VALUE", item)
				}
				out[k] = v
				continue
			}
			k, v, ok := strings.Cut(item, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--parameter-overrides %q: want KEY=VALUE", item)
			}
			out[k] = v
		}
	}
	return out, nil
}

// findTemplate is the template serve reads.
func findTemplate(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	for _, p := range []string{"template.yaml", "template.yml"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil // no template: the control plane's functions only
}

func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) (err error) {
	log, err := rie.NewLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	cons, err := console.New(console.Config{Out: stdout, Format: o.logFormat, Color: isTerminal(stdout) && os.Getenv("NO_COLOR") == ""})
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	if o.urlBasePort == 0 {
		p, err := strconv.Atoi(port)
		if err != nil || p == 0 {
			return fmt.Errorf("--addr %q: give a port, or --function-url-base-port", o.addr)
		}
		o.urlBasePort = p + 1
	}
	params, err := parseParameterOverrides(o.params)
	if err != nil {
		return err
	}
	region := cmp.Or(o.region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), template.DefaultRegion)
	path, err := findTemplate(o.template)
	if err != nil {
		return err
	}
	tpl := &template.Template{}
	if path != "" {
		if tpl, err = (template.Config{Parameters: params, Region: region}).Load(path); err != nil {
			return err
		}
	}
	for _, w := range tpl.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	envVars := launch.EnvVars{}
	if o.envVars != "" {
		f, err := os.Open(o.envVars)
		if err != nil {
			return fmt.Errorf("--env-vars: %w", err)
		}
		envVars, err = launch.ParseEnvVars(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--env-vars %s: %w", o.envVars, err)
		}
	}
	lcfg := launch.Config{
		Driver:    o.driver,
		Dir:       tpl.Dir,
		Region:    region,
		AccountID: template.DefaultAccountID,
		Credentials: function.Credentials{
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		},
		BaseEnv:  os.Environ(),
		CacheDir: o.cacheDir,
		NodeRIC:  o.nodeRIC,
	}
	// The container driver runs every function with --driver container;
	// with --driver process, those that need a container (Image, Java,
	// .NET). The engine is connected to when first needed: at start when
	// the template has such functions, else when the control plane
	// creates one.
	eng := &engineOnce{log: log}
	defer func() { err = errors.Join(err, eng.close()) }()
	if o.driver == launch.Container || slices.ContainsFunc(tpl.Functions, launch.NeedsContainer) {
		if _, cerr := eng.get(ctx); cerr != nil {
			if o.driver == launch.Container {
				return fmt.Errorf("--driver container: %w", cerr)
			}
			log.Warn("no container engine: the functions that need one cannot start", "error", cerr)
		}
	}
	if !eng.failed() {
		wireContainers(&lcfg, eng, o.cacheDir, o.emulator)
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
	st, err := store.Open(store.Config{Dir: o.stateDir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	var cp *controlplane.Server // set before the service serves
	svc, err := service.New(service.Config{
		Control:         http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cp.ServeHTTP(w, r) }),
		InvokeAddr:      o.addr,
		APIAddr:         o.apiAddr,
		Driver:          drv,
		ShutdownTimeout: o.shutdownGrace,
		EndGrace:        rie.EndGrace(ctx),
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
	// What the command owns in each spec, kept across reloads.
	type owned struct {
		url    string
		output io.Writer
	}
	own := map[string]owned{}
	drivers := map[string]string{} // the functions not on l.Driver()
	nextPort := o.urlBasePort
	reload := launch.Reload{Launcher: l, Replace: svc.Replace, Log: log}
	for _, f := range tpl.Functions {
		spec, err := l.Spec(ctx, f, envVars.For(f))
		if err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
		ow := owned{output: cons.For(f.Name())}
		if f.FunctionURL != nil {
			ow.url = net.JoinHostPort(host, strconv.Itoa(nextPort))
			nextPort++
		}
		own[f.Name()] = ow
		spec.FunctionURL, spec.Output = ow.url, ow.output
		if spec.Driver != nil {
			drivers[f.Name()] = launch.Container
		}
		if err := svc.Add(ctx, spec); err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
		if !o.noWatch && l.Watchable(f) {
			reload.Targets = append(reload.Targets, launch.Target{
				Function: f, Env: envVars.For(f),
				Adjust: func(s *service.FunctionSpec) { s.FunctionURL, s.Output = ow.url, ow.output },
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
	printTable(stderr, svc, tpl, l.Driver(), drivers, o.noWatch)
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
