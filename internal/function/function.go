// Package function describes a Lambda function as the platform sees it: its
// name, handler, limits, command and environment, and the reserved
// environment variables Lambda sets for every execution environment.
package function

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultName        = "test_function"
	DefaultVersion     = "$LATEST"
	DefaultRegion      = "us-east-1"
	DefaultAccountID   = "012345678912"
	DefaultTimeout     = 300 * time.Second
	DefaultMemoryMB    = 3008
	DefaultInitTimeout = 10 * time.Second
	DefaultTaskRoot    = "/var/task"
	DefaultRuntimeDir  = "/var/runtime"
)

// Config describes one function. The zero value of each field means the
// documented default; call WithDefaults before use.
type Config struct {
	Name      string // function name; default "test_function"
	Version   string // executed version; default "$LATEST"
	Region    string // default "us-east-1"
	AccountID string // default "012345678912"
	Handler   string // becomes _HANDLER; may be empty for custom runtimes

	Timeout     time.Duration // per-invoke limit; default 300 s
	InitTimeout time.Duration // limit of the Init phase; default 10 s
	MemoryMB    int           // configured memory; default 3008

	// TenantIsolation is TenancyConfig.TenantIsolationMode PER_TENANT:
	// every invoke must carry a tenant id (X-Amz-Tenant-Id), and an
	// execution environment serves one tenant only.
	TenantIsolation bool

	// Command is the bootstrap and its arguments. An empty bootstrap
	// (Command[0] == "") runs, on a driver that runs images, the image's
	// ENTRYPOINT with the arguments that follow, or with its CMD when
	// none do (as Lambda runs an Image function).
	Command []string
	// Dir is the working directory of the runtime; default LAMBDA_TASK_ROOT.
	Dir string
	// TaskRoot and RuntimeDir become LAMBDA_TASK_ROOT and LAMBDA_RUNTIME_DIR.
	TaskRoot, RuntimeDir string

	// Env holds the function's own variables, in KEY=VALUE form. Reserved
	// variables in it are ignored: the platform's values win.
	Env []string
	// ExecutionEnv is AWS_EXECUTION_ENV, e.g. "AWS_Lambda_python3.12";
	// empty leaves it unset, as for provided runtimes.
	ExecutionEnv string
	// Credentials are given to the runtime as AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; empty ones are unset.
	Credentials Credentials

	// PerEnvironmentConcurrency, when positive, runs the function as on
	// Lambda Managed Instances: each execution environment takes up to this
	// many invokes at once (PerExecutionEnvironmentMaxConcurrency, 1 to
	// 1600), and the runtime sees it as AWS_LAMBDA_MAX_CONCURRENCY. Zero is
	// Lambda's default mode: one invoke per environment.
	PerEnvironmentConcurrency int
}

// MaxPerEnvironmentConcurrency is Lambda's limit on
// PerExecutionEnvironmentMaxConcurrency.
const MaxPerEnvironmentConcurrency = 1600

// ManagedInstances reports whether the function runs as on Lambda Managed
// Instances (PerEnvironmentConcurrency set).
func (c Config) ManagedInstances() bool { return c.PerEnvironmentConcurrency > 0 }

// Slots is how many invokes one execution environment takes at once.
func (c Config) Slots() int { return max(c.PerEnvironmentConcurrency, 1) }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Name, DefaultName)
	def(&c.Version, DefaultVersion)
	def(&c.Region, DefaultRegion)
	def(&c.AccountID, DefaultAccountID)
	def(&c.TaskRoot, DefaultTaskRoot)
	def(&c.RuntimeDir, DefaultRuntimeDir)
	def(&c.Dir, c.TaskRoot)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	return c
}

// Validate reports the first setting Lambda itself would refuse.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" || len(c.Name) > 64 || strings.ContainsFunc(c.Name, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		errs = append(errs, fmt.Errorf("function name %q: must be 1 to 64 letters, digits, hyphens or underscores", c.Name))
	}
	if c.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("timeout %v: must be at least 1s", c.Timeout))
	}
	if c.InitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("init timeout %v: must be positive", c.InitTimeout))
	}
	if c.MemoryMB < 128 || c.MemoryMB > 10240 {
		errs = append(errs, fmt.Errorf("memory size %d MB: must be between 128 and 10240", c.MemoryMB))
	}
	if c.PerEnvironmentConcurrency < 0 || c.PerEnvironmentConcurrency > MaxPerEnvironmentConcurrency {
		errs = append(errs, fmt.Errorf("per-environment concurrency %d: must be between 1 and %d (0: one invoke per environment)", c.PerEnvironmentConcurrency, MaxPerEnvironmentConcurrency))
	}
	if len(c.Command) == 0 {
		errs = append(errs, errors.New("no bootstrap command"))
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("environment entry %q: want KEY=VALUE", kv))
		}
	}
	return errors.Join(errs...)
}

// ARN is the function's unqualified ARN.
func (c Config) ARN() string {
	return "arn:aws:lambda:" + c.Region + ":" + c.AccountID + ":function:" + c.Name
}

// Reserved reports whether Lambda reserves the variable name: a function's
// configuration cannot set it.
func Reserved(name string) bool {
	switch name {
	case "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
		"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
		"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_MAX_CONCURRENCY":
		return true
	}
	return false
}

// Credentials are the AWS credentials given to the runtime.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Instance describes one execution environment of the function: what differs
// between two environments of the same function.
type Instance struct {
	RuntimeAPI    string // host:port of the environment's Runtime API
	InitType      string // "on-demand" (default) or "provisioned-concurrency"
	LogStreamName string // default: a fresh stream name, see NewLogStreamName
}

// NewLogStreamName returns a log stream name in Lambda's format,
// "2026/11/21/[$LATEST]<32 hex>".
func NewLogStreamName(version string, now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("2006/01/02") + "/[" + version + "]" + hex.EncodeToString(b[:])
}

// Environ builds the runtime's environment: unreserved defaults, then the
// function's own variables, then the reserved variables, which always win.
// Values may contain "=": entries are split at the first one.
func (c Config) Environ(inst Instance) []string {
	vars := map[string]string{
		"LANG":                     "en_US.UTF-8",
		"TZ":                       ":UTC",
		"PATH":                     "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LD_LIBRARY_PATH":          "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
		"AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
		"AWS_XRAY_DAEMON_ADDRESS":  "169.254.79.129:2000",
		"AWS_LAMBDA_LOG_FORMAT":    "Text",
	}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" && !Reserved(k) {
			vars[k] = v
		}
	}
	if inst.InitType == "" {
		inst.InitType = "on-demand"
	}
	if inst.LogStreamName == "" {
		inst.LogStreamName = NewLogStreamName(c.Version, time.Now())
	}
	reserved := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        c.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     c.Version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(c.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + c.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      inst.LogStreamName,
		"AWS_LAMBDA_RUNTIME_API":          inst.RuntimeAPI,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  inst.InitType,
		"AWS_REGION":                      c.Region,
		"AWS_DEFAULT_REGION":              c.Region,
		"LAMBDA_TASK_ROOT":                c.TaskRoot,
		"LAMBDA_RUNTIME_DIR":              c.RuntimeDir,
		"_HANDLER":                        c.Handler,
		"AWS_EXECUTION_ENV":               c.ExecutionEnv,
		"AWS_ACCESS_KEY_ID":               c.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":           c.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN":               c.Credentials.SessionToken,
	}
	if c.ManagedInstances() {
		reserved["AWS_LAMBDA_MAX_CONCURRENCY"] = strconv.Itoa(c.PerEnvironmentConcurrency)
	}
	for k, v := range reserved {
		if v == "" {
			delete(vars, k)
			continue
		}
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
