package entrypoint

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecide(t *testing.T) {
	has := func(files ...string) func(string) bool {
		return func(p string) bool {
			for _, f := range files {
				if f == p {
					return true
				}
			}
			return false
		}
	}
	env := func(api string) func(string) string {
		return func(k string) string {
			if k == "AWS_LAMBDA_RUNTIME_API" {
				return api
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		args    []string
		api     string
		files   []string
		want    Plan
		wantErr error
	}{
		{"no args", nil, "", nil, Plan{}, ErrUsage},
		{"two args", []string{"a", "b"}, "", nil, Plan{}, ErrUsage},
		{"local", []string{"app.handler"}, "", []string{"/var/runtime/bootstrap"},
			Plan{"/usr/local/bin/aws-lambda-rie", []string{"/usr/local/bin/aws-lambda-rie", "/var/runtime/bootstrap"}, "app.handler"}, nil},
		{"on lambda", []string{"app.handler"}, "127.0.0.1:9001", []string{"/var/runtime/bootstrap"},
			Plan{"/var/runtime/bootstrap", []string{"/var/runtime/bootstrap"}, "app.handler"}, nil},
		{"provided local", []string{"h"}, "", []string{"/var/task/bootstrap"},
			Plan{"/usr/local/bin/aws-lambda-rie", []string{"/usr/local/bin/aws-lambda-rie", "/var/task/bootstrap"}, "h"}, nil},
		{"provided on lambda", []string{"h"}, "x:1", []string{"/opt/bootstrap"},
			Plan{"/opt/bootstrap", []string{"/opt/bootstrap"}, "h"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.args, env(tt.api), has(tt.files...), Paths{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("plan = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := Decide([]string{"h"}, env("x:1"), has(), Paths{}); err == nil {
		t.Fatal("no bootstrap on lambda: want an error")
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}} {
		var stderr stringWriter
		if code := Main(args, &stderr); code != ExitUsage {
			t.Fatalf("Main(%q) = %d, want %d", args, code, ExitUsage)
		}
		if stderr.s != Usage+"\n" {
			t.Fatalf("stderr = %q", stderr.s)
		}
	}
}

type stringWriter struct{ s string }

func (w *stringWriter) Write(p []byte) (int, error) { w.s += string(p); return len(p), nil }
