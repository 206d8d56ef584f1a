package base

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Module is the Go module whose cmd/lambdabox is built as the emulator.
const Module = "github.com/lambdabox/lambdabox"

// ErrNoEmulator is returned by FindEmulator when there is neither a source
// tree nor a usable static binary.
var ErrNoEmulator = errors.New("no emulator binary: run inside the lambdabox source tree, use a static lambdabox binary, or pass --emulator")

// FindEmulator returns a static lambdabox binary for arch to install in
// images: built from the source tree around dir when there is one (cached
// by the hash of the sources), else the running binary when it is static
// and for arch.
func FindEmulator(ctx context.Context, dir, cacheDir, arch string) (string, error) {
	if root := moduleRoot(dir); root != "" {
		if _, err := exec.LookPath("go"); err == nil {
			return buildEmulator(ctx, root, filepath.Join(cacheDir, "emulator"), arch)
		}
	}
	self, err := os.Executable()
	if err == nil && runtime.GOARCH == arch && isStatic(self) {
		return self, nil
	}
	return "", ErrNoEmulator
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

func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// buildEmulator builds ./cmd/lambdabox with CGO_ENABLED=0 -trimpath
// -ldflags="-s -w", reusing an earlier build of the same sources.
func buildEmulator(ctx context.Context, root, cacheDir, arch string) (string, error) {
	ver, err := run(ctx, root, "go", "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", strings.TrimSpace(string(ver)), arch)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
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
		fmt.Fprintf(h, "%s\x00", rel)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hashing sources: %w", err)
	}
	out := filepath.Join(cacheDir, "aws-lambda-rie-"+hex.EncodeToString(h.Sum(nil))[:24])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "lambdabox_emulator", "-ldflags=-s -w -buildid=", "-o", tmp, "./cmd/lambdabox")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building the emulator: %w: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}
