package build

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestInstallScripts reads npm's record of node_modules for the packages
// whose install scripts must run.
func TestInstallScripts(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
	}{
		{"none", "", nil},
		{"malformed", "{not json", nil},
		{"no packages", `{"lockfileVersion":3}`, nil},
		{"scripts", `{"packages":{
			"node_modules/b":{"hasInstallScript":true},
			"node_modules/a":{"version":"1.0.0"},
			"node_modules/@s/c":{"hasInstallScript":true},
			"node_modules/x/node_modules/d":{"hasInstallScript":true},
			"node_modules/linked":{"hasInstallScript":true,"link":true}}}`,
			[]string{"@s/c", "b", "x/node_modules/d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nm := t.TempDir()
			if tt.lock != "" {
				if err := os.WriteFile(filepath.Join(nm, ".package-lock.json"), []byte(tt.lock), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := installScripts(nm); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("installScripts = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNativeAddons finds the packages with a binding.gyp, nested ones too.
func TestNativeAddons(t *testing.T) {
	nm := t.TempDir()
	for _, p := range []string{"a/binding.gyp", "a/index.js", "@s/b/binding.gyp", "c/node_modules/d/binding.gyp", "e/package.json"} {
		os.MkdirAll(filepath.Join(nm, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(nm, p), []byte("{}"), 0o644)
	}
	want := []string{"@s/b", "a", "c/node_modules/d"}
	if got := nativeAddons(nm); !reflect.DeepEqual(got, want) {
		t.Errorf("nativeAddons = %q, want %q", got, want)
	}
	if got := nativeAddons(filepath.Join(nm, "missing")); got != nil {
		t.Errorf("nativeAddons of a missing folder = %q", got)
	}
}
