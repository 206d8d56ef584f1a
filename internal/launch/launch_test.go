package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/template"
)

func newLauncher(t *testing.T, cfg Config) *Launcher {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = "testdata"
	}
	cfg.CacheDir = t.TempDir()
	cfg.BaseEnv = []string{"PATH=/usr/bin", "PYTHONPATH=/base"}
	cfg.Python = pythonForTest(t)
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func env(list []string, k string) string {
	v := ""
	for _, kv := range list {
		if s, ok := strings.CutPrefix(kv, k+"="); ok {
			v = s
		}
	}
	return v
}

func TestProcessSpecs(t *testing.T) {
	abs := func(p string) string { a, _ := filepath.Abs(filepath.Join("testdata", p)); return a }
	l := newLauncher(t, Config{NodeRIC: "testdata/ric", Region: "eu-west-1"})
	ctx := context.Background()

	py := template.Function{LogicalID: "Py", Runtime: "python3.12", Handler: "app.handler", CodeURI: "py",
		Environment: map[string]string{"A": "1", "B": "2"},
		Layers:      []template.Layer{{LogicalID: "L", ContentURI: "layer"}},
		Events:      []template.Event{{Name: "E", Type: "HttpApi", Path: "/x", Method: "ANY", PayloadFormatVersion: "2.0"}},
	}
	spec, err := l.Spec(ctx, py, map[string]string{"B": "over"})
	if err != nil {
		t.Fatal(err)
	}
	fc := spec.Function
	if len(fc.Command) != 4 || !filepath.IsAbs(fc.Command[0]) || !slices.Equal(fc.Command[1:], []string{"-m", "awslambdaric", "app.handler"}) || fc.Dir != abs("py") || fc.TaskRoot != abs("py") {
		t.Errorf("python: command %q dir %q task root %q", fc.Command, fc.Dir, fc.TaskRoot)
	}
	if fc.Timeout != DefaultTimeout || fc.MemoryMB != DefaultMemoryMB || fc.Region != "eu-west-1" || fc.ExecutionEnv != "AWS_Lambda_python3.12" {
		t.Errorf("python: %+v", fc)
	}
	if env(fc.Env, "A") != "1" || env(fc.Env, "B") != "over" || env(fc.Env, "PATH") != abs("layer/bin")+":/usr/bin" {
		t.Errorf("env %q", fc.Env)
	}
	if want := abs("py") + ":" + abs("layer/python") + ":/base"; env(fc.Env, "PYTHONPATH") != want {
		t.Errorf("PYTHONPATH %q, want %q", env(fc.Env, "PYTHONPATH"), want)
	}
	if len(spec.Routes) != 1 || spec.Routes[0].Method != "" || spec.Routes[0].Path != "/x" {
		t.Errorf("routes %+v", spec.Routes)
	}
	if got := l.Folders(py); !slices.Equal(got, []string{abs("py"), abs("layer")}) {
		t.Errorf("folders %q", got)
	}

	spec, err = l.Spec(ctx, template.Function{LogicalID: "Node", FunctionName: "node-fn", Runtime: "nodejs20.x", Handler: "index.handler", CodeURI: "node", Timeout: 7, MemorySize: 256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fc := spec.Function; fc.Name != "node-fn" || fc.Command[0] != abs("ric/aws-lambda-ric") || fc.Timeout != 7*time.Second || fc.MemoryMB != 256 {
		t.Errorf("node: %+v", fc)
	}

	three := 3
	spec, err = l.Spec(ctx, template.Function{LogicalID: "Boot", Runtime: "provided.al2023", CodeURI: "boot", ReservedConcurrency: &three,
		FunctionURL: &template.FunctionURL{InvokeMode: "RESPONSE_STREAM"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Function.Command[0] != abs("boot/bootstrap") || spec.MaxConcurrency != 3 || spec.Queue || spec.Throttled || !spec.URLStreaming || spec.Function.ExecutionEnv != "" {
		t.Errorf("provided: %+v", spec)
	}
	zero := 0
	spec, err = l.Spec(ctx, template.Function{LogicalID: "Boot", Runtime: "provided.al2023", CodeURI: "boot", ReservedConcurrency: &zero}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.MaxConcurrency != 1 || spec.Queue || !spec.Throttled {
		t.Errorf("reserved concurrency 0: %+v", spec)
	}
	spec, err = l.Spec(ctx, template.Function{LogicalID: "Boot", Runtime: "provided.al2023", CodeURI: "boot"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.MaxConcurrency != 0 || !spec.Queue || spec.Throttled {
		t.Errorf("no reserved concurrency: %+v", spec)
	}
}

func TestGoSourceIsBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	l := newLauncher(t, Config{Dir: "../../examples"})
	spec, err := l.Spec(context.Background(), template.Function{LogicalID: "Go", Runtime: "provided.al2023", Handler: "bootstrap", CodeURI: "hello-go"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := spec.Function.Command[0]
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 || !strings.HasPrefix(bin, l.cfg.CacheDir) {
		t.Fatalf("bootstrap %s: %v", bin, err)
	}
	// A second build goes to a new file: the first may still be running.
	spec2, err := l.Spec(context.Background(), template.Function{LogicalID: "Go", Runtime: "go1.x", Handler: "bootstrap", CodeURI: "hello-go"}, nil)
	if err != nil || spec2.Function.Command[0] == bin {
		t.Fatalf("rebuild: %v, %s", err, spec2.Function.Command[0])
	}
	if _, err := l.Spec(context.Background(), template.Function{LogicalID: "Bad", Runtime: "provided.al2023", CodeURI: "hello-python"}, nil); err == nil {
		t.Error("no error for a provided function with neither bootstrap nor Go source")
	}
}

func TestProcessErrors(t *testing.T) {
	l := newLauncher(t, Config{})
	ctx := context.Background()
	for name, c := range map[string]struct {
		f    template.Function
		want string
	}{
		"java":     {template.Function{LogicalID: "J", Runtime: "java21", Handler: "x", CodeURI: "py"}, "needs --driver container"},
		"dotnet":   {template.Function{LogicalID: "D", Runtime: "dotnet8", Handler: "x", CodeURI: "py"}, "needs --driver container"},
		"image":    {template.Function{LogicalID: "I", PackageType: "Image", ImageURI: "x"}, "needs --driver container"},
		"no ric":   {template.Function{LogicalID: "N", Runtime: "nodejs20.x", Handler: "index.handler", CodeURI: "node"}, "npm install aws-lambda-ric"},
		"no code":  {template.Function{LogicalID: "C", Runtime: "python3.12", Handler: "a.b"}, "no local code folder"},
		"missing":  {template.Function{LogicalID: "M", Runtime: "python3.12", Handler: "a.b", CodeURI: "nope"}, "not a folder"},
		"unknown":  {template.Function{LogicalID: "U", Runtime: "cobol", CodeURI: "py"}, "unknown"},
		"bad name": {template.Function{LogicalID: "x", FunctionName: "has space", Runtime: "python3.12", CodeURI: "py"}, "function name"},
	} {
		_, err := l.Spec(ctx, c.f, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
		if c.want == "needs --driver container" && !errors.Is(err, ErrNeedsContainer) {
			t.Errorf("%s: not ErrNeedsContainer", name)
		}
	}
}

type fakeDriver struct{}

func (fakeDriver) Start(context.Context, sandbox.Spec) (sandbox.Env, error) {
	return nil, errors.New("fake")
}

func TestContainerSpecs(t *testing.T) {
	if _, err := New(Config{Driver: Container}); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("container driver without an engine: %v", err)
	}
	var got []ContainerRequest
	l := newLauncher(t, Config{
		Driver: Container,
		Containers: func(_ context.Context, req ContainerRequest) (sandbox.Driver, error) {
			got = append(got, req)
			return fakeDriver{}, nil
		},
		BaseImage: func(rt string) (string, error) { return "lambdabox/" + rt, nil },
	})
	ctx := context.Background()
	spec, err := l.Spec(ctx, template.Function{LogicalID: "J", Runtime: "java21", Handler: "a::b", CodeURI: "py", MemorySize: 512,
		Layers: []template.Layer{{ContentURI: "layer"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata/py")
	if spec.Driver == nil || spec.Function.TaskRoot != "/var/task" || !slices.Equal(spec.Function.Command, []string{"/lambda-entrypoint.sh", "a::b"}) {
		t.Errorf("spec %+v", spec)
	}
	if len(got) != 1 || got[0].Image != "lambdabox/java21" || got[0].CodeDir != abs || len(got[0].LayerDirs) != 1 || got[0].MemoryMB != 512 || got[0].EphemeralMB != 512 || got[0].Name != "J" {
		t.Errorf("request %+v", got)
	}
	if env(spec.Function.Env, "PATH") != "" {
		t.Error("the host's environment reached a container")
	}
	if _, err := l.Spec(ctx, template.Function{LogicalID: "I", PackageType: "Image", ImageURI: "repo/img:1", EphemeralStorageMB: 2048}, nil); err != nil {
		t.Fatal(err)
	}
	if got[1].Image != "repo/img:1" || got[1].CodeDir != "" || got[1].EphemeralMB != 2048 {
		t.Errorf("image request %+v", got[1])
	}
	if _, err := l.Spec(ctx, template.Function{LogicalID: "B", PackageType: "Image", Docker: &template.Docker{Context: "py", Dockerfile: "Dockerfile", Tag: "latest"}}, nil); err == nil || !strings.Contains(err.Error(), "no image loader") {
		t.Errorf("build without a loader: %v", err)
	}
}

func TestEnvVars(t *testing.T) {
	e, err := ParseEnvVars(strings.NewReader(`{"Parameters": {"STAGE": "local", "N": 3, "UNDECLARED": "x"}, "Hello": {"STAGE": "mine", "ON": true}, "hello-fn": {"TABLE": "t"}}`))
	if err != nil {
		t.Fatal(err)
	}
	f := template.Function{LogicalID: "Hello", FunctionName: "hello-fn", Environment: map[string]string{"STAGE": "", "N": "", "ON": "", "TABLE": ""}}
	got := e.For(f)
	want := map[string]string{"STAGE": "mine", "N": "3", "ON": "true", "TABLE": "t"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range []string{`[]`, `{"F": {"A": [1]}}`, `{`} {
		if _, err := ParseEnvVars(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// pythonForTest is python3's path: BaseEnv's PATH is not the test's.
func pythonForTest(t *testing.T) string {
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3")
	}
	return p
}
