package base

import (
	"encoding/json"
	"reflect"
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
