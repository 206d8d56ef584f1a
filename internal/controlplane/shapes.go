package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/store"
)

// Request bodies, as AWS's API reference documents them; fields lambdabox
// does not use are ignored.
type (
	codeIn struct {
		ZipFile  []byte `json:",omitempty"` // base64 in JSON
		ImageUri string `json:",omitempty"`
		S3Bucket string `json:",omitempty"`
		S3Key    string `json:",omitempty"`
	}
	environmentIn struct {
		Variables map[string]string
	}
	createIn struct {
		FunctionName     string
		Runtime          string
		Role             string
		Handler          string
		Description      string
		Code             *codeIn
		Timeout          *int
		MemorySize       *int
		Publish          bool
		PackageType      string
		Environment      *environmentIn
		Architectures    []string
		EphemeralStorage *struct{ Size int }
		TenancyConfig    *struct{ TenantIsolationMode string }
	}
	updateConfigIn struct {
		Runtime          *string
		Role             *string
		Handler          *string
		Description      *string
		Timeout          *int
		MemorySize       *int
		Environment      *environmentIn
		EphemeralStorage *struct{ Size int }
		RevisionId       string
	}
	updateCodeIn struct {
		ZipFile       []byte
		ImageUri      string
		S3Bucket      string
		Publish       bool
		RevisionId    string
		Architectures []string
	}
	publishIn struct {
		CodeSha256  string
		Description string
		RevisionId  string
	}
	routingIn struct {
		AdditionalVersionWeights map[string]float64
	}
	aliasIn struct {
		Name            string
		FunctionVersion string
		Description     *string
		RoutingConfig   *routingIn
		RevisionId      string
	}
	concurrencyIn struct {
		ReservedConcurrentExecutions *int
	}
	urlIn struct {
		AuthType   string
		InvokeMode string
		Cors       json.RawMessage
	}
)

// maxBody bounds a request body as Lambda does: a 50 MiB zip in base64.
const maxBody = 69905067

// operation names the operation of the uploads, for their size error.
func operation(r *http.Request) string {
	switch r.Pattern {
	case "POST /2015-03-31/functions":
		return " for the CreateFunction operation"
	case "PUT /2015-03-31/functions/{name}/code":
		return " for the UpdateFunctionCode operation"
	}
	return ""
}

// decode reads a JSON request body into v: an empty body is {}.
func decode(r *http.Request, v any) *apiError {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Type: "InvalidRequestContentException", Msg: "Could not read request body: " + err.Error()}
	}
	if len(b) > maxBody {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "RequestEntityTooLargeException", Msg: fmt.Sprintf("Request must be smaller than %d bytes%s", maxBody, operation(r))}
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &apiError{Status: http.StatusBadRequest, Type: "InvalidRequestContentException", Msg: "Could not parse request body into json: " + err.Error()}
	}
	return nil
}

// Runtimes are the runtimes Lambda takes today.
var Runtimes = []string{
	"nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x",
	"python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14",
	"java8.al2", "java11", "java17", "java21", "java25",
	"dotnet8", "dotnet10", "ruby3.2", "ruby3.3", "ruby3.4",
	"provided", "provided.al2", "provided.al2023",
}

func checkRuntime(rt string) *apiError {
	if !slices.Contains(Runtimes, rt) {
		return badParam("The runtime parameter of " + rt + " is not supported. Supported runtimes: " + strings.Join(Runtimes, ", "))
	}
	return nil
}

// checkLimits checks the settings a create or update may give (nil: not
// given) against the API model's constraints (ValidationException) and
// Lambda's own limits (InvalidParameterValueException).
func checkLimits(timeout, memory, ephemeral *int, role, description *string) *apiError {
	switch {
	case timeout != nil && *timeout < 1:
		return validation(fmt.Sprintf("'%d'", *timeout), "timeout", "Member must have value greater than or equal to 1")
	case timeout != nil && *timeout > 900:
		return badParam(fmt.Sprintf("The timeout %d is over the maximum of 900 seconds", *timeout))
	case memory != nil && *memory < 128:
		return validation(fmt.Sprintf("'%d'", *memory), "memorySize", "Member must have value greater than or equal to 128")
	case memory != nil && *memory > 10240:
		return validation(fmt.Sprintf("'%d'", *memory), "memorySize", "Member must have value less than or equal to 10240")
	case ephemeral != nil && *ephemeral < 512:
		return validation(fmt.Sprintf("'%d'", *ephemeral), "ephemeralStorage.size", "Member must have value greater than or equal to 512")
	case ephemeral != nil && *ephemeral > 10240:
		return validation(fmt.Sprintf("'%d'", *ephemeral), "ephemeralStorage.size", "Member must have value less than or equal to 10240")
	case role != nil && *role == "":
		return validation("null", "role", "Member must not be null")
	case role != nil && !rolePattern.MatchString(*role):
		return validation("'"+*role+"'", "role", "Member must satisfy regular expression pattern: "+rolePattern.String())
	case description != nil && len(*description) > 256:
		return validation("'"+*description+"'", "description", "Member must have length less than or equal to 256")
	}
	return nil
}

// rolePattern is the API model's pattern of an execution role's ARN.
var rolePattern = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)

// validation is the ValidationException of a value that breaks the API
// model's constraint on field; value is quoted, or null.
func validation(value, field, constraint string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
		Msg: "1 validation error detected: Value " + value + " at '" + field + "' failed to satisfy constraint: " + constraint}
}

func checkEnv(env *environmentIn) *apiError {
	if env == nil {
		return nil
	}
	var reserved []string
	size := 0
	for k, v := range env.Variables {
		if !validEnvName(k) {
			return badParam("Environment variable name " + k + " is not valid: it must start with a letter and contain only letters, digits and underscores")
		}
		if function.Reserved(k) {
			reserved = append(reserved, k)
		}
		size += len(k) + len(v)
	}
	if len(reserved) > 0 {
		slices.Sort(reserved)
		return badParam("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: " + strings.Join(reserved, ", "))
	}
	if size > 4096 {
		return badParam("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit.")
	}
	return nil
}

func validEnvName(k string) bool {
	if k == "" || !(k[0] >= 'a' && k[0] <= 'z' || k[0] >= 'A' && k[0] <= 'Z') {
		return false
	}
	return strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
}

// validate checks a CreateFunction request as Lambda does.
// createNamePattern is CreateFunction's FunctionName pattern: no dots,
// no qualifier.
const createNamePattern = `(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)`

func (in *createIn) validate() *apiError {
	if in.PackageType == "" {
		in.PackageType = "Zip"
	}
	// A name, or a full or partial ARN (which names the function too).
	name, qual, ok := function.ParseName(in.FunctionName)
	if !ok || qual != "" || len(name) > 64 || strings.Contains(name, ".") {
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + in.FunctionName + "' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: " + createNamePattern}
	}
	in.FunctionName = name
	if in.Code == nil {
		return badParam("Code is required")
	}
	var eph *int
	if in.EphemeralStorage != nil {
		eph = &in.EphemeralStorage.Size
	}
	if e := checkLimits(in.Timeout, in.MemorySize, eph, &in.Role, &in.Description); e != nil {
		return e
	}
	if e := checkEnv(in.Environment); e != nil {
		return e
	}
	if t := in.TenancyConfig; t != nil && t.TenantIsolationMode != "PER_TENANT" {
		return badParam("TenancyConfig.TenantIsolationMode must be PER_TENANT")
	}
	switch in.PackageType {
	case "Zip":
		if e := checkRuntime(in.Runtime); e != nil {
			return e
		}
		if in.Handler == "" && !strings.HasPrefix(in.Runtime, "provided") {
			return badParam("Handler is required for a Zip function of runtime " + in.Runtime)
		}
		if in.Code.ImageUri != "" {
			return badParam("Please don't provide ImageUri when updating a function with packageType Zip.")
		}
		if len(in.Code.ZipFile) == 0 {
			if in.Code.S3Bucket != "" {
				return badParam("Code from S3 (S3Bucket, S3Key) is not supported by lambdabox: upload it as ZipFile")
			}
			return badParam("Please provide a source for function code: ZipFile")
		}
	case "Image":
		if in.Code.ImageUri == "" {
			return badParam("ImageUri is required for a function of PackageType Image")
		}
		if in.Runtime != "" || in.Handler != "" {
			return badParam("Runtime and Handler are not supported for a function of PackageType Image")
		}
	default:
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + in.PackageType + "' at 'packageType' failed to satisfy constraint: Member must satisfy enum value set: [Image, Zip]"}
	}
	return nil
}

// lambdaTime is Lambda's LastModified format.
const lambdaTime = "2006-01-02T15:04:05.000-0700"

// configOut is FunctionConfiguration.
type configOut struct {
	FunctionName               string
	FunctionArn                string
	Runtime                    string `json:",omitempty"`
	Role                       string
	Handler                    string `json:",omitempty"`
	CodeSize                   int64
	Description                string
	Timeout                    int
	MemorySize                 int
	LastModified               string
	CodeSha256                 string
	Version                    string
	Environment                *environmentIn `json:",omitempty"`
	TracingConfig              map[string]string
	RevisionId                 string
	State                      string
	StateReason                string `json:",omitempty"`
	StateReasonCode            string `json:",omitempty"`
	LastUpdateStatus           string
	LastUpdateStatusReason     string `json:",omitempty"`
	LastUpdateStatusReasonCode string `json:",omitempty"`
	PackageType                string
	Architectures              []string
	EphemeralStorage           map[string]int
	LoggingConfig              map[string]string
	SnapStart                  map[string]string
	TenancyConfig              map[string]string `json:",omitempty"`
}

func (s *Server) arn(name string) string {
	return "arn:aws:lambda:" + s.cfg.Region + ":" + s.cfg.AccountID + ":function:" + name
}

func (s *Server) configOut(f store.Function) configOut {
	arn := s.arn(f.Name)
	if f.Version != "$LATEST" {
		arn += ":" + f.Version
	}
	out := configOut{
		FunctionName: f.Name, FunctionArn: arn, Runtime: f.Runtime, Role: f.Role, Handler: f.Handler,
		CodeSize: f.CodeSize, Description: f.Description, Timeout: f.Timeout, MemorySize: f.MemorySize,
		LastModified: f.LastModified.UTC().Format(lambdaTime), CodeSha256: f.CodeSha256, Version: f.Version,
		TracingConfig: map[string]string{"Mode": "PassThrough"}, RevisionId: f.RevisionID,
		State: f.State, StateReason: f.StateReason, StateReasonCode: f.StateReasonCode,
		LastUpdateStatus: f.LastUpdateStatus, LastUpdateStatusReason: f.LastUpdateReason, LastUpdateStatusReasonCode: f.LastUpdateCode,
		PackageType: f.PackageType, Architectures: f.Arch,
		EphemeralStorage: map[string]int{"Size": max(f.Ephemeral, 512)},
		LoggingConfig:    map[string]string{"LogFormat": "Text", "LogGroup": "/aws/lambda/" + f.Name},
		SnapStart:        map[string]string{"ApplyOn": "None", "OptimizationStatus": "Off"},
	}
	if len(out.Architectures) == 0 {
		out.Architectures = []string{"x86_64"}
	}
	if len(f.Env) > 0 {
		out.Environment = &environmentIn{Variables: f.Env}
	}
	if f.TenantIsolation {
		out.TenancyConfig = map[string]string{"TenantIsolationMode": "PER_TENANT"}
	}
	return out
}

// runnerFunction is the Runner's view of a stored version.
func (s *Server) runnerFunction(f store.Function) (Function, error) {
	fn := Function{
		Name: f.Name, Version: f.Version, Region: s.cfg.Region, AccountID: s.cfg.AccountID, ARN: s.arn(f.Name),
		PackageType: f.PackageType, Runtime: f.Runtime, Handler: f.Handler, ImageURI: f.ImageURI,
		Env: f.Env, Timeout: time.Duration(f.Timeout) * time.Second, MemoryMB: f.MemorySize, EphemeralMB: f.Ephemeral,
		TenantIsolation: f.TenantIsolation,
	}
	if f.PackageType == "Zip" {
		dir, err := s.st.CodeDir(f.CodeSha256)
		if err != nil {
			return fn, fmt.Errorf("unpacking the code of %s: %w", f.Name, err)
		}
		fn.CodeDir = dir
	}
	if f.Version == "$LATEST" {
		// A version's is its function's: deployVersion sets it.
		fn.ReservedConcurrency = f.ReservedConcurrency
		if u := f.URL; u != nil {
			fn.URL = &URL{AuthType: u.AuthType, InvokeMode: u.InvokeMode, Port: u.Port}
		}
	}
	return fn, nil
}

// aliasOut is AliasConfiguration.
type aliasOut struct {
	AliasArn        string
	Name            string
	FunctionVersion string
	Description     string
	RoutingConfig   *routingIn `json:",omitempty"`
	RevisionId      string
}

func (s *Server) aliasOut(a store.Alias) aliasOut {
	out := aliasOut{AliasArn: s.arn(a.Function) + ":" + a.Name, Name: a.Name, FunctionVersion: a.Version, Description: a.Description, RevisionId: a.RevisionID}
	if len(a.Weights) > 0 {
		out.RoutingConfig = &routingIn{AdditionalVersionWeights: a.Weights}
	}
	return out
}

// errPrecondition is a RevisionId that does not match.
var errPrecondition = &apiError{Status: http.StatusPreconditionFailed, Type: "PreconditionFailedException",
	Msg: "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"}
