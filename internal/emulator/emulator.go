// Package emulator is the drop-in aws-lambda-rie: it turns the official
// emulator's command line and environment into one function spec and runs
// it on the process driver until its context ends. Both the aws-lambda-rie
// binary of every base image (cmd/aws-lambda-rie) and `lambdabox rie` call
// Main; it brings in no control plane, database or container client.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/lambdabox/lambdabox/internal/async"
	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/httpfront"
	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
)

// Usage is the emulator's help, followed by its flags.
const Usage = `Usage: lambdabox rie [flags] [<bootstrap> [args...]]
       aws-lambda-rie [flags] [<bootstrap> [args...]]

Runs one Lambda function locally as the official aws-lambda-rie does, and
serves the Invoke API for it:

  curl -d '{}' http://localhost:8080/2015-03-31/functions/function/invocations

The runtime is <bootstrap> with its arguments; with at least one argument the
last one is also the handler (_HANDLER). Without a bootstrap, the first of
/var/task/bootstrap, /opt/bootstrap and /var/runtime/bootstrap is run.
Flags may also follow the bootstrap; unknown flags are passed to it.

The function answers to its name, its ARN and the name "function".

Environment (as aws-lambda-rie reads it; flags win):
  AWS_LAMBDA_FUNCTION_NAME        function name (default test_function)
  AWS_LAMBDA_FUNCTION_TIMEOUT     timeout in seconds (default 300)
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE memory in MB (default 3008)
  AWS_LAMBDA_FUNCTION_VERSION     version (default $LATEST)
  AWS_LAMBDA_FUNCTION_HANDLER     handler, if none is given as an argument (else _HANDLER)
  AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
  LOG_LEVEL                       lambdabox's own log level
The whole environment is forwarded to the runtime; Lambda's reserved
variables are set by the emulator.

Flags:
`

// options are the drop-in emulator's settings.
type options struct {
	emulatorAddr   string
	runtimeAPIAddr string
	logLevel       string
	initCaching    bool
	functionName   string
	handler        string
	timeout        time.Duration
	memoryMB       int
	tenants        bool
	env            []string
	maxConcurrency int
	perEnvConc     int
	queue          bool
	keepAlive      time.Duration
	provisioned    int
	extensionsDir  string
	streamShaping  bool
	initAtStart    bool
	asyncDir       string
	asyncRetry     time.Duration
	asyncMaxQueued int
	asyncMaxMB     int
	shutdownGrace  time.Duration
	functionURL    string
	urlStreaming   bool
	apiAddr        string
	httpRoutes     []string
	restRoutes     []string
	template       string
	templateFn     string
	debugAddr      string
	help           bool
}

func (o *options) flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("rie", pflag.ContinueOnError)
	fs.StringVar(&o.emulatorAddr, "runtime-interface-emulator-address", "0.0.0.0:8080", "address of the Invoke API")
	fs.StringVar(&o.runtimeAPIAddr, "runtime-api-address", "127.0.0.1:9001", "address of the Runtime API the runtime calls")
	fs.StringVar(&o.logLevel, "log-level", "", "lambdabox's log level: debug, info, warn, error (default $LOG_LEVEL, else info)")
	fs.BoolVar(&o.initCaching, "enable-init-caching", false, "accepted for compatibility; has no effect")
	fs.StringVar(&o.functionName, "function-name", "", "function name (default $AWS_LAMBDA_FUNCTION_NAME, else test_function)")
	fs.StringVar(&o.handler, "handler", "", "handler (_HANDLER), when not given as the last argument")
	fs.DurationVar(&o.timeout, "timeout", 0, "function timeout, e.g. 3s (default $AWS_LAMBDA_FUNCTION_TIMEOUT seconds, else 300s)")
	fs.IntVar(&o.memoryMB, "memory-size", 0, "memory in MB (default $AWS_LAMBDA_FUNCTION_MEMORY_SIZE, else 3008); the execution environment is limited to it, swap off, where a memory cgroup can be made (the log says at start): past it the runtime is killed, the invoke gets Runtime.OutOfMemory and the environment restarts")
	fs.BoolVar(&o.tenants, "tenant-isolation", false, "tenant isolation (TenancyConfig PER_TENANT): every invoke must carry X-Amz-Tenant-Id (else 400 InvalidParameterValueException), the runtime sees it as Lambda-Runtime-Aws-Tenant-Id, and an execution environment serves one tenant only")
	fs.StringArrayVar(&o.env, "env", nil, "extra function environment variable KEY=VALUE (repeatable)")
	fs.IntVar(&o.maxConcurrency, "max-concurrency", 1, "execution environments, and so invokes running at once (reserved concurrency)")
	fs.IntVar(&o.perEnvConc, "per-environment-concurrency", 0, "run as on Lambda Managed Instances: each environment takes up to N invokes at once, and the runtime sees AWS_LAMBDA_MAX_CONCURRENCY=N (default $AWS_LAMBDA_MAX_CONCURRENCY, else the template's CapacityProviderConfig, else 0: one invoke per environment). Invokes past --max-concurrency × N queue or get 429")
	fs.BoolVar(&o.queue, "queue", true, "requests past --max-concurrency wait for an environment, up to the timeout; --queue=false answers 429 TooManyRequestsException at once, as Lambda does")
	fs.DurationVar(&o.keepAlive, "keep-alive", 0, "shut down environments idle this long (SHUTDOWN spindown, SIGTERM, SIGKILL); 0 keeps them")
	fs.IntVar(&o.provisioned, "provisioned", 0, "pre-warm this many environments at start, as provisioned concurrency (AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency)")
	fs.StringVar(&o.extensionsDir, "extensions-dir", environment.DefaultExtensionsDir, "directory of external extensions, started before the runtime")
	fs.BoolVar(&o.streamShaping, "stream-shaping", true, "slow streamed responses past their first 6 MiB to about 2 MiB/s, as Lambda does")
	fs.BoolVar(&o.initAtStart, "init-at-start", false, "run Init when the emulator starts instead of at the first invoke")
	fs.StringVar(&o.asyncDir, "async-dir", "", "directory that makes asynchronous (Event) invokes durable: each is synced to pending/ before its 202 and stays there until done; failed/ keeps those that failed every attempt, corrupt/ unreadable files; what shutdown leaves runs at the next start. Without it, queued events live in memory and are dropped at exit")
	fs.DurationVar(&o.asyncRetry, "async-retry-delay", time.Second, "wait before the first retry of a failed asynchronous event; doubles for the second")
	fs.IntVar(&o.asyncMaxQueued, "async-max-queued", async.DefaultMaxQueued, "asynchronous events held in memory while they wait; past it (or --async-max-queued-mb) they wait on disk only with --async-dir, else Event invokes get 429 TooManyRequestsException")
	fs.IntVar(&o.asyncMaxMB, "async-max-queued-mb", async.DefaultMaxQueuedBytes>>20, "megabytes of payload of the asynchronous events held in memory while they wait")
	fs.DurationVar(&o.shutdownGrace, "shutdown-timeout", service.DefaultShutdownTimeout, "at SIGTERM or SIGINT, grace for the invokes in flight before their runtimes are stopped; queued events stay in --async-dir. The default fits docker stop's 10 s; a second signal ends the grace at once")
	fs.StringVar(&o.functionURL, "function-url", "", "also serve the function as a function URL on this address, e.g. 127.0.0.1:9002")
	fs.BoolVar(&o.urlStreaming, "function-url-streaming", false, "function URL in invoke mode RESPONSE_STREAM: responses stream to the client")
	fs.StringVar(&o.apiAddr, "api-address", "127.0.0.1:3000", "address of the API Gateway emulation, when routes are given")
	fs.StringArrayVar(&o.httpRoutes, "route", nil, `HTTP API route (payload 2.0), e.g. "GET /items/{id}", "ANY /files/{proxy+}", "$default" (repeatable)`)
	fs.StringArrayVar(&o.restRoutes, "rest-route", nil, `REST API route (payload 1.0), e.g. "GET /items/{id}" (repeatable)`)
	fs.StringVar(&o.template, "template", "", "SAM template: its Api and HttpApi events become routes; Timeout, MemorySize, TenancyConfig, Environment and CapacityProviderConfig.PerExecutionEnvironmentMaxConcurrency apply unless set otherwise")
	fs.StringVar(&o.templateFn, "template-function", "", "the template's function (logical id or FunctionName); default: the only one")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's net/http/pprof debug endpoints (goroutines, heap, CPU) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	return fs
}

// splitArgs separates the emulator's own flags, wherever they stand, from
// the bootstrap command, as aws-lambda-rie does: unknown flags belong to the
// bootstrap. -h/--help counts only before the bootstrap.
func splitArgs(fs *pflag.FlagSet, args []string) (flags, command []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(command, args[i+1:]...)
		}
		if (a == "-h" || a == "--help") && len(command) == 0 {
			flags = append(flags, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		f := fs.Lookup(name)
		if !strings.HasPrefix(a, "--") || f == nil || name == "help" {
			command = append(command, a)
			continue
		}
		flags = append(flags, a)
		if !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, command
}

// Main runs the emulator with args (without argv[0]) until ctx ends; the
// function's output goes to stdout, the emulator's log to stderr. A first
// cancellation of ctx starts a graceful shutdown, whose grace EndGrace(ctx)
// ends (see ShutdownSignals). -h/--help prints Usage and the flags to
// stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := o.flags()
	fs.SetOutput(io.Discard)
	flagArgs, command := splitArgs(fs, args)
	if err := fs.Parse(flagArgs); err != nil {
		return fmt.Errorf("%w (see --help)", err)
	}
	if o.help {
		fmt.Fprint(stdout, Usage+fs.FlagUsages())
		return nil
	}
	log, err := NewLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	for _, a := range []string{o.emulatorAddr, o.runtimeAPIAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("address %q: %w", a, err)
		}
	}
	var tf *template.Function
	if o.template != "" {
		t, err := template.Load(o.template)
		if err != nil {
			return err
		}
		if tf, err = t.Function(o.templateFn); err != nil {
			return fmt.Errorf("template %s: %w", o.template, err)
		}
	}
	cfg, err := functionConfig(o, command, tf, log)
	if err != nil {
		return err
	}
	if os.Getenv("GOMAXPROCS") == "" && o.maxConcurrency*max(1, cfg.PerEnvironmentConcurrency) <= 1 {
		// One invoke at a time: the emulator waits on sockets and pipes,
		// and one P keeps its hand-offs on one thread (measured here:
		// about 15% less CPU per invoke than with a P per CPU). With
		// invokes in parallel, one P is a queue the runtimes wait on, and
		// a CPU idles (bench/README.md). GOMAXPROCS in the environment
		// overrides both.
		runtime.GOMAXPROCS(1)
	}
	routes, err := apiRoutes(o, tf)
	if err != nil {
		return err
	}
	if o.debugAddr != "" {
		stop, err := serveDebug(ctx, o.debugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	spec := service.FunctionSpec{
		Function:       cfg,
		RuntimeAPIAddr: o.runtimeAPIAddr,
		MaxConcurrency: o.maxConcurrency,
		Queue:          o.queue,
		KeepAlive:      o.keepAlive,
		Provisioned:    o.provisioned,
		InitAtStart:    o.initAtStart,
		ExtensionsDir:  o.extensionsDir,
		StreamShaping:  o.streamShaping,
		Async: service.AsyncSpec{
			Dir:            o.asyncDir,
			RetryDelay:     o.asyncRetry,
			MaxQueued:      o.asyncMaxQueued,
			MaxQueuedBytes: int64(o.asyncMaxMB) << 20,
		},
		FunctionURL:  o.functionURL,
		URLStreaming: o.urlStreaming,
		Routes:       routes,
	}
	return Serve(ctx, service.Config{
		InvokeAddr:      o.emulatorAddr,
		APIAddr:         o.apiAddr,
		ShutdownTimeout: o.shutdownGrace,
		EndGrace:        EndGrace(ctx),
		Output:          stdout,
		Log:             log,
	}, spec)
}

// functionConfig builds the function from the emulator's environment, flags
// and command, with aws-lambda-rie's rules.
func functionConfig(o options, command []string, tf *template.Function, log *slog.Logger) (function.Config, error) {
	cfg := function.Config{
		Name:    firstNonEmpty(o.functionName, os.Getenv("AWS_LAMBDA_FUNCTION_NAME")),
		Version: os.Getenv("AWS_LAMBDA_FUNCTION_VERSION"),
		Region:  firstNonEmpty(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")),
		Timeout: o.timeout,
		Credentials: function.Credentials{
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		},
		Env:          append(os.Environ(), o.env...),
		ExecutionEnv: os.Getenv("AWS_EXECUTION_ENV"),
		MemoryMB:     o.memoryMB,

		PerEnvironmentConcurrency: o.perEnvConc,
		TenantIsolation:           o.tenants,
	}
	if cfg.PerEnvironmentConcurrency == 0 {
		// As the official emulator reads it.
		if v := os.Getenv("AWS_LAMBDA_MAX_CONCURRENCY"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return cfg, fmt.Errorf("AWS_LAMBDA_MAX_CONCURRENCY=%q: want a whole number from 1 to %d", v, function.MaxPerEnvironmentConcurrency)
			}
			cfg.PerEnvironmentConcurrency = n
		}
	}
	if cfg.Timeout == 0 {
		if v := os.Getenv("AWS_LAMBDA_FUNCTION_TIMEOUT"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return cfg, fmt.Errorf("AWS_LAMBDA_FUNCTION_TIMEOUT=%q: want whole seconds", v)
			}
			cfg.Timeout = time.Duration(n) * time.Second
		}
	}
	if cfg.MemoryMB == 0 {
		if v := os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return cfg, fmt.Errorf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%q: want megabytes", v)
			}
			cfg.MemoryMB = n
		}
	}
	if tf != nil {
		// The template's settings, unless flags or the environment set them.
		cfg.Name = firstNonEmpty(cfg.Name, tf.FunctionName, tf.LogicalID)
		if cfg.Timeout == 0 {
			cfg.Timeout = time.Duration(tf.Timeout) * time.Second
		}
		if cfg.MemoryMB == 0 {
			cfg.MemoryMB = tf.MemorySize
		}
		if cfg.PerEnvironmentConcurrency == 0 {
			cfg.PerEnvironmentConcurrency = tf.PerEnvironmentConcurrency
		}
		cfg.TenantIsolation = cfg.TenantIsolation || tf.TenantIsolation
		for k, v := range tf.Environment {
			cfg.Env = append([]string{k + "=" + v}, cfg.Env...)
		}
		o.handler = firstNonEmpty(o.handler, tf.Handler)
	}
	cfg.Handler = firstNonEmpty(o.handler, os.Getenv("AWS_LAMBDA_FUNCTION_HANDLER"), os.Getenv("_HANDLER"))
	if len(command) == 0 {
		cfg.Command = []string{defaultBootstrap(log)}
		cfg.Dir = "/var/task"
	} else {
		cfg.Command = command
		if len(command) > 1 {
			cfg.Handler = command[len(command)-1]
		}
		if wd, err := os.Getwd(); err == nil {
			cfg.Dir = wd
		}
	}
	cfg.TaskRoot = firstNonEmpty(os.Getenv("LAMBDA_TASK_ROOT"), cfg.Dir)
	cfg = cfg.WithDefaults()
	return cfg, cfg.Validate()
}

// apiRoutes turns --route and --rest-route flags, and the template's API
// events, into API Gateway routes.
func apiRoutes(o options, tf *template.Function) ([]httpfront.Route, error) {
	var routes []httpfront.Route
	add := func(spec, version string) error {
		method, path, ok := strings.Cut(strings.TrimSpace(spec), " ")
		if spec == httpfront.DefaultRoute {
			method, path, ok = "", httpfront.DefaultRoute, true
		}
		if !ok {
			return fmt.Errorf("route %q: want \"METHOD /path\", e.g. \"GET /items/{id}\"", spec)
		}
		method = strings.ToUpper(method)
		if method == "ANY" {
			method = ""
		}
		routes = append(routes, httpfront.Route{Method: method, Path: strings.TrimSpace(path), Version: version})
		return nil
	}
	for _, r := range o.httpRoutes {
		if err := add(r, "2.0"); err != nil {
			return nil, err
		}
	}
	for _, r := range o.restRoutes {
		if err := add(r, "1.0"); err != nil {
			return nil, err
		}
	}
	if tf != nil {
		for _, ev := range tf.Events {
			if err := add(ev.Method+" "+ev.Path, ev.PayloadFormatVersion); err != nil {
				return nil, err
			}
		}
	}
	return routes, nil
}

// Serve runs the functions of specs on the process driver until ctx ends;
// the service shuts them down in its one order (see service.Service.Run).
// cfg.Driver is set here.
func Serve(ctx context.Context, cfg service.Config, specs ...service.FunctionSpec) (err error) {
	contained, err := process.New(process.Config{Log: cfg.Log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, contained.Close(context.Background())) }()
	cfg.Log.Info("containing runtimes with " + contained.Mechanism())
	cfg.Driver = contained
	svc, err := service.New(cfg)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		if err := svc.Add(ctx, spec); err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
	}
	return svc.Run(ctx)
}

// defaultBootstrap is the first bootstrap that exists; when none does, the
// first invoke reports Runtime.InvalidEntrypoint.
func defaultBootstrap(log *slog.Logger) string {
	candidates := []string{"/var/task/bootstrap", "/opt/bootstrap", "/var/runtime/bootstrap"}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	log.Warn("no bootstrap found", "looked_in", candidates)
	return candidates[0]
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// NewLogger returns the emulator's text logger on w at level (debug, info,
// warn or error; default $LOG_LEVEL, else info).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	level = firstNonEmpty(level, os.Getenv("LOG_LEVEL"), "info")
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
