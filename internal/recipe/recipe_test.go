package recipe

import (
	"errors"
	"strings"
	"testing"
)

func TestBuiltinRecipesLoad(t *testing.T) {
	names := Names()
	if len(names) < 2 {
		t.Fatalf("recipes: %q", names)
	}
	for _, n := range names {
		if _, err := Load(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestLoadUnknown(t *testing.T) {
	_, err := Load("cobol85")
	if !errors.Is(err, ErrUnknownRuntime) || !strings.Contains(err.Error(), "provided") {
		t.Fatalf("err = %v, want ErrUnknownRuntime listing the known runtimes", err)
	}
	if _, err := Load("../recipe"); !errors.Is(err, ErrUnknownRuntime) {
		t.Fatalf("path traversal: err = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"syntax", "name = \"x\"\n[os\n", "parsing recipe"},
		{"unknown key", "name = \"x\"\n[os]\npackagez = [\"a\"]\n", "unknown keys os.packagez"},
		{"no name", "[os]\npackages = [\"a\"]\n", "name is required"},
		{"bad package", "name = \"x\"\n[os]\npackages = [\"a b\"]\n", "bad Debian package name"},
		{"relative file", "name = \"x\"\n[[os.files]]\npath = \"etc/x\"\ncontent = \"\"\n", "clean absolute path"},
		{"bad mode", "name = \"x\"\n[[os.files]]\npath = \"/x\"\nmode = \"rwx\"\n", "octal"},
		{"pip without python", "name = \"x\"\n[ric.pip]\npackages = [\"a\"]\ntarget = \"/var/runtime\"\n", "pip needs packages and python"},
		{"maven coords", "name = \"x\"\n[ric.maven]\nartifacts = [\"a:b\"]\ntarget = \"/var/runtime/lib\"\n", "group:artifact:version"},
		{"undeclared input", "name = \"x\"\n[[runtime.unpack]]\ninput = \"dotnet\"\ntarget = \"/var/lang/bin\"\n", "undeclared input"},
		{"bytecode without dirs", "name = \"x\"\n[runtime.python_bytecode]\npython = \"/usr/bin/python3\"\n", "python_bytecode needs dirs"},
		{"bytecode with a relative python", "name = \"x\"\n[runtime.python_bytecode]\npython = \"python3\"\ndirs = [\"/usr/lib/python3\"]\n", "must be a clean absolute path"},
		{"jlink without modules", "name = \"x\"\n[runtime.jlink]\npackages = [\"openjdk-17-jdk-headless\"]\njava_home = \"/usr/lib/jvm/x\"\ntarget = \"/var/lang\"\n", "jlink needs packages, java_home and modules"},
		{"jlink output option", "name = \"x\"\n[runtime.jlink]\npackages = [\"a\"]\njava_home = \"/j\"\nmodules = [\"java.base\"]\noptions = [\"--output\", \"/x\"]\ntarget = \"/var/lang\"\n", "set by lambdabox"},
		{"bad generator", "name = \"x\"\n[[os.files]]\npath = \"/x\"\ngenerate = \"magic\"\n", "generate"},
		{"no suite", "name = \"x\"\n# suite\n[os]\npackages = [\"a\"]\n", "suite is required"},
		{"unknown suite", "name = \"x\"\nsuite = \"jessie\"\n", `unknown Debian suite "jessie" (known: bookworm, trixie, forky)`},
		{"layer of another suite", "name = \"x\"\nsuite = \"trixie\"\n[runtime]\nsuite = \"forky\"\npackages = [\"nodejs\"]\n",
			`runtime: suite "forky", but the recipe's is "trixie": a recipe is built from one Debian suite`},
		{"package of another suite", "name = \"x\"\nsuite = \"trixie\"\n[os]\npackages = [\"libc6\", \"nodejs/forky\"]\n",
			`os: package "nodejs/forky" is from suite "forky", but the recipe's is "trixie"`},
		{"bad deprecation date", "name = \"x\"\n[lambda]\ndeprecated = \"soon\"\n", "want a date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if !strings.Contains(src, "suite") {
				src = "suite = \"trixie\"\n" + src
			}
			_, err := Parse("test.toml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestBuiltinRecipesDescribeLambda: every built-in recipe names its suite,
// language and Lambda runtime, and the new runtimes come from the suites
// issue 11 asks for.
func TestBuiltinRecipesDescribeLambda(t *testing.T) {
	want := map[string]string{
		"python3.11": "bookworm", "java17": "bookworm", "nodejs": "bookworm", "dotnet8": "bookworm",
		"python3.13": "trixie", "java21": "trixie", "java25": "trixie", "provided": "trixie", "dotnet10": "trixie",
		"nodejs24": "forky", "python3.14": "forky",
	}
	for name, suite := range want {
		r, err := Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Suite != suite || r.Language == "" || r.Lambda.Runtime == "" {
			t.Errorf("%s: suite %q language %q lambda %q; want suite %q", name, r.Suite, r.Language, r.Lambda.Runtime, suite)
		}
		if s := r.Lambda.Successor; s != "" {
			if _, err := Load(s); err != nil {
				t.Errorf("%s: successor: %v", name, err)
			}
		}
	}
	for name, v := range map[string]string{"python3.13": "4.2.2", "nodejs24": "4.0.2", "java21": "2.10.1", "provided": ""} {
		r, _ := Load(name)
		if got := r.RICVersion(); got != v {
			t.Errorf("%s: RIC version %q, want %q", name, got, v)
		}
	}
	for _, name := range []string{"python3.13", "python3.14"} {
		r, _ := Load(name)
		if got := r.Env["AWS_EXECUTION_ENV"]; got != "AWS_Lambda_"+name {
			t.Errorf("%s: AWS_EXECUTION_ENV %q", name, got)
		}
	}
	if r, _ := Load("nodejs"); r.Lambda.Successor != "nodejs24" {
		t.Errorf("nodejs: successor %q, want nodejs24", r.Lambda.Successor)
	}
}
