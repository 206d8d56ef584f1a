package emulator

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/template"
)

// Managed Instances mode is set by the flag, else AWS_LAMBDA_MAX_CONCURRENCY
// in the emulator's environment, else the template.
func TestPerEnvironmentConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flag    int
		env     string
		tmpl    int
		want    int
		wantErr string
	}{
		{name: "off", want: 0},
		{name: "flag", flag: 4, env: "8", tmpl: 16, want: 4},
		{name: "environment", env: "8", tmpl: 16, want: 8},
		{name: "template", tmpl: 16, want: 16},
		{name: "bad environment", env: "four", wantErr: "AWS_LAMBDA_MAX_CONCURRENCY"},
		{name: "zero environment", env: "0", wantErr: "AWS_LAMBDA_MAX_CONCURRENCY"},
		{name: "too many", flag: 1601, wantErr: "per-environment concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_LAMBDA_MAX_CONCURRENCY", tc.env)
			o := options{perEnvConc: tc.flag}
			var tf *template.Function
			if tc.tmpl > 0 {
				tf = &template.Function{LogicalID: "Fn", PerEnvironmentConcurrency: tc.tmpl}
			}
			cfg, err := functionConfig(o, []string{"/bin/true"}, tf, slog.New(slog.DiscardHandler))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PerEnvironmentConcurrency != tc.want {
				t.Errorf("PerEnvironmentConcurrency = %d, want %d", cfg.PerEnvironmentConcurrency, tc.want)
			}
		})
	}
}
