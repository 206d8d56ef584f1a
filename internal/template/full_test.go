package template

import (
	"reflect"
	"strings"
	"testing"
)

func TestFull(t *testing.T) {
	tpl, err := Config{Parameters: map[string]string{"Greeting": "hi"}, Region: "eu-west-1"}.Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Dir != "testdata" || tpl.Path("hello/") != "testdata/hello" {
		t.Errorf("Dir %q, Path %q", tpl.Dir, tpl.Path("hello/"))
	}
	hello, err := tpl.Function("hello-dev")
	if err != nil {
		t.Fatal(err)
	}
	three := 3
	want := Function{
		LogicalID: "HelloFunction", Type: ServerlessFunction, FunctionName: "hello-dev",
		Handler: "app.handler", Runtime: "python3.12", CodeURI: "hello/", PackageType: "Zip", Timeout: 5,
		Environment: map[string]string{
			"STAGE": "dev", "TABLE": "", "REGION": "eu-west-1", "ACCOUNT": DefaultAccountID,
			"JOINED": "dev:local:x", "LITERAL": "${Stage}", "GREETING": "hi", "NAMES": "a,b",
			"ARN": "", "IMPORTED": "", "COND": "", "LONG": "dev-long", "NUMBER": "42",
		},
		Layers:              []Layer{{LogicalID: "SharedLayer", ContentURI: "layers/shared"}},
		Architectures:       []string{"arm64"},
		ReservedConcurrency: &three,
		EphemeralStorageMB:  1024,
		FunctionURL:         &FunctionURL{AuthType: "NONE", InvokeMode: "RESPONSE_STREAM"},
	}
	if !reflect.DeepEqual(*hello, want) {
		t.Errorf("got  %+v\nwant %+v", *hello, want)
	}
	plain, _ := tpl.Function("Plain")
	if plain.Type != LambdaFunction || plain.CodeURI != "plain/" || plain.Timeout != 0 || len(plain.Layers) != 0 ||
		plain.ReservedConcurrency == nil || *plain.ReservedConcurrency != 0 || !plain.TenantIsolation || plain.MemorySize != 256 {
		t.Errorf("Plain: %+v", plain)
	}
	if s3, _ := tpl.Function("FromS3"); s3.CodeURI != "" {
		t.Errorf("FromS3: CodeURI %q", s3.CodeURI)
	}
	img, _ := tpl.Function("Image")
	if img.Docker == nil || *img.Docker != (Docker{Context: "./image", Dockerfile: "Dockerfile", Tag: "v1"}) {
		t.Errorf("Image: Docker %+v", img.Docker)
	}
	for _, w := range []string{
		"HelloFunction: Environment.Variables.TABLE: !GetAtt Table.Arn cannot be resolved locally; left empty",
		"HelloFunction: Environment.Variables.ARN: !Sub ${Table.Arn}/index refers to ${Table.Arn}, an attribute",
		"HelloFunction: Environment.Variables.IMPORTED: !ImportValue Shared cannot be resolved locally",
		"HelloFunction: Environment.Variables.COND: !If",
		"HelloFunction: Layers[1]: arn:aws:lambda:us-east-1:123456789012:layer:published:1 is a published layer",
		"FromS3: Code: an S3 location cannot be fetched locally",
	} {
		if !containsPrefix(tpl.Warnings, w) {
			t.Errorf("no warning %q in\n%s", w, strings.Join(tpl.Warnings, "\n"))
		}
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// A parameter with no Default and no override is warned about, by name.
func TestParameterWithoutValue(t *testing.T) {
	src := "Parameters:\n  P:\n    Type: String\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: !Ref P\n"
	tpl, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Warnings) != 1 || !strings.Contains(tpl.Warnings[0], "F: Handler: !Ref P is a parameter with no Default") {
		t.Errorf("warnings %q", tpl.Warnings)
	}
	tpl, err = Config{Parameters: map[string]string{"P": "app.h"}}.Parse(strings.NewReader(src))
	if err != nil || tpl.Functions[0].Handler != "app.h" || len(tpl.Warnings) != 0 {
		t.Errorf("override: %v %+v %q", err, tpl.Functions, tpl.Warnings)
	}
}

func TestBadValues(t *testing.T) {
	for name, props := range map[string]string{
		"architecture": "Architectures: [sparc]",
		"invoke mode":  "FunctionUrlConfig:\n        InvokeMode: FAST",
		"auth type":    "FunctionUrlConfig:\n        AuthType: MAYBE",
		"reserved":     "ReservedConcurrentExecutions: lots",
		"storage":      "EphemeralStorage:\n        Size: big",
	} {
		src := "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      " + props + "\n"
		if _, err := Parse(strings.NewReader(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzParse checks that no template crashes or hangs the parser.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: !Sub '${AWS::Region}-${!x}-${Nope}'\n",
		"Resources:\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code: {ZipFile: x}\n      Layers: [!Ref L]\n  L:\n    Type: AWS::Serverless::LayerVersion\n",
		"Parameters: {P: {Default: [1, 2]}}\nResources: {F: {Type: AWS::Serverless::Function, Properties: {Handler: !Join [',', [!Ref P, !GetAtt X.Y]]}}}\n",
		"Resources: {F: {Type: AWS::Serverless::Function, Properties: {Handler: {Fn::Sub: [x, {a: !Ref AWS::NoValue}]}}}}\n",
		"Globals: {Function: {Layers: [!Sub '${A}'], Environment: {Variables: {A: !If [c, 1, 2]}}}}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Config{Parameters: map[string]string{"P": "v"}}.Parse(strings.NewReader(src))
		if err == nil && tpl == nil {
			t.Fatal("nil template without an error")
		}
	})
}
