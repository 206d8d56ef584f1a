package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/lambdabox/lambdabox/internal/template"
)

// EnvVars is an --env-vars file, in SAM CLI's format:
//
//	{"Parameters": {"STAGE": "local"}, "HelloFunction": {"TABLE": "items"}}
//
// "Parameters" applies to every function; a function's own object (by
// logical id or FunctionName) wins over it. As with SAM, only variables
// that the function declares in the template are overridden.
type EnvVars map[string]map[string]string

// ParseEnvVars reads an --env-vars file. Values may be strings, numbers or
// booleans.
func ParseEnvVars(r io.Reader) (EnvVars, error) {
	var raw map[string]map[string]any
	if err := json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("env vars: want {\"Parameters\": {...}, \"FunctionLogicalId\": {...}}: %w", err)
	}
	e := EnvVars{}
	for fn, vars := range raw {
		m := map[string]string{}
		for k, v := range vars {
			switch v := v.(type) {
			case string:
				m[k] = v
			case float64:
				m[k] = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				m[k] = strconv.FormatBool(v)
			default:
				return nil, fmt.Errorf("env vars: %s.%s: want a string, number or boolean", fn, k)
			}
		}
		e[fn] = m
	}
	return e, nil
}

// For returns the overrides of f's variables.
func (e EnvVars) For(f template.Function) map[string]string {
	out := map[string]string{}
	for _, src := range []map[string]string{e["Parameters"], e[f.LogicalID], e[f.FunctionName]} {
		for k, v := range src {
			if _, declared := f.Environment[k]; declared {
				out[k] = v
			}
		}
	}
	return out
}
