package build

import (
	"errors"
	"strings"
	"testing"
)

func TestPythonNames(t *testing.T) {
	src := "import os\nfrom x import a, b as c\nfrom y import (d)\n\ndef handler(event, context):\n    def inner(): pass\n\nasync def ahandler(e, c):\n    pass\n\nVALUE: int = 1\nother = lambda e, c: 1\nif x == 1:\n    pass\nclass K:\n    def method(self): pass\n"
	got := list(pythonNames(src))
	if want := "VALUE, a, ahandler, c, d, handler, other"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

func TestNodeExports(t *testing.T) {
	tests := []struct {
		src   string
		want  string
		known bool
	}{
		{"exports.handler = async () => 1;\nmodule.exports.other = 1;", "handler, other", true},
		{"export const handler = async () => {};\nexport async function second() {}\nexport function* gen() {}\nexport class K {}", "K, gen, handler, second", true},
		{"const a = 1, b = 2;\nexport { a as handler, b };", "b, handler", true},
		{"module.exports = { handler, other: x };", "handler, other", true},
		{"module.exports = require('./impl');", "nothing", false},
		{"export default async function (e) {}", "default", true},
		{"// nothing exported\nconst handler = 1;", "nothing", true},
	}
	for _, tt := range tests {
		names, known := nodeExports(tt.src)
		if got := list(names); got != tt.want || known != tt.known {
			t.Errorf("%q: %q %v, want %q %v", tt.src, got, known, tt.want, tt.known)
		}
	}
}

func TestHandlerChecks(t *testing.T) {
	files := map[string]string{
		"app.py":           "def handler(e, c): pass\n",
		"pkg/mod.py":       "def run(e, c): pass\n",
		"pkg2/__init__.py": "def h(e, c): pass\n",
		"index.mjs":        "export const handler = 1;\n",
		"lib/fn.cjs":       "exports.go = 1;\n",
	}
	read := func(rel string) ([]byte, bool) { s, ok := files[rel]; return []byte(s), ok }
	tests := []struct {
		python  bool
		handler string
		want    string // "" for no error
	}{
		{true, "app.handler", ""},
		{true, "pkg.mod.run", ""},
		{true, "pkg/mod.run", ""},
		{true, "pkg2.h", ""},
		{true, "app.nope", "app.py defines no function nope (found: handler)"},
		{true, "missing.handler", "no file missing.py"},
		{true, "handler", "want module.function"},
		{true, "app.", "want module.function"},
		{false, "index.handler", ""},
		{false, "lib/fn.go", ""},
		{false, "index.nope", "index.mjs exports no nope (found: handler)"},
		{false, "nofile.handler", "no file nofile.js"},
		{false, ".handler", "want file.export"},
	}
	for _, tt := range tests {
		check := nodeHandler
		if tt.python {
			check = pythonHandler
		}
		err := check(read, "/fn", tt.handler)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.handler, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrHandler)):
			t.Errorf("%s: err %v, want %q", tt.handler, err, tt.want)
		}
	}
}

func TestIgnore(t *testing.T) {
	ig, err := parseIgnore([]byte("# comment\n*.env\ntests/\n**/__pycache__\n!keep.env\nbuild/**/*.o\n/abs.txt\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"a.env": true, "keep.env": false, "sub/a.env": false, "tests": true, "tests/x.py": true,
		"a/b/__pycache__/x.pyc": true, "__pycache__": true, "build/x/y.o": true, "build/y.o": true,
		"abs.txt": true, "app.py": false,
	}
	for p, want := range tests {
		if got := ig.match(p); got != want {
			t.Errorf("match(%q) = %v, want %v", p, got, want)
		}
	}
	if _, err := parseIgnore([]byte("[abc\n")); err == nil {
		t.Error("unclosed [ parsed")
	}
}

func TestRunKind(t *testing.T) {
	tests := map[string]string{
		`pip3 install -r requirements.txt --target "${LAMBDA_TASK_ROOT}"`:                    "pip",
		`pip install --no-cache-dir -t /var/task requests && pip install -t /opt/python six`: "pip",
		`python3.12 -m pip install --target=/var/task boto3`:                                 "pip",
		`pip install requests`:               "", // no --target
		`npm ci --omit=dev`:                  "npm",
		`npm install`:                        "npm",
		`npm install lodash`:                 "", // a package argument
		`pip install -t /x a && npm ci`:      "",
		`pip install -t /x a; rm -rf /tmp/x`: "",
		`pip install -t /x a | tee log`:      "",
		`pip install -t /x $(cat reqs)`:      "",
		`yum install -y gcc`:                 "rpm",
		`dnf install -y jq && dnf clean all && rm -rf /var/cache/dnf`: "rpm",
		`dnf remove -y jq`:                        "",
		`rm -rf /var/task/x`:                      "",
		`apt-get update && apt-get install -y gc`: "",
	}
	for line, want := range tests {
		if got, _ := runKind(line); got != want {
			t.Errorf("runKind(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestLambdaRuntime(t *testing.T) {
	tests := map[string]string{
		"public.ecr.aws/lambda/python:3.9":       "python3.9",
		"public.ecr.aws/lambda/python:3.12":      "python3.12",
		"public.ecr.aws/lambda/python:3.7":       "python3.11", // unknown version: nearest base
		"public.ecr.aws/lambda/nodejs:20":        "nodejs20.x",
		"public.ecr.aws/lambda/nodejs:24":        "nodejs24",
		"public.ecr.aws/lambda/java:21":          "java21",
		"public.ecr.aws/lambda/provided:al2023":  "provided.al2023",
		"public.ecr.aws/lambda/dotnet:8":         "dotnet8",
		"amazon/aws-lambda-python:3.11":          "python3.11",
		"docker.io/amazon/aws-lambda-nodejs:18":  "nodejs18.x",
		"public.ecr.aws/lambda/python":           "python3.13",
		"python:3.12-slim":                       "",
		"public.ecr.aws/docker/library/python:3": "",
	}
	for ref, want := range tests {
		rt, ok := lambdaRuntime(ref)
		if got := rt.Name; got != want || ok != (want != "") {
			t.Errorf("lambdaRuntime(%q) = %q %v, want %q", ref, got, ok, want)
		}
	}
}

func TestPipArgs(t *testing.T) {
	materialised := []string{}
	m := func(p string) (string, error) { materialised = append(materialised, p); return "/tmp/" + p, nil }
	args, target, err := pipArgs(strings.Fields("pip3 install -r requirements.txt --no-cache-dir --find-links /var/task/wheels -U --index-url https://x six==1 --target=/var/task"), m)
	if err != nil {
		t.Fatal(err)
	}
	if target != "/var/task" || strings.Join(args, " ") != "-r /tmp/requirements.txt --find-links /tmp//var/task/wheels --index-url https://x six==1" {
		t.Errorf("args %q target %q", args, target)
	}
	if _, _, err := pipArgs(strings.Fields("pip install six"), m); !errors.Is(err, ErrNeedsEngine) {
		t.Errorf("no --target: %v", err)
	}
	if _, _, err := pipArgs(strings.Fields("pip install -r"), m); err == nil || !strings.Contains(err.Error(), "missing value") {
		t.Errorf("-r without a file: %v", err)
	}
}

func TestLookupRuntime(t *testing.T) {
	for _, n := range RuntimeNames() {
		rt, err := LookupRuntime(n)
		if err != nil || rt.Recipe == "" {
			t.Errorf("%s: %+v %v", n, rt, err)
		}
	}
	if _, err := LookupRuntime("cobol"); err == nil {
		t.Error("cobol found")
	}
}

func TestRPMPackages(t *testing.T) {
	got, err := rpmPackages(strings.Fields("dnf install -y --setopt=install_weak_deps=False ImageMagick jq"))
	if err != nil || strings.Join(got, " ") != "imagemagick jq" {
		t.Errorf("%q %v", got, err)
	}
	if got, err := rpmPackages(strings.Fields("yum clean all")); err != nil || len(got) != 0 {
		t.Errorf("clean: %q %v", got, err)
	}
	if _, err := rpmPackages(strings.Fields("yum update")); !errors.Is(err, ErrNeedsEngine) {
		t.Errorf("update: %v", err)
	}
}
