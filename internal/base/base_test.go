package base

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// A recipe with no packages builds offline: files, symlinks and the
// entrypoint layer only.
const offlineRecipe = `
name = "offline"
suite = "bookworm"
[[os.files]]
path = "/etc/os-release"
content = "ID=test\n"
[os.symlinks]
"/etc/localtime" = "/usr/share/zoneinfo/Etc/UTC"
[[ric.files]]
path = "/var/runtime/bootstrap"
mode = "0755"
content = "#!/bin/sh\n"
`

func TestBuildReproducibleAndCached(t *testing.T) {
	r, err := recipe.Parse("offline.toml", []byte(offlineRecipe))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	emu := filepath.Join(dir, "emulator")
	os.WriteFile(emu, []byte("not really an emulator"), 0o755)
	build := func(cache string) (*Result, string) {
		res, err := Build(context.Background(), Config{
			Recipe: r, CacheDir: cache, LockFile: filepath.Join(dir, "offline.lock.json"),
			Emulator: emu, Epoch: time.Unix(1700000000, 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return res, d.String()
	}
	cache := filepath.Join(dir, "cache")
	first, d1 := build(cache)
	second, d2 := build(cache)
	_, d3 := build(filepath.Join(dir, "other-cache"))
	if d1 != d2 || d1 != d3 {
		t.Fatalf("digests differ: %s %s %s", d1, d2, d3)
	}
	for i, l := range second.Layers {
		if !l.Cached {
			t.Errorf("second build: layer %s rebuilt", l.Name)
		}
		if first.Layers[i].Cached {
			t.Errorf("first build: layer %s cached", l.Name)
		}
	}
	if names := layerNames(second); names != "os ric entrypoint" {
		t.Fatalf("layers %q", names)
	}
	cf, err := second.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/lambda-entrypoint.sh" || cf.Config.WorkingDir != "/var/task" || len(cf.Config.Cmd) != 0 {
		t.Fatalf("config %+v", cf.Config)
	}
	if cf.Config.Env[0] != "LANG=en_US.UTF-8" || !strings.HasPrefix(cf.Config.Env[2], "PATH=/var/lang/bin:") {
		t.Fatalf("env %q", cf.Config.Env)
	}
	lock, err := ReadLock(filepath.Join(dir, "offline.lock.json"))
	if err != nil || lock == nil || lock.Runtime != "offline" {
		t.Fatalf("lock %+v %v", lock, err)
	}
	sbom, err := SPDX(lock, "x", time.Time{})
	if err != nil || !json.Valid(sbom) {
		t.Fatalf("sbom: %v", err)
	}
}

func layerNames(r *Result) string {
	var names []string
	for _, l := range r.Layers {
		names = append(names, l.Name)
	}
	return strings.Join(names, " ")
}

func TestLockForAnotherRuntimeIsRefused(t *testing.T) {
	r, _ := recipe.Parse("offline.toml", []byte(offlineRecipe))
	dir := t.TempDir()
	lock := filepath.Join(dir, "l.json")
	os.WriteFile(lock, []byte(`{"runtime":"python3.11","arch":"amd64"}`), 0o644)
	emu := filepath.Join(dir, "emu")
	os.WriteFile(emu, nil, 0o755)
	_, err := Build(context.Background(), Config{Recipe: r, CacheDir: dir, LockFile: lock, Emulator: emu})
	if err == nil || !strings.Contains(err.Error(), "is for python3.11") {
		t.Fatalf("err = %v", err)
	}
}

// A lock resolved from another Debian suite than the recipe's is refused
// with a clear error, for build and update alike; a lock written before
// suites is bookworm's.
func TestLockForAnotherSuiteIsRefused(t *testing.T) {
	r, _ := recipe.Parse("offline.toml", []byte(strings.Replace(offlineRecipe, `suite = "bookworm"`, `suite = "trixie"`, 1)))
	dir := t.TempDir()
	emu := filepath.Join(dir, "emu")
	os.WriteFile(emu, nil, 0o755)
	for _, lock := range []string{
		`{"runtime":"offline","arch":"amd64","suite":"forky","layers":{}}`,
		`{"runtime":"offline","arch":"amd64","layers":{}}`,
	} {
		path := filepath.Join(dir, "l.json")
		os.WriteFile(path, []byte(lock), 0o644)
		cfg := Config{Recipe: r, CacheDir: dir, LockFile: path, Emulator: emu}
		_, err := Build(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "pins packages of Debian ") || !strings.Contains(err.Error(), "recipe offline is built from trixie") {
			t.Fatalf("build with lock %s: err = %v", lock, err)
		}
		if _, err := Update(context.Background(), cfg, true); err == nil || !strings.Contains(err.Error(), "recipe offline is built from trixie") {
			t.Fatalf("update with lock %s: err = %v", lock, err)
		}
	}
}

func TestReadLockErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l.json")
	os.WriteFile(path, []byte(`{"runtime": `), 0o644)
	if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), "reading lock file") {
		t.Fatalf("err = %v", err)
	}
}

func TestDiffLocks(t *testing.T) {
	deb := func(name, version string, sec bool) debian.Package {
		return debian.Package{Name: name, Version: version, Arch: "amd64", Security: sec}
	}
	old := &Lock{Layers: map[string]*LayerLock{
		"os":      {Debs: []debian.Package{deb("libc6", "2.41-12", false), deb("libzstd1", "1.5.7+dfsg-1", false), deb("gone", "1", false)}},
		"runtime": {Debs: []debian.Package{deb("python3.13-minimal", "3.13.5-2", false)}, Pip: []string{"pip==25.0"}},
		"ric":     {Pip: []string{"awslambdaric==4.2.2", "simplejson==4.3.0"}, Maven: []Artifact{{"a-1.jar", "aaaaaaaaaaaaaaaa"}}},
	}}
	new := &Lock{Layers: map[string]*LayerLock{
		"os":      {Debs: []debian.Package{deb("libc6", "2.41-12", false), deb("libzstd1", "1.5.7+dfsg-1+deb13u1", true), deb("added", "2", false)}},
		"runtime": {Debs: []debian.Package{deb("python3.13-minimal", "3.13.5-2", false)}, Pip: []string{"pip==25.1"}},
		"ric":     {Pip: []string{"awslambdaric==4.2.2", "simplejson==4.3.0"}, Maven: []Artifact{{"a-1.jar", "aaaaaaaaaaaaaaaa"}}},
	}}
	var got []string
	for _, c := range diffLocks(old, new) {
		got = append(got, c.String())
	}
	want := []string{
		"os       deb    added (none) → 2",
		"os       deb    gone 1 → (removed)",
		"os       deb    libzstd1 1.5.7+dfsg-1 → 1.5.7+dfsg-1+deb13u1 (security)",
		"runtime  pip    pip 25.0 → 25.1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := diffLocks(new, new); len(d) != 0 {
		t.Fatalf("no change: %v", d)
	}
	if d := diffLocks(nil, new); len(d) != 8 {
		t.Fatalf("no old lock: %d changes, want every package", len(d))
	}
}

// An offline recipe with user-provided inputs, shaped like dotnet8's.
const inputsRecipe = `
name = "inputs"
suite = "trixie"
[[inputs]]
name = "dotnet"
help = "a runtime tarball"
version = "shared/Microsoft.NETCore.App"
[[inputs]]
name = "runtimesupport"
help = "a directory"
[[runtime.unpack]]
input = "dotnet"
target = "/var/lang/bin"
[[ric.unpack]]
input = "runtimesupport"
target = "/var/runtime"
`

func TestBuildWithInputs(t *testing.T) {
	r, err := recipe.Parse("inputs.toml", []byte(inputsRecipe))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	emu := filepath.Join(dir, "emu")
	os.WriteFile(emu, nil, 0o755)
	cfg := Config{Recipe: r, CacheDir: filepath.Join(dir, "cache"), LockFile: filepath.Join(dir, "l.json"), Emulator: emu}
	if _, err := Build(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "needs --input dotnet=PATH: a runtime tarball") {
		t.Fatalf("without inputs: err = %v", err)
	}

	// The runtime as a .tar.gz (as dot.net ships it), RuntimeSupport as a directory.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		mode int64
	}{{"./dotnet", 0o755}, {"./shared/Microsoft.NETCore.App/8.0.11/System.Private.CoreLib.dll", 0o644}, {"./host/fxr/8.0.11/libhostfxr.so", 0o644}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
	}
	tw.Close()
	zw.Close()
	tgz := filepath.Join(dir, "dotnet-runtime-8.0.11-linux-x64.tar.gz")
	os.WriteFile(tgz, buf.Bytes(), 0o644)
	rs := filepath.Join(dir, "rs")
	os.MkdirAll(rs, 0o755)
	os.WriteFile(filepath.Join(rs, "Amazon.Lambda.RuntimeSupport.dll"), []byte("x"), 0o644)

	cfg.Inputs = map[string]string{"dotnet": tgz, "runtimesupport": rs}
	res, err := Build(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if env := strings.Join(cf.Config.Env, " "); !strings.Contains(env, " DOTNET_VERSION=8.0.11") {
		t.Errorf("env %s: no DOTNET_VERSION=8.0.11", env)
	}
	files := map[string]int64{}
	layers, _ := res.Image.Layers()
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			files[h.Name] = h.Mode
		}
		rc.Close()
	}
	for name, mode := range map[string]int64{"var/lang/bin/dotnet": 0o755, "var/lang/bin/host/fxr/8.0.11/libhostfxr.so": 0o644, "var/runtime/Amazon.Lambda.RuntimeSupport.dll": 0o644} {
		if got, ok := files[name]; !ok || got != mode {
			t.Errorf("%s: mode %o (present %v), want %o", name, got, ok, mode)
		}
	}

	// A runtime with two versions cannot name DOTNET_VERSION.
	os.MkdirAll(filepath.Join(dir, "two", "shared", "Microsoft.NETCore.App", "8.0.1"), 0o755)
	os.MkdirAll(filepath.Join(dir, "two", "shared", "Microsoft.NETCore.App", "8.0.2"), 0o755)
	cfg.Inputs["dotnet"] = filepath.Join(dir, "two")
	if _, err := Build(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "want exactly one directory") {
		t.Fatalf("two versions: err = %v", err)
	}
}
