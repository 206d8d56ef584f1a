package base

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/recipe"
)

// TestBuildAddonsErrors: what BuildAddons cannot do is a clear error,
// found before any build root is made.
func TestBuildAddonsErrors(t *testing.T) {
	rec, err := recipe.Load("nodejs")
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[hostArch()]
	dir := t.TempDir()
	noDebs := filepath.Join(dir, "nodebs.lock.json")
	if err := (&Lock{Runtime: "nodejs", Layers: map[string]*LayerLock{"ric": {Npm: []string{"aws-lambda-ric@3.3.0"}}}}).Write(noDebs); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.lock.json")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	root := os.Geteuid() == 0
	tests := []struct {
		name string
		cfg  AddonConfig
		want string
	}{
		{"no recipe", AddonConfig{CacheDir: dir, LockFile: noDebs}, "no recipe"},
		{"no lock file", AddonConfig{Recipe: rec, CacheDir: dir}, "no cache directory or lock file"},
		{"other arch", AddonConfig{Recipe: rec, CacheDir: dir, LockFile: noDebs, Arch: other}, "build only on " + other + " hosts"},
		{"missing lock file", AddonConfig{Recipe: rec, CacheDir: dir, LockFile: filepath.Join(dir, "none.json")}, "pins no build root for npm packages"},
		{"lock without build root", AddonConfig{Recipe: rec, CacheDir: dir, LockFile: noDebs}, "pins no build root for npm packages"},
		{"malformed lock", AddonConfig{Recipe: rec, CacheDir: dir, LockFile: bad}, "reading lock file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if !root && tt.cfg.Recipe != nil && tt.cfg.LockFile != "" && tt.cfg.Arch == "" {
				want = "needs root"
			}
			err := BuildAddons(context.Background(), tt.cfg, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one with %q", err, want)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "addon-root-*")); len(left) > 0 {
		t.Errorf("build roots left behind: %v", left)
	}
}
