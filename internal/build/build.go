package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lambdabox/lambdabox/internal/base"
	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
)

// formatVersion changes whenever the way cached layers are made changes.
const formatVersion = "lambdabox-build-1"

// Layer roles, as --json reports them.
const (
	RoleBase         = "base"
	RoleDependencies = "dependencies"
	RoleCode         = "code"
	RoleLayer        = "layer"
)

// Bases makes lambdabox's own base images.
type Bases interface {
	// Base returns the base image built from recipe for arch (amd64 or
	// arm64), from the layer cache when it is there.
	Base(ctx context.Context, recipe, arch string) (v1.Image, error)
}

// AddonBuilder is an optional extra of Bases: it builds npm native addons
// against the Node of a base it made.
type AddonBuilder interface {
	// BuildAddons runs the install scripts of the packages in dir (a
	// package-lock.json and a node_modules installed with
	// --ignore-scripts) under the Node of the base built from recipe for
	// arch.
	BuildAddons(ctx context.Context, recipe, arch, dir string) error
}

// Config is one build. Zero values are the defaults noted.
type Config struct {
	// Dir is the function's folder. Required.
	Dir string
	// Runtime is a runtime name (LookupRuntime); empty means detected.
	Runtime string
	// Handler becomes the image's CMD; empty means the folder's default.
	Handler string
	// Base is a runtime name, an OCI layout or tarball path, or a
	// registry reference; empty means lambdabox's base for the runtime.
	Base string
	// BaseMap makes a Dockerfile's FROM of an AWS Lambda base image use
	// lambdabox's base without trying to pull it first.
	BaseMap bool
	// Engine is "" (native, handing over to an engine only for what
	// build cannot do), "none" (never hand over), or docker, podman or
	// buildah (always hand a Dockerfile over to that engine).
	Engine string
	// EngineFlags are passed to the engine's build command.
	EngineFlags []string
	// Arch is amd64 (default) or arm64.
	Arch string
	// Env are KEY=VALUE variables set in the image.
	Env []string
	// Layers are Lambda layers, folders or .zip files, unpacked under /opt
	// in order.
	Layers []string
	// AllowSdist lets pip build packages that have no wheel on this host,
	// when the host's Python and architecture match the image's.
	AllowSdist bool
	// CacheDir holds the dependency layers. Required.
	CacheDir string
	// Epoch is every file's mtime and the image's creation time
	// (SOURCE_DATE_EPOCH); zero means 1970-01-01.
	Epoch time.Time
	// Bases makes lambdabox base images. Required unless Base is a path or
	// a reference.
	Bases Bases
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("no function folder")
	case c.CacheDir == "":
		return errors.New("no cache directory")
	}
	if st, err := os.Stat(c.Dir); err != nil {
		return fmt.Errorf("function folder: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("function folder %s is not a directory", c.Dir)
	}
	switch c.Arch {
	case "", "amd64", "arm64":
	default:
		return fmt.Errorf("architecture %q: want amd64 or arm64", c.Arch)
	}
	switch c.Engine {
	case "", "none", "docker", "podman", "buildah":
	default:
		return fmt.Errorf("engine %q: want docker, podman, buildah or none", c.Engine)
	}
	if c.Runtime != "" {
		if _, err := LookupRuntime(c.Runtime); err != nil {
			return err
		}
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
	}
	for _, l := range c.Layers {
		if _, err := os.Stat(l); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

// LayerInfo describes one layer of the built image.
type LayerInfo struct {
	Digest string `json:"digest"`
	// Size is the compressed size in bytes.
	Size int64 `json:"size"`
	// Role is base, dependencies, code or layer.
	Role string `json:"role"`
}

// Package is one package of the dependency layer, for the SBOM.
type Package struct {
	// Type is the package ecosystem: pypi, npm, maven or nuget.
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Step is one timed step of a build.
type Step struct {
	Name   string
	Took   time.Duration
	Detail string
}

// Result is a built image.
type Result struct {
	Image  v1.Image
	Layers []LayerInfo
	// Packages are the dependency layer's packages.
	Packages []Package
	// Runtime and Handler are what the build used.
	Runtime, Handler string
	// Base says which base image the build used.
	Base string
	// Engine names the container engine the build was handed to, if any.
	Engine string
	// Steps are the build's timed steps, in order.
	Steps []Step
}

// Build builds the image of the function in cfg.Dir: natively from its
// Dockerfile when it has one, else from its files.
func Build(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Arch == "" {
		cfg.Arch = "amd64"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Unix(0, 0)
	}
	if err := os.MkdirAll(filepath.Join(cfg.CacheDir, "build"), 0o755); err != nil {
		return nil, fmt.Errorf("preparing cache: %w", err)
	}
	ig, err := loadIgnore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	b := &builder{cfg: cfg, ig: ig, res: &Result{}}
	if _, serr := os.Stat(filepath.Join(cfg.Dir, "Dockerfile")); serr == nil {
		err = b.dockerfile(ctx, filepath.Join(cfg.Dir, "Dockerfile"))
	} else {
		err = b.folder(ctx)
	}
	if err != nil {
		return nil, err
	}
	return b.res, nil
}

// builder is the state of one build.
type builder struct {
	cfg        Config
	ig         *ignore
	res        *Result
	base       v1.Image
	baseDigest string
	suite      debian.Suite // of the base's packages, for RUN dnf install
	// recipe names the lambdabox base's recipe, when the base is one.
	recipe string
	adds   []image.Addition
	roles  []string
}

func (b *builder) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, format+"\n", args...)
}

// step runs fn as a timed step.
func (b *builder) step(name string, fn func() (string, error)) error {
	start := time.Now()
	b.logf("%s…", name)
	detail, err := fn()
	took := time.Since(start)
	b.res.Steps = append(b.res.Steps, Step{Name: name, Took: took, Detail: detail})
	if err != nil {
		return err
	}
	if detail != "" {
		detail = ": " + detail
	}
	b.logf("%s%s (%s)", name, detail, took.Round(time.Millisecond))
	return nil
}

// plan is what a language step contributes.
type plan struct {
	handler string
	// deps computes the dependency tree (rooted at /) and its packages; key
	// is its cache key's inputs. Nil deps means no dependency layer.
	deps    func(ctx context.Context) (*image.Tree, []Package, error)
	depsKey []string
	// code is the code tree, rooted at /.
	code func(ctx context.Context) (*image.Tree, error)
}

func (b *builder) folder(ctx context.Context) error {
	var rt Runtime
	var err error
	if b.cfg.Runtime != "" {
		rt, err = LookupRuntime(b.cfg.Runtime)
	} else {
		rt, err = Detect(b.cfg.Dir)
	}
	if err != nil {
		return err
	}
	b.res.Runtime = rt.Name
	// The language version dependencies are installed for: the base's when
	// it is a lambdabox base, else the runtime's.
	version := rt.Version
	if b.cfg.Base == "" {
		version = rt.RecipeVersion
	} else if brt, err := LookupRuntime(b.cfg.Base); err == nil {
		version = brt.RecipeVersion
	}
	var p *plan
	switch rt.Lang {
	case Python:
		p, err = b.python(rt, version)
	case Node:
		p, err = b.node(version)
	case Go:
		p, err = b.golang()
	case Java:
		p, err = b.java()
	case DotNet:
		p, err = b.dotnet()
	case Rust, Provided:
		p, err = b.bootstrap()
	default:
		err = fmt.Errorf("runtime %s: no builder for %s", rt.Name, rt.Lang)
	}
	if err != nil {
		return err
	}
	b.res.Handler = p.handler
	// The code first: a compile error shows before any base is built.
	var code *image.Tree
	if err := b.step("code", func() (string, error) {
		code, err = p.code(ctx)
		return "", err
	}); err != nil {
		return err
	}
	if err := b.step("base", func() (string, error) {
		_, err := b.resolveBase(ctx, rt)
		return b.res.Base, err
	}); err != nil {
		return err
	}
	if err := b.userLayers(); err != nil {
		return err
	}
	if p.deps != nil {
		if err := b.step("dependencies", func() (string, error) {
			return b.cachedLayer(ctx, RoleDependencies, "lambdabox dependencies", p.depsKey, p.deps)
		}); err != nil {
			return err
		}
	}
	if err := b.step("compress code", func() (string, error) {
		return b.addTree(code, RoleCode, "lambdabox code")
	}); err != nil {
		return err
	}
	return b.finish(image.Extension{Cmd: []string{p.handler}})
}

// resolveBase sets b.base from cfg.Base or rt, and returns the language
// version of the base when it is known from a lambdabox recipe.
func (b *builder) resolveBase(ctx context.Context, rt Runtime) (string, error) {
	src := b.cfg.Base
	if src == "" {
		src = rt.Name
	}
	if brt, err := LookupRuntime(src); err == nil {
		img, err := b.lambdaboxBase(ctx, brt)
		if err != nil {
			return "", err
		}
		return brt.RecipeVersion, b.setBase(img)
	}
	img, err := image.Read(ctx, src, b.cfg.Arch)
	if err != nil {
		return "", err
	}
	b.res.Base = src
	return "", b.setBase(img)
}

func (b *builder) lambdaboxBase(ctx context.Context, rt Runtime) (v1.Image, error) {
	if b.cfg.Bases == nil {
		return nil, fmt.Errorf("no lambdabox base builder for %s", rt.Recipe)
	}
	b.res.Base = "lambdabox " + rt.Recipe
	b.recipe = rt.Recipe
	if rt.Recipe != rt.Name && rt.Version != "" {
		b.res.Base += " (nearest to " + rt.Name + ")"
	}
	img, err := b.cfg.Bases.Base(ctx, rt.Recipe, b.cfg.Arch)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", rt.Recipe, err)
	}
	return img, nil
}

func (b *builder) setBase(img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	if cf, err := img.ConfigFile(); err == nil && cf.Architecture != "" && cf.Architecture != b.cfg.Arch {
		return fmt.Errorf("the base image is for %s/%s, the build for linux/%s (--platform)", cf.OS, cf.Architecture, b.cfg.Arch)
	}
	b.base, b.baseDigest = img, d.String()
	// A lambdabox base names its Debian suite; any other base is taken
	// for bookworm.
	name := "bookworm"
	if cf, err := img.ConfigFile(); err == nil && cf.Config.Labels[base.SuiteLabel] != "" {
		name = cf.Config.Labels[base.SuiteLabel]
	}
	if b.suite, err = debian.LookupSuite(name); err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	return nil
}

// cachedLayer adds the layer made by fn, taken from the cache when a layer
// was made from the same key inputs on the same base before.
func (b *builder) cachedLayer(ctx context.Context, role, comment string, key []string, fn func(ctx context.Context) (*image.Tree, []Package, error)) (string, error) {
	h := sha256.New()
	for _, k := range append([]string{formatVersion, role, b.baseDigest, b.cfg.Arch, b.cfg.Epoch.UTC().String()}, key...) {
		fmt.Fprintf(h, "%d:%s\n", len(k), k)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	path := filepath.Join(b.cfg.CacheDir, "build", sum+".tar.gz")
	pkgFile := filepath.Join(b.cfg.CacheDir, "build", sum+".packages.json")
	if _, err := os.Stat(path); err == nil {
		var pkgs []Package
		if data, err := os.ReadFile(pkgFile); err == nil && json.Unmarshal(data, &pkgs) == nil {
			l, err := image.OpenLayer(path)
			if err == nil {
				b.add(l, role, comment)
				b.res.Packages = append(b.res.Packages, pkgs...)
				return fmt.Sprintf("cached, %d packages", len(pkgs)), nil
			}
		}
	}
	t, pkgs, err := fn(ctx)
	if err != nil {
		return "", err
	}
	l, err := image.TreeLayer(t, b.cfg.Epoch, 6)
	if err != nil {
		return "", err
	}
	if err := image.SaveLayer(path, l); err != nil {
		return "", fmt.Errorf("caching layer: %w", err)
	}
	data, _ := json.Marshal(pkgs)
	if err := os.WriteFile(pkgFile, data, 0o644); err != nil {
		return "", fmt.Errorf("caching layer: %w", err)
	}
	l, err = image.OpenLayer(path)
	if err != nil {
		return "", err
	}
	b.add(l, role, comment)
	b.res.Packages = append(b.res.Packages, pkgs...)
	sz, _ := l.Size()
	return fmt.Sprintf("%d files, %d packages, %s", len(t.Files("")), len(pkgs), mib(sz)), nil
}

func (b *builder) add(l v1.Layer, role, comment string) {
	b.adds = append(b.adds, image.Addition{Layer: l, Comment: comment})
	b.roles = append(b.roles, role)
}

// addTree adds t as an in-memory layer.
func (b *builder) addTree(t *image.Tree, role, comment string) (string, error) {
	l, err := image.TreeLayer(t, b.cfg.Epoch, 6)
	if err != nil {
		return "", err
	}
	b.add(l, role, comment)
	sz, _ := l.Size()
	return fmt.Sprintf("%d files, %s", len(t.Files("")), mib(sz)), nil
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// userLayers adds cfg.Layers under /opt, one layer each.
func (b *builder) userLayers() error {
	for _, src := range b.cfg.Layers {
		if err := b.step("layer "+filepath.Base(src), func() (string, error) {
			t := image.NewTree()
			st, err := os.Stat(src)
			if err != nil {
				return "", err
			}
			if st.IsDir() {
				err = addDir(t, src, "opt", nil)
			} else {
				err = addZip(t, src, "opt")
			}
			if err != nil {
				return "", fmt.Errorf("layer %s: %w", src, err)
			}
			return b.addTree(t, RoleLayer, "lambdabox layer "+filepath.Base(src))
		}); err != nil {
			return err
		}
	}
	return nil
}

// finish extends the base with the added layers and ext, and fills in the
// result's image and layers.
func (b *builder) finish(ext image.Extension) error {
	ext.Layers = b.adds
	ext.Env = append(ext.Env, b.cfg.Env...)
	ext.Created = b.cfg.Epoch
	img, err := image.Extend(b.base, ext)
	if err != nil {
		return err
	}
	baseLayers, err := b.base.Layers()
	if err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		sz, err := l.Size()
		if err != nil {
			return err
		}
		role := RoleBase
		if i >= len(baseLayers) {
			role = b.roles[i-len(baseLayers)]
		}
		b.res.Layers = append(b.res.Layers, LayerInfo{Digest: d.String(), Size: sz, Role: role})
	}
	b.res.Image = img
	return nil
}

// skipAlways are never part of a function's code.
var skipAlways = map[string]bool{".git": true, ".hg": true, ".svn": true, ".lambdaboxignore": true, ".dockerignore": true, "Dockerfile": true, ".aws-sam": true}

// addDir adds the host folder root under prefix, skipping what the
// ignore file and skip exclude (rel is slash-separated).
func addDir(t *image.Tree, root, prefix string, skip func(rel string, dir bool) bool) error {
	return t.AddDirFromDiskSkipping(root, prefix, skip)
}

// codeSkip is the skip function for a function folder: the ignore file,
// skipAlways, and extra names skipped at any depth.
func (b *builder) codeSkip(extra ...string) func(rel string, dir bool) bool {
	ex := map[string]bool{}
	for _, e := range extra {
		ex[e] = true
	}
	return func(rel string, dir bool) bool {
		base := path.Base(rel)
		if (!strings.Contains(rel, "/") && skipAlways[rel]) || ex[base] || b.ig.match(rel) {
			return true
		}
		return false
	}
}

// hashFiles returns a key input for the contents of the named files of
// dir; missing files count as empty.
func hashFiles(dir string, names ...string) string {
	h := sha256.New()
	for _, n := range names {
		data, _ := os.ReadFile(filepath.Join(dir, n))
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}
