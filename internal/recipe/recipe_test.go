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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
