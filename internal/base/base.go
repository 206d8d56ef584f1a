// Package base builds lambdabox's Lambda base images from recipes: Debian
// packages fetched and unpacked with apt and dpkg-deb, language packages
// from PyPI, npm and Maven Central, and lambdabox's own entrypoint and
// emulator. It needs no container engine.
//
// An image has four layers, ordered by how often they change: os, runtime,
// ric (the Runtime Interface Client and /var/runtime/bootstrap) and
// entrypoint (lambdabox's cmd/aws-lambda-rie as /usr/local/bin/aws-lambda-rie
// and /lambda-entrypoint.sh). Each is cached under the hash of its inputs, so a
// rebuild with one change rebuilds one layer and an unchanged rebuild
// rebuilds none.
package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// formatVersion changes whenever the way layers are made changes, so that
// cached layers from an older lambdabox are not reused.
const formatVersion = "lambdabox-base-1"

// Config is one base image build. Zero values are the defaults noted.
type Config struct {
	// Recipe is the recipe to build. Required.
	Recipe *recipe.Recipe
	// CacheDir holds apt state, downloads and built layers. Required.
	CacheDir string
	// LockFile is read when it exists and written after resolving. Required.
	LockFile string
	// UpdateLock resolves every layer again, ignoring the lock file's pins.
	UpdateLock bool
	// Arch is amd64 (default) or arm64.
	Arch string
	// Epoch is the mtime of every file and the image's creation time
	// (SOURCE_DATE_EPOCH); zero means 1970-01-01.
	Epoch time.Time
	// Emulator is a static emulator binary for Arch (lambdabox's
	// cmd/aws-lambda-rie, see FindEmulator), installed as
	// /usr/local/bin/aws-lambda-rie and /lambda-entrypoint.sh. Build
	// requires it; Update does not use it.
	Emulator string
	// Inputs maps the recipe's declared inputs to host paths.
	Inputs map[string]string
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Recipe == nil:
		return errors.New("no recipe")
	case c.CacheDir == "":
		return errors.New("no cache directory")
	case c.LockFile == "":
		return errors.New("no lock file")
	}
	switch c.Arch {
	case "", "amd64", "arm64":
	default:
		return fmt.Errorf("architecture %q: want amd64 or arm64", c.Arch)
	}
	for _, in := range c.Recipe.Inputs {
		if c.Inputs[in.Name] == "" {
			return fmt.Errorf("recipe %s needs --input %s=PATH: %s", c.Recipe.Name, in.Name, in.Help)
		}
	}
	for name, p := range c.Inputs {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("input %s: %w", name, err)
		}
	}
	return nil
}

// LayerInfo describes one built layer.
type LayerInfo struct {
	Name   string
	Digest string
	// Size is the compressed size in bytes.
	Size int64
	// Cached is true when the layer came from the cache.
	Cached bool
}

// Result is a built image.
type Result struct {
	Image  v1.Image
	Lock   *Lock
	Layers []LayerInfo
}

// Build builds the base image.
// SuiteLabel names the Debian suite a base image's packages come from, so
// that what is added on top of it (lambdabox build) comes from the same one.
const SuiteLabel = "dev.lambdabox.debian-suite"

func Build(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Emulator == "" {
		return nil, errors.New("no emulator binary")
	}
	if cfg.Arch == "" {
		cfg.Arch = "amd64"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	versions, err := inputVersions(cfg.Recipe, cfg.Inputs)
	if err != nil {
		return nil, err
	}
	b := &builder{cfg: cfg}
	for _, d := range []string{"layers", "emulator"} {
		if err := os.MkdirAll(filepath.Join(cfg.CacheDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("preparing cache: %w", err)
		}
	}
	lock, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	b.pins = lock
	res := &Result{Lock: lock}
	var layers []image.Layer
	for _, nl := range cfg.Recipe.Layers() {
		ll := lock.Layers[nl.Name]
		if ll == nil || isEmpty(nl.Layer) {
			continue
		}
		path, cached, err := b.layer(ctx, nl.Name, nl.Layer, ll)
		if err != nil {
			return nil, fmt.Errorf("%s layer: %w", nl.Name, err)
		}
		layers = append(layers, image.Layer{Path: path, Comment: fmt.Sprintf("lambdabox %s %s layer", cfg.Recipe.Name, nl.Name)})
		b.below = append(b.below, path)
		res.Layers = append(res.Layers, LayerInfo{Name: nl.Name, Cached: cached})
	}
	path, cached, err := b.entrypointLayer()
	if err != nil {
		return nil, fmt.Errorf("entrypoint layer: %w", err)
	}
	layers = append(layers, image.Layer{Path: path, Comment: "lambdabox entrypoint and emulator"})
	res.Layers = append(res.Layers, LayerInfo{Name: "entrypoint", Cached: cached})

	img, err := image.Build(layers, image.Config{
		Env:          Env(cfg.Recipe, versions),
		Entrypoint:   []string{"/lambda-entrypoint.sh"},
		WorkingDir:   "/var/task",
		Architecture: cfg.Arch,
		Created:      cfg.Epoch,
		Labels:       map[string]string{"org.opencontainers.image.title": "lambdabox " + cfg.Recipe.Name, SuiteLabel: cfg.Recipe.Suite},
	})
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for i, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		sz, err := l.Size()
		if err != nil {
			return nil, err
		}
		res.Layers[i].Digest, res.Layers[i].Size = d.String(), sz
	}
	res.Image = img
	return res, nil
}

// Env is the image's environment: the block every AWS base image sets,
// plus the recipe's own variables and extra (such as DOTNET_VERSION),
// sorted by name.
func Env(r *recipe.Recipe, extra map[string]string) []string {
	env := []string{
		"LANG=en_US.UTF-8",
		"TZ=:/etc/localtime",
		"PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
		"LAMBDA_TASK_ROOT=/var/task",
		"LAMBDA_RUNTIME_DIR=/var/runtime",
	}
	vars := map[string]string{}
	for k, v := range r.Env {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

func isEmpty(l *recipe.Layer) bool {
	return len(l.Packages) == 0 && l.Pip == nil && l.Npm == nil && l.Maven == nil && l.Jlink == nil &&
		len(l.Unpack) == 0 && len(l.Files) == 0 && len(l.Symlinks) == 0
}

type builder struct {
	cfg   Config
	apt   *debian.Apt
	pins  *Lock    // the lock file being built from
	below []string // the image's layers so far, bottom first
	// known are the checksums of .debs an earlier lock pinned, by
	// name_version_arch: resolving them again downloads nothing.
	known map[string]string
	// noDownload leaves new packages without a checksum (base update --check).
	noDownload bool
	// refreshed is set once Update has fetched the package lists.
	refreshed bool
}

// pin returns p with its .deb's checksum: the one an earlier lock
// recorded, else downloaded (unless noDownload).
func (b *builder) pin(ctx context.Context, a *debian.Apt, p debian.Package) (debian.Package, error) {
	if sum, ok := b.known[p.File()]; ok {
		p.SHA256 = sum
		return p, nil
	}
	if b.noDownload {
		return p, nil
	}
	return a.Pin(ctx, p)
}

// suite is the recipe's Debian release.
func (b *builder) suite() debian.Suite {
	s, err := debian.LookupSuite(b.cfg.Recipe.Suite)
	if err != nil {
		return debian.Suite{Name: b.cfg.Recipe.Suite, Glibc: "2.36"} // Validate has checked the suite
	}
	return s
}

// glibc is the C library version of the recipe's suite.
func (b *builder) glibc() string { return b.suite().Glibc }

// imagePath is where p goes in the image: on a merged-/usr suite, paths
// under /bin, /lib, /lib64 and /sbin go to /usr, as the links there lead.
func (b *builder) imagePath(p string) string {
	if b.suite().MergedUsr {
		return debian.UsrMerged(p)
	}
	return p
}

func (b *builder) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, format+"\n", args...)
}

func (b *builder) debian() (*debian.Apt, error) {
	if b.apt != nil {
		return b.apt, nil
	}
	a, err := b.debianFor(b.cfg.Arch)
	if err != nil {
		return nil, err
	}
	b.apt = a
	return a, nil
}

// debianFor returns apt for arch's packages, with its own state under the
// cache directory.
func (b *builder) debianFor(arch string) (*debian.Apt, error) {
	suite := b.cfg.Recipe.Suite
	return debian.New(debian.Config{Dir: filepath.Join(b.cfg.CacheDir, "apt-"+suite+"-"+arch), Suite: suite, Arch: arch})
}

// hashJSON is the sha256 of v's JSON encoding.
func hashJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data is hashed
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// resolutionInputs are the recipe fields a layer's pins depend on: every
// layer's packages up to and including this one.
func resolutionInputs(r *recipe.Recipe, upto int) string {
	type in struct {
		Packages, Exclude []string
		Pip               *recipe.Pip
		Npm               *recipe.Npm
		Maven             *recipe.Maven
		Jlink             *recipe.Jlink `json:",omitempty"`
	}
	var ins []in
	for i, nl := range r.Layers() {
		if i > upto {
			break
		}
		l := nl.Layer
		ins = append(ins, in{l.Packages, l.Exclude, l.Pip, l.Npm, l.Maven, l.Jlink})
	}
	return hashJSON(ins)
}

// lock reads the lock file, resolves the layers it lacks or whose recipe
// changed, and writes it back when anything changed.
func (b *builder) lock(ctx context.Context) (*Lock, error) {
	old, err := ReadLock(b.cfg.LockFile)
	if err != nil {
		return nil, err
	}
	if err := b.checkLock(old); err != nil {
		return nil, err
	}
	lock, changed, err := b.resolveLock(ctx, old, b.cfg.UpdateLock)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := lock.Write(b.cfg.LockFile); err != nil {
			return nil, err
		}
		b.logf("wrote lock file %s", b.cfg.LockFile)
	}
	return lock, nil
}

// resolveLock resolves the layers of the recipe that old lacks or whose
// recipe fields changed, or every layer when all is set, and reports
// whether the lock differs from old.
func (b *builder) resolveLock(ctx context.Context, old *Lock, all bool) (*Lock, bool, error) {
	r := b.cfg.Recipe
	lock := &Lock{Runtime: r.Name, Arch: b.cfg.Arch, Suite: r.Suite, Layers: map[string]*LayerLock{}}
	changed := old == nil || old.Suite != r.Suite
	var below []string // Debian packages of the layers below
	var belowExclude []string
	for i, nl := range r.Layers() {
		inputs := resolutionInputs(r, i)
		var prev *LayerLock
		if old != nil {
			prev = old.Layers[nl.Name]
		}
		if prev != nil && prev.Inputs == inputs && !all {
			lock.Layers[nl.Name] = prev
		} else {
			b.logf("resolving %s layer", nl.Name)
			ll, err := b.resolve(ctx, nl.Name, nl.Layer, below, belowExclude)
			if err != nil {
				return nil, false, fmt.Errorf("resolving %s layer: %w", nl.Name, err)
			}
			ll.Inputs = inputs
			lock.Layers[nl.Name] = ll
			changed = changed || prev == nil || hashJSON(prev) != hashJSON(ll)
		}
		below = append(below, nl.Layer.Packages...)
		belowExclude = append(belowExclude, nl.Layer.Exclude...)
	}
	return lock, changed, nil
}

// checkLock refuses a lock file written for another runtime, architecture
// or Debian suite.
func (b *builder) checkLock(old *Lock) error {
	r := b.cfg.Recipe
	if old == nil {
		return nil
	}
	if old.Runtime != r.Name || old.Arch != b.cfg.Arch {
		return fmt.Errorf("lock file %s is for %s/%s, not %s/%s", b.cfg.LockFile, old.Runtime, old.Arch, r.Name, b.cfg.Arch)
	}
	if old.SuiteName() != r.Suite {
		return fmt.Errorf("lock file %s pins packages of Debian %s, but recipe %s is built from %s: remove the lock file to resolve %s again", b.cfg.LockFile, old.SuiteName(), r.Name, r.Suite, r.Name)
	}
	return nil
}

func (b *builder) resolve(ctx context.Context, name string, l *recipe.Layer, below, belowExclude []string) (*LayerLock, error) {
	ll := &LayerLock{}
	if len(l.Packages) > 0 {
		a, err := b.debian()
		if err != nil {
			return nil, err
		}
		exclude := append(append([]string{}, belowExclude...), l.Exclude...)
		all, err := a.Resolve(ctx, append(append([]string{}, below...), l.Packages...), exclude)
		if err != nil {
			return nil, err
		}
		lower := map[string]bool{}
		if len(below) > 0 {
			pkgs, err := a.Resolve(ctx, below, belowExclude)
			if err != nil {
				return nil, err
			}
			for _, p := range pkgs {
				lower[p.Name] = true
			}
		}
		for _, p := range all {
			if lower[p.Name] {
				continue
			}
			pin, err := b.pin(ctx, a, p)
			if err != nil {
				return nil, err
			}
			ll.Debs = append(ll.Debs, pin)
		}
	}
	if l.Pip != nil {
		pins, err := pipResolve(ctx, l.Pip, b.cfg.Arch, b.glibc())
		if err != nil {
			return nil, err
		}
		ll.Pip = pins
	}
	if l.Maven != nil {
		arts, err := b.mavenResolve(ctx, l.Maven)
		if err != nil {
			return nil, err
		}
		ll.Maven = arts
	}
	if l.Jlink != nil {
		pins, err := b.jlinkResolve(ctx, l.Jlink)
		if err != nil {
			return nil, err
		}
		ll.Jlink = pins
	}
	if l.Npm != nil {
		if err := b.npmResolve(ctx, l.Npm, ll); err != nil {
			return nil, err
		}
	}
	return ll, nil
}

// layer returns the cached .tar.gz of a layer, building it when missing.
func (b *builder) layer(ctx context.Context, name string, l *recipe.Layer, ll *LayerLock) (string, bool, error) {
	inputs := map[string]string{}
	for _, u := range l.Unpack {
		h, err := hashPath(b.cfg.Inputs[u.Input])
		if err != nil {
			return "", false, fmt.Errorf("hashing input %s: %w", u.Input, err)
		}
		inputs[u.Input] = h
	}
	key := hashJSON(struct {
		Format, Name, Arch, Suite string
		Epoch                     int64
		Layer                     *recipe.Layer
		Lock                      *LayerLock
		Inputs                    map[string]string
	}{formatVersion, name, b.cfg.Arch, b.cfg.Recipe.Suite, b.cfg.Epoch.Unix(), l, ll, inputs})
	path, cached := b.cachedLayer(key)
	if cached {
		b.logf("%s layer: cached", name)
		return path, true, nil
	}
	start := time.Now()
	t, err := b.tree(ctx, l, ll)
	if err != nil {
		return "", false, err
	}
	if name == "os" && b.suite().MergedUsr {
		// base-files' links, which every binary's /lib64 or /lib loader
		// path goes through.
		for _, d := range debian.MergedDirs {
			if err := t.AddSymlink(d[0], d[1]); err != nil {
				return "", false, err
			}
		}
	}
	mib, err := b.saveLayer(path, t)
	if err != nil {
		return "", false, err
	}
	b.logf("%s layer: built in %s, %d files, %.1f MiB compressed", name, time.Since(start).Round(time.Millisecond), t.Len(), mib)
	return path, false, nil
}

// cachedLayer is the path of the cached layer with key, and whether it
// has been built.
func (b *builder) cachedLayer(key string) (string, bool) {
	path := filepath.Join(b.cfg.CacheDir, "layers", key+".tar.gz")
	_, err := os.Stat(path)
	return path, err == nil
}

// saveLayer writes t to the cache at path as a gzip layer and returns its
// compressed size in MiB.
func (b *builder) saveLayer(path string, t *image.Tree) (float64, error) {
	data, err := t.Gzip(b.epoch())
	if err != nil {
		return 0, err
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return 0, err
	}
	return float64(len(data)) / (1 << 20), nil
}

func (b *builder) epoch() time.Time {
	if b.cfg.Epoch.IsZero() {
		return time.Unix(0, 0)
	}
	return b.cfg.Epoch
}

// docPrefixes are dropped from Debian packages: documentation, manuals and
// translations are never read in a Lambda image. Copyright files stay.
var docPrefixes = []string{"usr/share/man/", "usr/share/info/", "usr/share/locale/", "usr/share/lintian/", "usr/share/doc-base/", "usr/share/bug/"}

func (b *builder) tree(ctx context.Context, l *recipe.Layer, ll *LayerLock) (*image.Tree, error) {
	t := image.NewTree()
	if len(ll.Debs) > 0 {
		a, err := b.debian()
		if err != nil {
			return nil, err
		}
		for _, p := range ll.Debs {
			path, err := a.Fetch(ctx, p)
			if err != nil {
				return nil, err
			}
			if err := debian.Unpack(ctx, path, t, b.suite().MergedUsr); err != nil {
				return nil, err
			}
		}
		for _, p := range t.Paths() {
			drop := strings.HasPrefix(p, "usr/share/doc/") && !strings.HasSuffix(p, "/copyright") && strings.Count(p, "/") > 3
			for _, pre := range docPrefixes {
				drop = drop || strings.HasPrefix(p+"/", pre)
			}
			if drop {
				if err := t.Remove(p); err != nil {
					return nil, err
				}
			}
		}
	}
	if l.Pip != nil {
		if err := pipInstall(ctx, l.Pip, ll.Pip, b.cfg.Arch, b.glibc(), t); err != nil {
			return nil, err
		}
	}
	if l.Maven != nil {
		if err := b.mavenInstall(ctx, l.Maven, ll.Maven, t); err != nil {
			return nil, err
		}
	}
	if l.Jlink != nil {
		if err := b.jlinkInstall(ctx, l.Jlink, ll.Jlink, t); err != nil {
			return nil, err
		}
	}
	if l.Npm != nil {
		if err := b.npmInstall(ctx, l.Npm, ll, t); err != nil {
			return nil, err
		}
	}
	for _, u := range l.Unpack {
		if err := unpackInput(ctx, b.cfg.Inputs[u.Input], u.Target, t); err != nil {
			return nil, fmt.Errorf("input %s: %w", u.Input, err)
		}
	}
	for _, f := range l.Files {
		perm, err := f.Perm()
		if err != nil {
			return nil, err
		}
		data := []byte(strings.ReplaceAll(f.Content, "{arch}", b.cfg.Arch))
		switch f.Generate {
		case "ca-bundle":
			data = caBundle(t)
		case "java-cacerts":
			data = javaCacerts(t, b.epoch())
		}
		if err := t.AddFile(b.imagePath(f.Path), data, perm); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(l.Symlinks))
	for p := range l.Symlinks {
		links = append(links, p)
	}
	sort.Strings(links)
	for _, p := range links {
		if err := t.AddSymlink(b.imagePath(strings.ReplaceAll(p, "{arch}", b.cfg.Arch)), strings.ReplaceAll(l.Symlinks[p], "{arch}", b.cfg.Arch)); err != nil {
			return nil, err
		}
	}
	for _, p := range l.Remove {
		if err := t.Remove(b.imagePath(p)); err != nil {
			return nil, err
		}
	}
	if l.Bytecode != nil {
		if err := b.pythonBytecode(ctx, l.Bytecode, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// caBundle concatenates the certificates under usr/share/ca-certificates,
// sorted by path, as update-ca-certificates does with the default selection.
func caBundle(t *image.Tree) []byte {
	var out []byte
	for _, p := range t.Paths() {
		if strings.HasPrefix(p, "usr/share/ca-certificates/") && strings.HasSuffix(p, ".crt") {
			data, _ := t.File(p)
			out = append(out, data...)
			if len(data) > 0 && data[len(data)-1] != '\n' {
				out = append(out, '\n')
			}
		}
	}
	return out
}

// entrypointLayer holds the emulator, the entrypoint symlink and the
// image's directory layout.
func (b *builder) entrypointLayer() (string, bool, error) {
	bin, err := os.ReadFile(b.cfg.Emulator)
	if err != nil {
		return "", false, fmt.Errorf("reading emulator: %w", err)
	}
	sum := sha256.Sum256(bin)
	key := hashJSON(struct {
		Format, Emulator string
		Epoch            int64
	}{formatVersion, hex.EncodeToString(sum[:]), b.cfg.Epoch.Unix()})
	path, cached := b.cachedLayer(key)
	if cached {
		return path, true, nil
	}
	t := image.NewTree()
	for _, d := range []string{"var/task", "var/runtime", "var/lang/bin", "var/lang/lib", "opt/bin", "opt/lib", "opt/extensions", "tmp"} {
		if err := t.AddDir(d); err != nil {
			return "", false, err
		}
	}
	if err := t.AddFile("usr/local/bin/aws-lambda-rie", bin, 0o755); err != nil {
		return "", false, err
	}
	if err := t.AddSymlink("lambda-entrypoint.sh", "/usr/local/bin/aws-lambda-rie"); err != nil {
		return "", false, err
	}
	mib, err := b.saveLayer(path, t)
	if err != nil {
		return "", false, err
	}
	b.logf("entrypoint layer: %.1f MiB compressed", mib)
	return path, false, nil
}
