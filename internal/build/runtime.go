package build

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Language families; each has its own dependency and code steps.
const (
	Python   = "python"
	Node     = "node"
	Go       = "go"
	Java     = "java"
	DotNet   = "dotnet"
	Rust     = "rust"
	Provided = "provided" // a folder with a ready bootstrap executable
)

// Runtime is one name --runtime accepts.
type Runtime struct {
	// Name is the runtime's name, as Lambda spells it (python3.12) or as
	// lambdabox does (python3.11, nodejs).
	Name string
	// Lang is the language family.
	Lang string
	// Version is the language version the name asks for ("3.12").
	Version string
	// Recipe is the lambdabox base recipe used by default, and
	// RecipeVersion the language version that base has. They differ where
	// lambdabox has no base for the version yet and uses the nearest one.
	Recipe, RecipeVersion string
}

// runtimes maps runtime names to lambdabox bases. New bases join here: a
// name whose Recipe differs from its Name uses the nearest base there is.
var runtimes = []Runtime{
	{"python3.11", Python, "3.11", "python3.11", "3.11"},
	{"python3.9", Python, "3.9", "python3.11", "3.11"},
	{"python3.10", Python, "3.10", "python3.11", "3.11"},
	{"python3.12", Python, "3.12", "python3.13", "3.13"},
	{"python3.13", Python, "3.13", "python3.13", "3.13"},
	{"python3.14", Python, "3.14", "python3.14", "3.14"},
	{"nodejs", Node, "18", "nodejs", "18"},
	{"nodejs18.x", Node, "18", "nodejs", "18"},
	{"nodejs20.x", Node, "20", "nodejs24", "24"},
	{"nodejs22.x", Node, "22", "nodejs24", "24"},
	{"nodejs24", Node, "24", "nodejs24", "24"},
	{"nodejs24.x", Node, "24", "nodejs24", "24"},
	{"java17", Java, "17", "java17", "17"},
	{"java11", Java, "11", "java17", "17"},
	{"java21", Java, "21", "java21", "21"},
	{"java25", Java, "25", "java25", "25"},
	{"dotnet8", DotNet, "8", "dotnet8", "8"},
	{"dotnet10", DotNet, "10", "dotnet10", "10"},
	{"provided", Provided, "", "provided", ""},
	{"provided.al2", Provided, "", "provided", ""},
	{"provided.al2023", Provided, "", "provided", ""},
	{"go", Go, "", "provided", ""},
	{"go1.x", Go, "", "provided", ""},
	{"rust", Rust, "", "provided", ""},
}

// LookupRuntime returns the runtime called name.
func LookupRuntime(name string) (Runtime, error) {
	for _, r := range runtimes {
		if r.Name == name {
			return r, nil
		}
	}
	return Runtime{}, fmt.Errorf("unknown runtime %q (known: %s)", name, strings.Join(RuntimeNames(), ", "))
}

// RuntimeNames lists every runtime name, sorted.
func RuntimeNames() []string {
	var ns []string
	for _, r := range runtimes {
		ns = append(ns, r.Name)
	}
	sort.Strings(ns)
	return ns
}

// defaultRuntime is the runtime a detected language gets.
var defaultRuntime = map[string]string{
	Python: "python3.11", Node: "nodejs", Go: "go", Java: "java17",
	DotNet: "dotnet8", Rust: "rust", Provided: "provided",
}

// Detect tells the runtime of the function in dir from its files.
func Detect(dir string) (Runtime, error) {
	has := func(pattern string) bool {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		return len(m) > 0
	}
	var lang string
	switch {
	case has("*.runtimeconfig.json"):
		lang = DotNet
	case has("go.mod") || has("*.go"):
		lang = Go
	case has("Cargo.toml"):
		lang = Rust
	case has("pom.xml") || has("build.gradle") || has("build.gradle.kts"):
		lang = Java
	case has("requirements.txt"):
		lang = Python
	case has("package.json"):
		lang = Node
	case has("*.py"):
		lang = Python
	case has("index.js") || has("index.mjs") || has("index.cjs") || has("app.js") || has("app.mjs"):
		lang = Node
	case isExecutable(filepath.Join(dir, "bootstrap")):
		lang = Provided
	default:
		return Runtime{}, fmt.Errorf("cannot tell the runtime of %s: no requirements.txt or *.py, package.json, go.mod, pom.xml/build.gradle, Cargo.toml, *.runtimeconfig.json or bootstrap (use --runtime)", dir)
	}
	return LookupRuntime(defaultRuntime[lang])
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
