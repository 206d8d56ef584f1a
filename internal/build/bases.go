package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lambdabox/lambdabox/internal/base"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// RecipeBases builds lambdabox base images from their recipes, as
// lambdabox base build does, with lock files kept in the cache.
type RecipeBases struct {
	// CacheDir is the base builder's cache (layers, downloads, locks).
	CacheDir string
	// WorkDir is where the emulator's source tree is looked for.
	WorkDir string
	// Emulator is a static lambdabox binary; empty means base.FindEmulator.
	Emulator string
	// Inputs are the recipes' user-provided files (dotnet8).
	Inputs map[string]string
	// Log receives the base builder's lines.
	Log io.Writer
}

var (
	_ Bases        = (*RecipeBases)(nil)
	_ AddonBuilder = (*RecipeBases)(nil)
)

// lockFile is where the lock file of recipe's base for arch is kept.
func (r *RecipeBases) lockFile(recipe, arch string) string {
	return filepath.Join(r.CacheDir, "bases", fmt.Sprintf("%s-%s.lock.json", recipe, arch))
}

// BuildAddons implements AddonBuilder, in a build root of the Debian
// packages that the base's lock file pins (see base.BuildAddons).
func (r *RecipeBases) BuildAddons(ctx context.Context, name, arch, dir string) error {
	rec, err := recipe.Load(name)
	if err != nil {
		return err
	}
	return base.BuildAddons(ctx, base.AddonConfig{
		Recipe:   rec,
		CacheDir: r.CacheDir,
		LockFile: r.lockFile(name, arch),
		Arch:     arch,
		Log:      r.Log,
	}, dir)
}

// Base implements Bases.
func (r *RecipeBases) Base(ctx context.Context, name, arch string) (v1.Image, error) {
	rec, err := recipe.Load(name)
	if err != nil {
		return nil, err
	}
	emu := r.Emulator
	if emu == "" {
		if emu, err = base.FindEmulator(ctx, r.WorkDir, r.CacheDir, arch); err != nil {
			return nil, err
		}
	}
	locks := filepath.Join(r.CacheDir, "bases")
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return nil, err
	}
	inputs := map[string]string{}
	for _, in := range rec.Inputs {
		if v, ok := r.Inputs[in.Name]; ok {
			inputs[in.Name] = v
		}
	}
	res, err := base.Build(ctx, base.Config{
		Recipe:   rec,
		CacheDir: r.CacheDir,
		LockFile: r.lockFile(name, arch),
		Arch:     arch,
		Emulator: emu,
		Inputs:   inputs,
		Log:      r.Log,
	})
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}
