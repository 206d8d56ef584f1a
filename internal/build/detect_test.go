package build

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		files []string
		want  string
	}{
		{[]string{"requirements.txt"}, "python3.11"},
		{[]string{"app.py"}, "python3.11"},
		{[]string{"package.json", "requirements.txt"}, "python3.11"},
		{[]string{"package.json", "tools.py"}, "nodejs"},
		{[]string{"index.mjs"}, "nodejs"},
		{[]string{"go.mod", "main.go"}, "go"},
		{[]string{"main.go"}, "go"},
		{[]string{"pom.xml"}, "java17"},
		{[]string{"build.gradle.kts"}, "java17"},
		{[]string{"Cargo.toml"}, "rust"},
		{[]string{"Fn.runtimeconfig.json", "Fn.dll"}, "dotnet8"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for _, f := range tt.files {
			os.WriteFile(filepath.Join(dir, f), nil, 0o644)
		}
		rt, err := Detect(dir)
		if err != nil || rt.Name != tt.want {
			t.Errorf("%v: %s %v, want %s", tt.files, rt.Name, err, tt.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
	if rt, err := Detect(dir); err != nil || rt.Name != "provided" {
		t.Errorf("bootstrap: %s %v", rt.Name, err)
	}
	if _, err := Detect(t.TempDir()); err == nil {
		t.Error("an empty folder has a runtime")
	}
}
