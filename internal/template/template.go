// Package template reads AWS SAM templates (template.yaml) into typed
// function definitions: each AWS::Serverless::Function and
// AWS::Lambda::Function with its settings, Globals applied, its layers
// (AWS::Serverless::LayerVersion) and its API Gateway events (Api,
// HttpApi).
//
// Intrinsic functions with a local value are resolved: !Ref of Parameters
// (their Default, or Config.Parameters), of pseudo parameters
// (AWS::Region, AWS::AccountId, AWS::StackName, ...) and of layer
// resources; !Sub and !Join of those. The others (!GetAtt, !ImportValue,
// !If, !Ref of other resources) leave the property empty and add a
// warning to Template.Warnings that names the function and the property.
// The package never logs.
package template

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resource types read.
const (
	ServerlessFunction = "AWS::Serverless::Function"
	LambdaFunction     = "AWS::Lambda::Function"
	ServerlessLayer    = "AWS::Serverless::LayerVersion"
	LambdaLayer        = "AWS::Lambda::LayerVersion"
)

// Function is one AWS::Serverless::Function or AWS::Lambda::Function.
type Function struct {
	LogicalID    string
	Type         string // ServerlessFunction or LambdaFunction; "" reads as ServerlessFunction
	FunctionName string // FunctionName property, when given
	Handler      string
	Runtime      string
	// CodeURI is the code folder (CodeUri; Code, when a path, for
	// AWS::Lambda::Function), relative to the template's folder unless
	// absolute; "" when the code is in S3.
	CodeURI     string
	ImageURI    string
	PackageType string // Zip (default) or Image
	Timeout     int    // seconds; 0 when unset
	MemorySize  int    // MB; 0 when unset
	Environment map[string]string
	Events      []Event
	// Layers are the function's layers that have local content, in order.
	Layers []Layer
	// Architectures is x86_64 or arm64; empty when unset.
	Architectures []string
	// ReservedConcurrency is ReservedConcurrentExecutions; nil when unset.
	ReservedConcurrency *int
	// EphemeralStorageMB is EphemeralStorage.Size; 0 when unset.
	EphemeralStorageMB int
	// FunctionURL is FunctionUrlConfig; nil without one.
	FunctionURL *FunctionURL
	// Docker is the Metadata that builds an Image function from a folder.
	Docker *Docker
	// PerEnvironmentConcurrency is CapacityProviderConfig's
	// PerExecutionEnvironmentMaxConcurrency: the function runs on Lambda
	// Managed Instances. Without the property it is Lambda's default for the
	// runtime on one vCPU (Python 16, Java and .NET 32, Node.js 64, others
	// 16); 0 when the function has no CapacityProviderConfig.
	PerEnvironmentConcurrency int
	// TenantIsolation is TenancyConfig.TenantIsolationMode PER_TENANT.
	TenantIsolation bool
}

// Name is the function's name: FunctionName, else its logical id.
func (f *Function) Name() string { return cmp.Or(f.FunctionName, f.LogicalID) }

// Layer is a layer with local content.
type Layer struct {
	LogicalID string
	// ContentURI is the layer's folder, relative to the template's folder
	// unless absolute.
	ContentURI string
}

// FunctionURL is a function's FunctionUrlConfig.
type FunctionURL struct {
	AuthType   string // NONE or AWS_IAM
	InvokeMode string // BUFFERED (default) or RESPONSE_STREAM
}

// Docker is the Metadata of an Image function built from a folder.
type Docker struct {
	Context    string // DockerContext, relative to the template's folder unless absolute
	Dockerfile string // default "Dockerfile"
	Tag        string // DockerTag; default "latest"
}

// Event is an API Gateway event source of a function.
type Event struct {
	Name   string
	Type   string // Api (REST, payload 1.0) or HttpApi (payload 2.0 unless PayloadFormatVersion says 1.0)
	Path   string
	Method string // upper-case; "ANY" for any
	// PayloadFormatVersion is "1.0" or "2.0".
	PayloadFormatVersion string
}

// Template holds the functions of a template, in logical-id order.
type Template struct {
	Functions []Function
	// Dir is the folder of the template file, which relative paths
	// (CodeUri, ContentUri, DockerContext) start from; "" for Parse.
	Dir string
	// Warnings says what was ignored or could not be resolved locally, one
	// line each, naming the function (or Globals) and the property.
	Warnings []string
}

// Path returns p (a CodeUri, ContentUri or DockerContext) as a path from
// the working directory.
func (t *Template) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || t.Dir == "" {
		return p
	}
	return filepath.Join(t.Dir, p)
}

// Config says how to resolve a template's parameters.
type Config struct {
	// Parameters override the template's Parameters' Default values
	// (--parameter-overrides).
	Parameters map[string]string
	// Region is AWS::Region; default DefaultRegion.
	Region string
	// AccountID is AWS::AccountId; default DefaultAccountID.
	AccountID string
	// StackName is AWS::StackName; default DefaultStackName.
	StackName string
}

// Load reads the template at path with no parameter overrides.
func Load(path string) (*Template, error) { return Config{}.Load(path) }

// Parse reads a SAM template with no parameter overrides.
func Parse(r io.Reader) (*Template, error) { return Config{}.Parse(r) }

// Load reads the template at path.
func (c Config) Load(path string) (*Template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	defer f.Close()
	t, err := c.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
	t.Dir = filepath.Dir(path)
	return t, nil
}

// Function returns the function with logical id or FunctionName id; with id
// empty, the only function.
func (t *Template) Function(id string) (*Function, error) {
	if id == "" {
		if len(t.Functions) != 1 {
			return nil, fmt.Errorf("the template has %d functions; name one", len(t.Functions))
		}
		return &t.Functions[0], nil
	}
	for i, f := range t.Functions {
		if f.LogicalID == id || f.FunctionName == id {
			return &t.Functions[i], nil
		}
	}
	return nil, fmt.Errorf("no function %q in the template", id)
}

type rawResource struct {
	Type       string    `yaml:"Type"`
	Properties yaml.Node `yaml:"Properties"`
	Metadata   struct {
		DockerContext string `yaml:"DockerContext"`
		Dockerfile    string `yaml:"Dockerfile"`
		DockerTag     string `yaml:"DockerTag"`
	} `yaml:"Metadata"`
}

type rawTemplate struct {
	Parameters map[string]struct {
		Default yaml.Node `yaml:"Default"`
	} `yaml:"Parameters"`
	Globals struct {
		Function yaml.Node `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]rawResource `yaml:"Resources"`
}

type rawFunction struct {
	FunctionName  string    `yaml:"FunctionName"`
	Handler       string    `yaml:"Handler"`
	Runtime       string    `yaml:"Runtime"`
	CodeURI       yaml.Node `yaml:"CodeUri"`
	Code          yaml.Node `yaml:"Code"` // AWS::Lambda::Function
	ImageURI      string    `yaml:"ImageUri"`
	PackageType   string    `yaml:"PackageType"`
	Timeout       string    `yaml:"Timeout"`
	MemorySize    string    `yaml:"MemorySize"`
	Layers        []string  `yaml:"Layers"`
	Architectures []string  `yaml:"Architectures"`
	Reserved      string    `yaml:"ReservedConcurrentExecutions"`
	Ephemeral     struct {
		Size string `yaml:"Size"`
	} `yaml:"EphemeralStorage"`
	URL *struct {
		AuthType   string `yaml:"AuthType"`
		InvokeMode string `yaml:"InvokeMode"`
	} `yaml:"FunctionUrlConfig"`
	Tenancy struct {
		Mode string `yaml:"TenantIsolationMode"`
	} `yaml:"TenancyConfig"`
	Environment struct {
		Variables map[string]string `yaml:"Variables"`
	} `yaml:"Environment"`
	CapacityProviderConfig *struct {
		PerExecutionEnvironmentMaxConcurrency string `yaml:"PerExecutionEnvironmentMaxConcurrency"`
	} `yaml:"CapacityProviderConfig"`
	Events map[string]struct {
		Type       string `yaml:"Type"`
		Properties struct {
			Path                 string `yaml:"Path"`
			Method               string `yaml:"Method"`
			PayloadFormatVersion string `yaml:"PayloadFormatVersion"`
		} `yaml:"Properties"`
	} `yaml:"Events"`
}

// maxTemplate bounds the template read (CloudFormation's own limit is 1 MB).
const maxTemplate = 16 << 20

// Parse reads a SAM template.
func (c Config) Parse(r io.Reader) (*Template, error) {
	var raw rawTemplate
	if err := yaml.NewDecoder(io.LimitReader(r, maxTemplate)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	res := &resolver{
		params: map[string]string{}, noValue: map[string]bool{},
		layers: map[string]bool{}, resources: map[string]bool{},
		region:  cmp.Or(c.Region, DefaultRegion),
		account: cmp.Or(c.AccountID, DefaultAccountID),
		stack:   cmp.Or(c.StackName, DefaultStackName),
	}
	for name, p := range raw.Parameters {
		switch {
		case p.Default.Kind == yaml.ScalarNode:
			res.params[name] = p.Default.Value
		case p.Default.Kind == yaml.SequenceNode: // a CommaDelimitedList's default
			var vs []string
			for _, v := range p.Default.Content {
				vs = append(vs, v.Value)
			}
			res.params[name] = strings.Join(vs, ",")
		default:
			res.noValue[name] = true
		}
	}
	for name, v := range c.Parameters {
		res.params[name] = v
		delete(res.noValue, name)
	}
	for id, r := range raw.Resources {
		res.resources[id] = true
		if r.Type == ServerlessLayer || r.Type == LambdaLayer {
			res.layers[id] = true
		}
	}
	var globals rawFunction
	if g := &raw.Globals.Function; !g.IsZero() {
		res.resolveTree("Globals", "Function", g)
		if err := g.Decode(&globals); err != nil {
			return nil, fmt.Errorf("Globals.Function: %w", err)
		}
	}
	t := &Template{}
	ids := make([]string, 0, len(raw.Resources))
	for id := range raw.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		r := raw.Resources[id]
		if r.Type != ServerlessFunction && r.Type != LambdaFunction {
			continue
		}
		var rf rawFunction
		if p := &r.Properties; !p.IsZero() {
			res.resolveTree(id, "", p)
			if err := p.Decode(&rf); err != nil {
				errs = append(errs, fmt.Errorf("Resources.%s.Properties: %w", id, err))
				continue
			}
		}
		f, err := build(id, r.Type, globals, rf, res)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f.PackageType == "Image" && r.Metadata.DockerContext != "" {
			f.Docker = &Docker{
				Context:    r.Metadata.DockerContext,
				Dockerfile: cmp.Or(r.Metadata.Dockerfile, "Dockerfile"),
				Tag:        cmp.Or(r.Metadata.DockerTag, "latest"),
			}
		}
		global := globals.Layers
		if r.Type == LambdaFunction {
			global = nil // Globals are SAM's; they do not apply to plain resources
		}
		f.Layers = layers(id, rf.Layers, global, raw.Resources, res)
		t.Functions = append(t.Functions, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.Warnings = res.warnings
	return t, nil
}

// layers resolves a function's Layers (Globals' first, as SAM merges them):
// a !Ref of a layer resource is its ContentUri (or Content, when a path);
// an ARN is skipped with a warning.
func layers(id string, own, global []string, resources map[string]rawResource, res *resolver) []Layer {
	var out []Layer
	for i, l := range append(append([]string{}, global...), own...) {
		path := "Layers[" + strconv.Itoa(i) + "]"
		if l == "" {
			continue // already warned about
		}
		lid, ok := strings.CutPrefix(l, layerRefPrefix)
		if !ok {
			res.warn(id, path, l, "is a published layer, which cannot be fetched locally; skipped")
			continue
		}
		var props struct {
			ContentURI yaml.Node `yaml:"ContentUri"`
			Content    yaml.Node `yaml:"Content"`
		}
		r := resources[lid]
		res.resolveTree(lid, "", &r.Properties)
		if err := r.Properties.Decode(&props); err != nil {
			res.warn(id, path, "layer "+lid, "has properties that cannot be read ("+err.Error()+"); skipped")
			continue
		}
		uri := props.ContentURI
		if uri.IsZero() {
			uri = props.Content
		}
		if uri.Kind != yaml.ScalarNode || uri.Value == "" {
			res.warn(id, path, "layer "+lid, "has no local ContentUri (S3 content cannot be fetched locally); skipped")
			continue
		}
		out = append(out, Layer{LogicalID: lid, ContentURI: uri.Value})
	}
	return out
}

// codeURI is the local folder of a CodeUri (or Code) node; S3 locations
// and inline code are warned about and give "".
func codeURI(id, prop string, n yaml.Node, res *resolver) string {
	switch {
	case n.IsZero():
		return ""
	case n.Kind == yaml.ScalarNode:
		if strings.HasPrefix(n.Value, "s3://") {
			res.warn(id, prop, n.Value, "is in S3, which cannot be fetched locally; the code folder is left empty")
			return ""
		}
		return n.Value
	case n.Kind == yaml.MappingNode:
		var m map[string]yaml.Node
		_ = n.Decode(&m)
		if v, ok := m["ImageUri"]; ok && v.Kind == yaml.ScalarNode {
			return "" // an image function's Code
		}
		if _, ok := m["ZipFile"]; ok {
			res.warn(id, prop+".ZipFile", "inline code", "is not supported locally; the code folder is left empty")
			return ""
		}
		res.warn(id, prop, "an S3 location", "cannot be fetched locally; the code folder is left empty")
		return ""
	}
	res.warn(id, prop, "a list", "is not a code location; the code folder is left empty")
	return ""
}

func build(id, typ string, g, rf rawFunction, res *resolver) (Function, error) {
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	f := Function{
		LogicalID: id, Type: typ, FunctionName: rf.FunctionName,
		Handler: or(rf.Handler, g.Handler), Runtime: or(rf.Runtime, g.Runtime),
		ImageURI:    rf.ImageURI,
		PackageType: or(or(rf.PackageType, g.PackageType), "Zip"),
		Environment: map[string]string{},
	}
	if typ == LambdaFunction {
		// No Globals for plain CloudFormation resources.
		f.Handler, f.Runtime, f.PackageType = rf.Handler, rf.Runtime, or(rf.PackageType, "Zip")
		f.CodeURI = codeURI(id, "Code", rf.Code, res)
		if !rf.Code.IsZero() && rf.Code.Kind == yaml.MappingNode {
			var code struct {
				ImageURI string `yaml:"ImageUri"`
			}
			_ = rf.Code.Decode(&code)
			f.ImageURI = code.ImageURI
		}
		g = rawFunction{}
	} else {
		f.CodeURI = codeURI(id, "CodeUri", rf.CodeURI, res)
		if f.CodeURI == "" && rf.CodeURI.IsZero() {
			f.CodeURI = codeURI("Globals", "Function.CodeUri", g.CodeURI, res)
		}
	}
	var err error
	if f.Timeout, err = number(or(rf.Timeout, g.Timeout)); err != nil {
		return f, fmt.Errorf("Resources.%s.Properties.Timeout: %w", id, err)
	}
	if f.MemorySize, err = number(or(rf.MemorySize, g.MemorySize)); err != nil {
		return f, fmt.Errorf("Resources.%s.Properties.MemorySize: %w", id, err)
	}
	if f.EphemeralStorageMB, err = number(or(rf.Ephemeral.Size, g.Ephemeral.Size)); err != nil {
		return f, fmt.Errorf("Resources.%s.Properties.EphemeralStorage.Size: %w", id, err)
	}
	if s := or(rf.Reserved, g.Reserved); s != "" {
		n, err := number(s)
		if err != nil {
			return f, fmt.Errorf("Resources.%s.Properties.ReservedConcurrentExecutions: %w", id, err)
		}
		f.ReservedConcurrency = &n
	}
	f.Architectures = rf.Architectures
	if len(f.Architectures) == 0 {
		f.Architectures = g.Architectures
	}
	for _, a := range f.Architectures {
		if a != "x86_64" && a != "arm64" {
			return f, fmt.Errorf("Resources.%s.Properties.Architectures: %q: want x86_64 or arm64", id, a)
		}
	}
	if u := cmp.Or(rf.URL, g.URL); u != nil {
		f.FunctionURL = &FunctionURL{AuthType: cmp.Or(u.AuthType, "NONE"), InvokeMode: cmp.Or(u.InvokeMode, "BUFFERED")}
		if m := f.FunctionURL.InvokeMode; m != "BUFFERED" && m != "RESPONSE_STREAM" {
			return f, fmt.Errorf("Resources.%s.Properties.FunctionUrlConfig.InvokeMode %q: want BUFFERED or RESPONSE_STREAM", id, m)
		}
		if a := f.FunctionURL.AuthType; a != "NONE" && a != "AWS_IAM" {
			return f, fmt.Errorf("Resources.%s.Properties.FunctionUrlConfig.AuthType %q: want NONE or AWS_IAM", id, a)
		}
	}
	if cp := cmp.Or(rf.CapacityProviderConfig, g.CapacityProviderConfig); cp != nil {
		if f.PerEnvironmentConcurrency, err = number(cp.PerExecutionEnvironmentMaxConcurrency); err != nil {
			return f, fmt.Errorf("Resources.%s.Properties.CapacityProviderConfig.PerExecutionEnvironmentMaxConcurrency: %w", id, err)
		}
		if f.PerEnvironmentConcurrency == 0 {
			f.PerEnvironmentConcurrency = defaultConcurrency(f.Runtime)
		}
	}
	switch mode := or(rf.Tenancy.Mode, g.Tenancy.Mode); mode {
	case "":
	case "PER_TENANT":
		f.TenantIsolation = true
	default:
		return f, fmt.Errorf("Resources.%s.Properties.TenancyConfig.TenantIsolationMode %q: want PER_TENANT", id, mode)
	}
	for k, v := range g.Environment.Variables {
		f.Environment[k] = v
	}
	for k, v := range rf.Environment.Variables {
		f.Environment[k] = v
	}
	names := make([]string, 0, len(rf.Events))
	for name := range rf.Events {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev := rf.Events[name]
		if ev.Type != "Api" && ev.Type != "HttpApi" {
			continue
		}
		e := Event{Name: name, Type: ev.Type, Path: ev.Properties.Path, Method: strings.ToUpper(ev.Properties.Method)}
		switch {
		case ev.Type == "Api":
			e.PayloadFormatVersion = "1.0"
		case ev.Properties.PayloadFormatVersion == "1.0":
			e.PayloadFormatVersion = "1.0"
		default:
			e.PayloadFormatVersion = "2.0"
		}
		if e.Method == "" {
			e.Method = "ANY"
		}
		if e.Path == "" {
			if ev.Type == "Api" {
				return f, fmt.Errorf("Resources.%s.Properties.Events.%s: an Api event needs a Path", id, name)
			}
			e.Path, e.Method = "$default", "ANY" // an HttpApi event without a path is the catch-all route
		}
		f.Events = append(f.Events, e)
	}
	return f, nil
}

func number(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

// defaultConcurrency is Lambda Managed Instances' default
// PerExecutionEnvironmentMaxConcurrency for runtime, on one vCPU.
func defaultConcurrency(runtime string) int {
	switch {
	case strings.HasPrefix(runtime, "java"), strings.HasPrefix(runtime, "dotnet"):
		return 32
	case strings.HasPrefix(runtime, "nodejs"):
		return 64
	default: // python, and runtimes AWS gives no default for
		return 16
	}
}
