package base

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lambdabox/lambdabox/internal/recipe"
)

func TestNpmPackageJSON(t *testing.T) {
	n := &recipe.Npm{Packages: []string{"aws-lambda-ric@3.3.0", "@scope/pkg@1.2.3", "left-pad"}}
	data := npmPackageJSON(n)
	if string(data) != string(npmPackageJSON(n)) {
		t.Fatal("package.json is not deterministic")
	}
	var pj struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pj); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"aws-lambda-ric": "3.3.0", "@scope/pkg": "1.2.3", "left-pad": "*"}
	if !reflect.DeepEqual(pj.Dependencies, want) {
		t.Errorf("dependencies %v, want %v", pj.Dependencies, want)
	}
}

func TestNpmBuildPackages(t *testing.T) {
	r, err := recipe.Load("nodejs")
	if err != nil {
		t.Fatal(err)
	}
	got := npmBuildPackages(r, r.RIC.Npm)
	has := map[string]bool{}
	for _, p := range got {
		has[p] = true
	}
	// The image's Node, its headers and the addon's build tools.
	for _, p := range []string{"nodejs", "libnode-dev", "g++", "cmake", "libtool", "python3", "bash"} {
		if !has[p] {
			t.Errorf("build root lacks %s: %v", p, got)
		}
	}
}

func TestPruneModules(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"aws-lambda-ric", "node-gyp", "@scope/keep", "@scope/drop", "@other/x", ".bin"} {
		os.MkdirAll(filepath.Join(dir, filepath.FromSlash(p)), 0o755)
		os.WriteFile(filepath.Join(dir, filepath.FromSlash(p), "package.json"), []byte("{}"), 0o644)
	}
	if err := pruneModules(dir, []string{"aws-lambda-ric", "@scope/keep"}); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d.Name() == "package.json" {
			rel, _ := filepath.Rel(dir, filepath.Dir(p))
			left = append(left, filepath.ToSlash(rel))
		}
		return err
	})
	if want := []string{"@scope/keep", "aws-lambda-ric"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("left %q, want %q", left, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "@other")); err == nil {
		t.Error("an emptied scope directory is left")
	}
	if err := pruneModules(dir, []string{"missing"}); err == nil || !strings.Contains(err.Error(), "missing is not installed") {
		t.Errorf("keeping a package that is not installed: %v", err)
	}
}

func TestNpmInImage(t *testing.T) {
	keep := []string{"aws-lambda-ric", "@scope/pkg"}
	for key, want := range map[string]bool{
		"node_modules/aws-lambda-ric":                       true,
		"node_modules/aws-lambda-ric/node_modules/dep":      true,
		"node_modules/@scope/pkg":                           true,
		"node_modules/node-gyp":                             false,
		"node_modules/aws-lambda-ric-extra":                 false,
		"node_modules/node-gyp/node_modules/aws-lambda-ric": false,
	} {
		if got := inImage(key, keep); got != want {
			t.Errorf("inImage(%q) = %v, want %v", key, got, want)
		}
	}
	if !inImage("node_modules/anything", nil) {
		t.Error("without keep, every package goes into the image")
	}
}
