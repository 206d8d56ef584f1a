package base

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/recipe"
)

// A recipe with no packages builds offline: files, symlinks and the
// entrypoint layer only.
const offlineRecipe = `
name = "offline"
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
