package function

import (
	"strings"
	"testing"
	"time"
)

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestEnvironReservedWin(t *testing.T) {
	c := Config{
		Name:    "fn",
		Handler: "app.handler",
		Command: []string{"/bootstrap"},
		Env: []string{
			"AWS_LAMBDA_FUNCTION_NAME=hijack", "AWS_LAMBDA_RUNTIME_API=evil:1",
			"MY_VAR=a=b=c", "PATH=/custom", "TZ=Europe/Paris", "=bad", "novalue",
		},
		Credentials: Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"},
	}.WithDefaults()
	got := envMap(c.Environ(Instance{RuntimeAPI: "127.0.0.1:9001", LogStreamName: "s"}))
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "fn",
		"AWS_LAMBDA_RUNTIME_API":          "127.0.0.1:9001",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/fn",
		"AWS_LAMBDA_LOG_STREAM_NAME":      "s",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"_HANDLER":                        "app.handler",
		"LAMBDA_TASK_ROOT":                "/var/task",
		"LAMBDA_RUNTIME_DIR":              "/var/runtime",
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"AWS_ACCESS_KEY_ID":               "AKID",
		"AWS_SECRET_ACCESS_KEY":           "s",
		"MY_VAR":                          "a=b=c",
		"PATH":                            "/custom",
		"TZ":                              "Europe/Paris",
		"LANG":                            "en_US.UTF-8",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_EXECUTION_ENV", ""} {
		if _, ok := got[k]; ok {
			t.Errorf("%q is set, want unset", k)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{Command: []string{"/b"}}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"bad name":     func(c *Config) { c.Name = "no spaces allowed" },
		"long name":    func(c *Config) { c.Name = strings.Repeat("a", 65) },
		"timeout":      func(c *Config) { c.Timeout = time.Millisecond },
		"memory":       func(c *Config) { c.MemoryMB = 64 },
		"no command":   func(c *Config) { c.Command = nil },
		"env no equal": func(c *Config) { c.Env = []string{"X"} },
	} {
		c := good
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestLogStreamName(t *testing.T) {
	s := NewLogStreamName("$LATEST", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	if !strings.HasPrefix(s, "2026/11/21/[$LATEST]") || len(s) != len("2026/11/21/[$LATEST]")+32 {
		t.Errorf("log stream name %q", s)
	}
}
