package template

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of the pseudo parameters, as SAM CLI uses them locally.
const (
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
	DefaultStackName = "local"
)

// layerRefPrefix marks a !Ref of an AWS::Serverless::LayerVersion (or
// AWS::Lambda::LayerVersion) resource, resolved to its logical id: only a
// function's Layers may hold one.
const layerRefPrefix = "\x00layer:"

// resolver resolves the intrinsic functions that have a local value: !Ref
// of parameters, pseudo parameters and layers, !Sub and !Join of those.
// What cannot be resolved becomes a warning and an empty value.
type resolver struct {
	params    map[string]string // parameter values: Default, then overrides
	noValue   map[string]bool   // parameters without a value
	layers    map[string]bool   // logical ids of layer resources
	resources map[string]bool   // logical ids of every resource
	region    string
	account   string
	stack     string
	warnings  []string
	depth     int
}

// maxDepth bounds the nesting of intrinsics the resolver follows.
const maxDepth = 32

// warn records that what, at path of owner, cannot be resolved locally.
func (r *resolver) warn(owner, path, what, why string) {
	r.warnings = append(r.warnings, fmt.Sprintf("%s: %s: %s %s", owner, path, what, why))
}

// resolveTree replaces, in place, every intrinsic below n (a resource's
// Properties or Globals.Function) by its value; owner and path name it in
// warnings. A property whose value is !Ref AWS::NoValue is removed. The
// subtree "Events" is left alone: only the API events' Path and Method
// are read, as text.
func (r *resolver) resolveTree(owner, path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			r.resolveTree(owner, path, c)
		}
	case yaml.MappingNode:
		if v, ok := r.intrinsic(owner, path, n); ok {
			*n = *v
			return
		}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if path == "" && k.Value == "Events" {
				kept = append(kept, k, v)
				continue
			}
			if isNoValue(v) {
				continue
			}
			r.resolveTree(owner, p, v)
			kept = append(kept, k, v)
		}
		n.Content = kept
	case yaml.SequenceNode:
		if v, ok := r.intrinsic(owner, path, n); ok {
			*n = *v
			return
		}
		kept := n.Content[:0]
		for i, c := range n.Content {
			if isNoValue(c) {
				continue
			}
			r.resolveTree(owner, path+"["+strconv.Itoa(i)+"]", c)
			kept = append(kept, c)
		}
		n.Content = kept
	case yaml.ScalarNode:
		if v, ok := r.intrinsic(owner, path, n); ok {
			*n = *v
		}
	case yaml.AliasNode:
		// Aliases are resolved by the decoder; their targets are walked
		// where they are defined.
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// isNoValue reports a !Ref AWS::NoValue (short or long form).
func isNoValue(n *yaml.Node) bool {
	name, arg := intrinsicOf(n)
	return name == "Ref" && arg != nil && arg.Kind == yaml.ScalarNode && arg.Value == "AWS::NoValue"
}

// intrinsicOf returns the intrinsic function n is (Ref, Fn::Sub, ...) and
// its argument, in short (!Sub x) or long ({"Fn::Sub": x}) form; "" for
// plain values.
func intrinsicOf(n *yaml.Node) (string, *yaml.Node) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := n.Tag[1:]
		if name != "Ref" && name != "Condition" {
			name = "Fn::" + name
		}
		arg := *n
		arg.Tag = ""
		switch n.Kind {
		case yaml.ScalarNode:
			arg.Tag = "!!str"
		case yaml.SequenceNode:
			arg.Tag = "!!seq"
		case yaml.MappingNode:
			arg.Tag = "!!map"
		}
		return name, &arg
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		k := n.Content[0].Value
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, n.Content[1]
		}
	}
	return "", nil
}

// shortForm writes an intrinsic as a template would, for warnings.
func shortForm(name string, arg *yaml.Node) string {
	short := "!" + strings.TrimPrefix(name, "Fn::")
	if arg.Kind == yaml.ScalarNode {
		return short + " " + arg.Value
	}
	b, err := yaml.Marshal(arg)
	if err != nil {
		return short
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return short + " " + s
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// intrinsic resolves n when it is an intrinsic function: ok is false for
// plain values. An intrinsic that cannot be resolved is warned about and
// resolves to "".
func (r *resolver) intrinsic(owner, path string, n *yaml.Node) (*yaml.Node, bool) {
	name, arg := intrinsicOf(n)
	if name == "" {
		return nil, false
	}
	s, err := r.eval(name, arg)
	if err != "" {
		r.warn(owner, path, shortForm(name, arg), err)
		return scalar(""), true
	}
	return scalar(s), true
}

// eval computes an intrinsic's value as text; why says why it cannot.
func (r *resolver) eval(name string, arg *yaml.Node) (value, why string) {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxDepth {
		return "", "is nested too deeply; left empty"
	}
	switch name {
	case "Ref":
		if arg.Kind != yaml.ScalarNode {
			return "", "is not a name; left empty"
		}
		return r.ref(arg.Value)
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::Join":
		return r.join(arg)
	case "Fn::If", "Condition":
		return "", "needs the template's Conditions, which are not evaluated locally; left empty"
	default:
		return "", "cannot be resolved locally; left empty"
	}
}

// value computes n, a plain scalar or an intrinsic, as text.
func (r *resolver) value(n *yaml.Node) (string, string) {
	if name, arg := intrinsicOf(n); name != "" {
		return r.eval(name, arg)
	}
	if n.Kind != yaml.ScalarNode {
		return "", "holds a list or a map where text is expected; left empty"
	}
	return n.Value, ""
}

func (r *resolver) ref(name string) (string, string) {
	switch name {
	case "AWS::Region":
		return r.region, ""
	case "AWS::AccountId":
		return r.account, ""
	case "AWS::StackName":
		return r.stack, ""
	case "AWS::StackId":
		return "arn:aws:cloudformation:" + r.region + ":" + r.account + ":stack/" + r.stack + "/00000000-0000-0000-0000-000000000000", ""
	case "AWS::Partition":
		return "aws", ""
	case "AWS::URLSuffix":
		return "amazonaws.com", ""
	case "AWS::NoValue":
		return "", ""
	}
	if v, ok := r.params[name]; ok {
		return v, ""
	}
	if r.noValue[name] {
		return "", "is a parameter with no Default and no override (--parameter-overrides " + name + "=...); left empty"
	}
	if r.layers[name] {
		return layerRefPrefix + name, ""
	}
	if r.resources[name] {
		return "", "cannot be resolved locally; left empty"
	}
	return "", "names no parameter or resource of the template; left empty"
}

// sub resolves !Sub "text ${Name} ${!Literal}" or !Sub [text, {Name: value}].
func (r *resolver) sub(arg *yaml.Node) (string, string) {
	text, vars := arg, map[string]string{}
	if arg.Kind == yaml.SequenceNode {
		if len(arg.Content) != 2 || arg.Content[1].Kind != yaml.MappingNode {
			return "", "wants [text, {Name: value}]; left empty"
		}
		text = arg.Content[0]
		m := arg.Content[1]
		for i := 0; i+1 < len(m.Content); i += 2 {
			v, why := r.value(m.Content[i+1])
			if why != "" {
				return "", why
			}
			vars[m.Content[i].Value] = v
		}
	}
	if text.Kind != yaml.ScalarNode {
		return "", "wants text; left empty"
	}
	s := text.Value
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		name := s[i+2 : i+end]
		s = s[i+end+1:]
		if strings.HasPrefix(name, "!") { // ${!Literal} is the text ${Literal}
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		if v, ok := vars[name]; ok {
			b.WriteString(v)
			continue
		}
		if strings.Contains(name, ".") { // ${Resource.Attribute} is a !GetAtt
			return "", "refers to ${" + name + "}, an attribute, which cannot be resolved locally; left empty"
		}
		v, why := r.ref(name)
		if why != "" {
			return "", "refers to ${" + name + "}, which " + strings.TrimPrefix(why, "is ")
		}
		if strings.HasPrefix(v, layerRefPrefix) {
			return "", "refers to ${" + name + "}, a layer's ARN, which cannot be resolved locally; left empty"
		}
		b.WriteString(v)
	}
	return b.String(), ""
}

// join resolves !Join [delimiter, [values...]].
func (r *resolver) join(arg *yaml.Node) (string, string) {
	if arg.Kind != yaml.SequenceNode || len(arg.Content) != 2 || arg.Content[0].Kind != yaml.ScalarNode {
		return "", "wants [delimiter, [values]]; left empty"
	}
	list := arg.Content[1]
	if name, inner := intrinsicOf(list); name != "" {
		_ = inner
		return "", "joins a list an intrinsic makes, which cannot be resolved locally; left empty"
	}
	if list.Kind != yaml.SequenceNode {
		return "", "wants [delimiter, [values]]; left empty"
	}
	parts := make([]string, 0, len(list.Content))
	for _, c := range list.Content {
		v, why := r.value(c)
		if why != "" {
			return "", why
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, arg.Content[0].Value), ""
}
