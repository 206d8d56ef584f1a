package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/console"
	rie "github.com/lambdabox/lambdabox/internal/emulator"
	"github.com/lambdabox/lambdabox/internal/launch"
	"github.com/lambdabox/lambdabox/internal/serve"
	"github.com/lambdabox/lambdabox/internal/service"
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
MemorySize (default 128), ReservedConcurrentExecutions (caps the function's
execution environments; as on Lambda, requests past it get 429, and 0
throttles every request; without it, requests past 10 environments wait),
FunctionUrlConfig and the Api and HttpApi events. !Ref and !Sub of parameters
and of AWS::Region, AWS::AccountId (123456789012) and AWS::StackName resolve;
what cannot resolve locally (!GetAtt, !ImportValue, !If) is left empty with a
warning naming the function and property.

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

func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log, err := rie.NewLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	params, err := parseParameterOverrides(o.params)
	if err != nil {
		return err
	}
	return serve.Run(ctx, serve.Config{
		Template:        o.template,
		Parameters:      params,
		Addr:            o.addr,
		APIAddr:         o.apiAddr,
		Driver:          o.driver,
		EnvVars:         o.envVars,
		LogFormat:       o.logFormat,
		Color:           isTerminal(stdout) && os.Getenv("NO_COLOR") == "",
		Region:          o.region,
		NoWatch:         o.noWatch,
		URLBasePort:     o.urlBasePort,
		NodeRIC:         o.nodeRIC,
		CacheDir:        o.cacheDir,
		StateDir:        o.stateDir,
		Emulator:        o.emulator,
		ShutdownTimeout: o.shutdownGrace,
		EndGrace:        rie.EndGrace(ctx),
		Stdout:          stdout,
		Stderr:          stderr,
		Log:             log,
	})
}
