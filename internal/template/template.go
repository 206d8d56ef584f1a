// Package template reads AWS SAM templates (template.yaml) into typed
// function definitions: each AWS::Serverless::Function with its settings,
// Globals applied, and its API Gateway events (Api, HttpApi). CloudFormation
// intrinsic functions (!Ref, !Sub, ...) are kept as text, unresolved.
package template

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Function is one AWS::Serverless::Function.
type Function struct {
	LogicalID    string
	FunctionName string // FunctionName property, when given
	Handler      string
	Runtime      string
	CodeURI      string
	ImageURI     string
	PackageType  string // Zip (default) or Image
	Timeout      int    // seconds; 0 when unset
	MemorySize   int    // MB; 0 when unset
	Environment  map[string]string
	Events       []Event
	// PerEnvironmentConcurrency is CapacityProviderConfig's
	// PerExecutionEnvironmentMaxConcurrency: the function runs on Lambda
	// Managed Instances. Without the property it is Lambda's default for the
	// runtime on one vCPU (Python 16, Java and .NET 32, Node.js 64, others
	// 16); 0 when the function has no CapacityProviderConfig.
	PerEnvironmentConcurrency int
	// TenantIsolation is TenancyConfig.TenantIsolationMode PER_TENANT.
	TenantIsolation bool
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
}

// Load reads the template at path.
func Load(path string) (*Template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
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

type rawTemplate struct {
	Globals struct {
		Function yaml.Node `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]struct {
		Type       string    `yaml:"Type"`
		Properties yaml.Node `yaml:"Properties"`
	} `yaml:"Resources"`
}

type rawFunction struct {
	FunctionName string `yaml:"FunctionName"`
	Handler      string `yaml:"Handler"`
	Runtime      string `yaml:"Runtime"`
	CodeURI      string `yaml:"CodeUri"`
	ImageURI     string `yaml:"ImageUri"`
	PackageType  string `yaml:"PackageType"`
	Timeout      string `yaml:"Timeout"`
	MemorySize   string `yaml:"MemorySize"`
	Tenancy      struct {
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

// Parse reads a SAM template.
func Parse(r io.Reader) (*Template, error) {
	var raw rawTemplate
	if err := yaml.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var globals rawFunction
	if !raw.Globals.Function.IsZero() {
		if err := raw.Globals.Function.Decode(&globals); err != nil {
			return nil, fmt.Errorf("Globals.Function: %w", err)
		}
	}
	t := &Template{}
	ids := make([]string, 0, len(raw.Resources))
	for id, res := range raw.Resources {
		if res.Type == "AWS::Serverless::Function" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		var rf rawFunction
		if p := raw.Resources[id].Properties; !p.IsZero() {
			if err := p.Decode(&rf); err != nil {
				errs = append(errs, fmt.Errorf("Resources.%s.Properties: %w", id, err))
				continue
			}
		}
		f, err := build(id, globals, rf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.Functions = append(t.Functions, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func build(id string, g, rf rawFunction) (Function, error) {
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	f := Function{
		LogicalID: id, FunctionName: rf.FunctionName,
		Handler: or(rf.Handler, g.Handler), Runtime: or(rf.Runtime, g.Runtime),
		CodeURI: or(rf.CodeURI, g.CodeURI), ImageURI: rf.ImageURI,
		PackageType: or(or(rf.PackageType, g.PackageType), "Zip"),
		Environment: map[string]string{},
	}
	var err error
	if f.Timeout, err = number(or(rf.Timeout, g.Timeout)); err != nil {
		return f, fmt.Errorf("Resources.%s.Properties.Timeout: %w", id, err)
	}
	if f.MemorySize, err = number(or(rf.MemorySize, g.MemorySize)); err != nil {
		return f, fmt.Errorf("Resources.%s.Properties.MemorySize: %w", id, err)
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
