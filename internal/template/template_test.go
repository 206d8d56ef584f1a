package template

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	tpl, err := Load("testdata/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Functions) != 2 {
		t.Fatalf("%d functions", len(tpl.Functions))
	}
	items, err := tpl.Function("ItemsFunction")
	if err != nil {
		t.Fatal(err)
	}
	want := Function{
		LogicalID: "ItemsFunction", Type: ServerlessFunction, Handler: "app.handler", Runtime: "python3.11", CodeURI: "items/",
		PackageType: "Zip", Timeout: 10, MemorySize: 256,
		Environment: map[string]string{"TABLE": "", "STAGE": "test"}, // !Ref Table: a resource
		Events: []Event{
			{Name: "GetItem", Type: "Api", Path: "/items/{id}", Method: "GET", PayloadFormatVersion: "1.0"},
			{Name: "Legacy", Type: "HttpApi", Path: "/old", Method: "POST", PayloadFormatVersion: "1.0"},
			{Name: "Proxy", Type: "HttpApi", Path: "/files/{proxy+}", Method: "ANY", PayloadFormatVersion: "2.0"},
		},
	}
	if !reflect.DeepEqual(*items, want) {
		t.Errorf("got  %+v\nwant %+v", *items, want)
	}
	c, err := tpl.Function("catch-all")
	if err != nil {
		t.Fatal(err)
	}
	if c.Runtime != "provided.al2023" || c.Timeout != 10 || len(c.Events) != 1 || c.Events[0].Path != "$default" {
		t.Errorf("catch-all: %+v", c)
	}
	if _, err := tpl.Function(""); err == nil {
		t.Error("no error naming none of two functions")
	}
}

func TestParseErrors(t *testing.T) {
	for name, src := range map[string]string{
		"not yaml":     "Resources: [",
		"bad timeout":  "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Timeout: soon\n",
		"api w/o path": "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E:\n          Type: Api\n",
		"bad tenancy":  "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      TenancyConfig:\n        TenantIsolationMode: PER_REQUEST\n",
	} {
		if _, err := Parse(strings.NewReader(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCapacityProviderConfig(t *testing.T) {
	for _, tc := range []struct {
		name, props string
		want        int
		wantErr     string
	}{
		{"absent", "Runtime: python3.13", 0, ""},
		{"set", "Runtime: python3.13\n      CapacityProviderConfig:\n        Arn: !GetAtt CP.Arn\n        PerExecutionEnvironmentMaxConcurrency: 8", 8, ""},
		{"python default", "Runtime: python3.13\n      CapacityProviderConfig:\n        Arn: arn:x", 16, ""},
		{"java default", "Runtime: java21\n      CapacityProviderConfig:\n        Arn: arn:x", 32, ""},
		{"node default", "Runtime: nodejs22.x\n      CapacityProviderConfig:\n        Arn: arn:x", 64, ""},
		{"not a number", "CapacityProviderConfig:\n        PerExecutionEnvironmentMaxConcurrency: many", 0, "PerExecutionEnvironmentMaxConcurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      " + tc.props + "\n"
			tpl, err := Parse(strings.NewReader(src))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Functions[0].PerEnvironmentConcurrency; got != tc.want {
				t.Errorf("PerEnvironmentConcurrency = %d, want %d", got, tc.want)
			}
		})
	}
}

// TenancyConfig PER_TENANT, on the function or in Globals, turns tenant
// isolation on.
func TestTenancyConfig(t *testing.T) {
	for name, c := range map[string]struct {
		src  string
		want bool
	}{
		"function": {"Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n", true},
		"globals":  {"Globals:\n  Function:\n    TenancyConfig:\n      TenantIsolationMode: PER_TENANT\nResources:\n  F:\n    Type: AWS::Serverless::Function\n", true},
		"none":     {"Resources:\n  F:\n    Type: AWS::Serverless::Function\n", false},
	} {
		tpl, err := Parse(strings.NewReader(c.src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := tpl.Functions[0].TenantIsolation; got != c.want {
			t.Errorf("%s: TenantIsolation = %v, want %v", name, got, c.want)
		}
	}
}
