package base

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Module is the Go module whose EmulatorPackage is built as the emulator.
const Module = "github.com/lambdabox/lambdabox"

// EmulatorPackage is the command built as the emulator, relative to
// Module: the emulator alone, without lambdabox's image builder, control
// plane or container client.
const EmulatorPackage = "./cmd/aws-lambda-rie"

// EmulatorToolchain is the Go toolchain every emulator is built with
// (GOTOOLCHAIN): with -trimpath, no VCS stamp, no build ID, stripped
// symbols and fixed GOAMD64/GOARM64, the same source gives the same bytes
// on every machine. A different local Go downloads this one through the
// module proxy once.
const EmulatorToolchain = "go1.26.8"

// ErrNoEmulator is returned by FindEmulator when lambdabox can find no
// source to build the emulator from.
var ErrNoEmulator = errors.New("no emulator source")

// FindEmulator returns the emulator installed as /usr/local/bin/aws-lambda-rie
// in images: lambdabox's cmd/aws-lambda-rie (EmulatorPackage) built for
// arch, reproducibly, so that every user of the same lambdabox
// version puts the same bytes in their images. It never uses the running
// binary, whose bytes depend on how the user built it.
//
// The source is the lambdabox source tree around dir when there is one
// (cached by the hash of its sources), else the module of the running
// binary's version from the Go module cache (`go install
// github.com/lambdabox/lambdabox/cmd/lambdabox@vX.Y.Z`; cached by version).
// A lambdabox built from a source tree and run outside it has neither, and
// gets ErrNoEmulator.
func FindEmulator(ctx context.Context, dir, cacheDir, arch string) (string, error) {
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == Module {
		version = bi.Main.Version
	}
	return findEmulator(ctx, dir, cacheDir, arch, version)
}

// findEmulator is FindEmulator for a lambdabox of the given module version.
func findEmulator(ctx context.Context, dir, cacheDir, arch, version string) (string, error) {
	src, err := emulatorSource(ctx, dir, version)
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("building the emulator from %s needs the Go toolchain (go on PATH), or pass --emulator: %w", src.dir, err)
	}
	if src.key == "" {
		if src.key, err = sourceHash(src.dir); err != nil {
			return "", fmt.Errorf("hashing sources: %w", err)
		}
	}
	return buildEmulator(ctx, src, filepath.Join(cacheDir, "emulator"), arch)
}

// source is a lambdabox module to build the emulator from.
type source struct {
	dir string
	// key names the build in the cache: a version, or "" for the hash of
	// the sources.
	key string
}

// emulatorSource finds the module to build: the source tree around dir,
// else lambdabox's released version in the module cache.
func emulatorSource(ctx context.Context, dir, version string) (source, error) {
	if root := moduleRoot(dir); root != "" {
		return source{dir: root}, nil
	}
	if !released(version) {
		return source{}, fmt.Errorf("%w: %s is not inside the lambdabox source tree, and this lambdabox is not a released version (%s) whose source the Go module cache can hold: "+
			"run it inside the source tree it was built from, install a release with `go install %s/cmd/lambdabox@VERSION`, or pass --emulator FILE", ErrNoEmulator, dir, orDevel(version), Module)
	}
	mod, err := moduleDir(ctx, version)
	if err != nil {
		return source{}, err
	}
	return source{dir: mod, key: version}, nil
}

func released(version string) bool {
	return strings.HasPrefix(version, "v") && version != "(devel)"
}

func orDevel(v string) string {
	if v == "" {
		return "(devel)"
	}
	return v
}

// moduleDir returns the directory of lambdabox@version in the Go module
// cache, downloading it when missing.
func moduleDir(ctx context.Context, version string) (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("building the emulator of lambdabox %s needs the Go toolchain (go on PATH), or pass --emulator: %w", version, err)
	}
	out, err := run(ctx, "", "go", "mod", "download", "-json", Module+"@"+version)
	if err != nil {
		return "", fmt.Errorf("fetching lambdabox %s's source for the emulator: %w", version, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("fetching lambdabox %s's source for the emulator: %s %v", version, m.Error, err)
	}
	return m.Dir, nil
}

func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if f, err := os.Open(filepath.Join(d, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			sc.Scan()
			f.Close()
			if strings.TrimSpace(sc.Text()) == "module "+Module {
				return d
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// sourceHash hashes the Go sources (no tests, no testdata) and go.mod and
// go.sum of the module at root.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return "src-" + hex.EncodeToString(h.Sum(nil))[:24], nil
}

// emulatorEnv is the environment of the emulator build: the host's, minus
// every variable that changes the bytes go build writes, plus fixed values
// for them.
func emulatorEnv(arch string) []string {
	fixed := map[string]string{
		"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": arch, "GOTOOLCHAIN": EmulatorToolchain,
		"GOAMD64": "v1", "GOARM64": "v8.0", "GOFLAGS": "-mod=readonly", "GOEXPERIMENT": "",
		"GOWORK": "off", "GODEBUG": "",
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := fixed[k]; ok || strings.HasPrefix(k, "CGO_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range fixed {
		env = append(env, k+"="+v)
	}
	return env
}

// buildEmulator builds EmulatorPackage of src, reusing an earlier build of
// the same key, toolchain and arch.
func buildEmulator(ctx context.Context, src source, cacheDir, arch string) (string, error) {
	out := filepath.Join(cacheDir, fmt.Sprintf("aws-lambda-rie-%s-%s-%s", src.key, EmulatorToolchain, arch))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(cacheDir, ".build-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", tmp.Name(), EmulatorPackage)
	cmd.Dir = src.dir
	cmd.Env = emulatorEnv(arch)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the emulator from %s: %w: %s", src.dir, err, strings.TrimSpace(msg.String()))
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}
