package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// Change is one package whose pin an update changes.
type Change struct {
	// Layer is the image layer the package is in: os, runtime or ric.
	Layer string
	// Kind is where the package comes from: "deb" (Debian, in the image),
	// "jlink" or "build" (Debian, in a build root whose output is in the
	// image), "pip", "npm" or "maven".
	Kind string
	// Name is the package's name.
	Name string
	// Old and New are its versions; Old is "" for a package the update
	// adds and New "" for one it drops.
	Old, New string
	// Security is true when New comes from the suite's security archive.
	Security bool
}

// String is "layer kind name old → new".
func (c Change) String() string {
	old, new := c.Old, c.New
	if old == "" {
		old = "(none)"
	}
	if new == "" {
		new = "(removed)"
	}
	s := fmt.Sprintf("%-8s %-6s %s %s → %s", c.Layer, c.Kind, c.Name, old, new)
	if c.Security {
		s += " (security)"
	}
	return s
}

// UpdateResult is what Update found.
type UpdateResult struct {
	// Lock is the refreshed lock. Without Check it is written to
	// Config.LockFile when it differs from the old one.
	Lock *Lock
	// Changes lists the packages whose pins changed, by layer and name.
	Changes []Change
	// Layers names the layers whose pins changed: the ones the next build
	// rebuilds.
	Layers []string
}

// Update resolves every layer of cfg.Recipe again, from freshly fetched
// package lists of its suite and the suite's -updates and -security
// archives, and from PyPI, npm and Maven Central, and compares the result
// with the lock file. With check, nothing is written or downloaded: only
// the changes are returned. Without it, the new lock is written and the
// .debs it adds are fetched; a Build from it then rebuilds only the layers
// whose pins changed (the others' cache keys are unchanged).
func Update(ctx context.Context, cfg Config, check bool) (*UpdateResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Arch == "" {
		cfg.Arch = "amd64"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	b := &builder{cfg: cfg, noDownload: check, known: map[string]string{}}
	old, err := ReadLock(cfg.LockFile)
	if err != nil {
		return nil, err
	}
	if err := b.checkLock(old); err != nil {
		return nil, err
	}
	if old != nil {
		for _, ll := range old.Layers {
			for _, list := range [][]debian.Package{ll.Debs, ll.Jlink, ll.BuildDebs} {
				for _, p := range list {
					if p.SHA256 != "" {
						b.known[p.File()] = p.SHA256
					}
				}
			}
		}
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("preparing cache: %w", err)
	}
	a, err := b.debian()
	if err != nil {
		return nil, err
	}
	b.logf("refreshing the package lists of %s, %s-updates and %s-security", cfg.Recipe.Suite, cfg.Recipe.Suite, cfg.Recipe.Suite)
	if old != nil && b.sameInputs(old) {
		current, err := b.upToDate(ctx, a, old)
		if err != nil {
			return nil, err
		}
		if current {
			return &UpdateResult{Lock: old}, nil
		}
	}
	if !b.refreshed {
		if err := a.Update(ctx, true); err != nil {
			return nil, err
		}
	}
	lock, changed, err := b.resolveLock(ctx, old, true)
	if err != nil {
		return nil, err
	}
	res := &UpdateResult{Lock: lock, Changes: diffLocks(old, lock)}
	seen := map[string]bool{}
	for _, c := range res.Changes {
		if !seen[c.Layer] {
			seen[c.Layer] = true
			res.Layers = append(res.Layers, c.Layer)
		}
	}
	if !check && changed {
		if err := lock.Write(cfg.LockFile); err != nil {
			return nil, err
		}
		b.logf("wrote lock file %s", cfg.LockFile)
	}
	return res, nil
}

// sameInputs reports whether every layer of old was resolved from the
// recipe as it is now.
func (b *builder) sameInputs(old *Lock) bool {
	for i, nl := range b.cfg.Recipe.Layers() {
		ll := old.Layers[nl.Name]
		if ll == nil || ll.Inputs != resolutionInputs(b.cfg.Recipe, i) {
			return false
		}
	}
	return true
}

// upToDate is the quick check of an unchanged recipe's lock, run while the
// package lists are refreshed: apt's
// candidate for every pinned Debian package is the pinned version (so its
// dependencies, and the whole resolution, are unchanged), and PyPI and npm
// resolve to the pinned versions. Maven artifacts are pinned by exact
// version with fixed dependencies, and kept. Any difference sends Update
// to the full resolution, which says what changed.
func (b *builder) upToDate(ctx context.Context, a *debian.Apt, old *Lock) (bool, error) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		differs bool
		first   error
	)
	report := func(same bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		differs = differs || !same
		if first == nil {
			first = err
		}
	}
	// One pip process per Python version resolves every layer's
	// requirements together (pip starts slowly): without conflicts between
	// them, its pins are the union of the layers'.
	pips := map[string]*recipe.Pip{}
	pinned := map[string][]string{}
	for _, nl := range b.cfg.Recipe.Layers() {
		l, ll := nl.Layer, old.Layers[nl.Name]
		if l.Pip == nil {
			continue
		}
		p := pips[l.Pip.Python]
		if p == nil {
			p = &recipe.Pip{Python: l.Pip.Python, Target: l.Pip.Target}
			pips[l.Pip.Python] = p
		}
		p.Packages = append(p.Packages, l.Pip.Packages...)
		pinned[l.Pip.Python] = append(pinned[l.Pip.Python], ll.Pip...)
	}
	for version, p := range pips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Most days every pin is still its project's latest release,
			// which PyPI's JSON API says in a fraction of pip's time.
			if latest, err := pipPinsLatest(ctx, http.DefaultClient, pypiJSON, p.Packages, pinned[version]); latest && err == nil {
				report(true, nil)
				return
			}
			pins, err := pipResolve(ctx, p, b.cfg.Arch, b.glibc())
			want := append([]string(nil), pinned[version]...)
			sort.Strings(want)
			report(err == nil && strings.Join(pins, " ") == strings.Join(want, " "), err)
		}()
	}
	for _, nl := range b.cfg.Recipe.Layers() {
		l, ll := nl.Layer, old.Layers[nl.Name]
		if l.Npm != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fresh := &LayerLock{}
				err := b.npmResolve(ctx, l.Npm, fresh)
				same := err == nil && strings.Join(fresh.Npm, " ") == strings.Join(ll.Npm, " ") &&
					string(fresh.NpmLock) == string(ll.NpmLock) && len(diffDebs("", "", ll.BuildDebs, fresh.BuildDebs)) == 0
				report(same, err)
			}()
		}
	}
	debs := map[string]string{}
	for _, ll := range old.Layers {
		for _, list := range [][]debian.Package{ll.Debs, ll.Jlink, ll.BuildDebs} {
			for _, p := range list {
				debs[p.Name] = p.Version
			}
		}
	}
	names := make([]string, 0, len(debs))
	for n := range debs {
		names = append(names, n)
	}
	sort.Strings(names)
	err := a.Update(ctx, true)
	b.refreshed = err == nil
	var cands map[string]string
	if err == nil {
		cands, err = a.Candidates(ctx, names)
	}
	if err == nil {
		for _, n := range names {
			if cands[n] != debs[n] {
				b.logf("%s: %s → %s", n, debs[n], cands[n])
				report(false, nil)
				break
			}
		}
	}
	report(true, err)
	wg.Wait()
	return !differs && first == nil, first
}

// ErrUpdatesAvailable is returned by `base update --check` when the lock
// is out of date.
var ErrUpdatesAvailable = errors.New("updates available")

// diffLocks lists the packages whose pins differ between old (nil for
// none) and new, layer by layer in image order.
func diffLocks(old, new *Lock) []Change {
	var out []Change
	for _, layer := range []string{"os", "runtime", "ric"} {
		var o, n *LayerLock
		if old != nil {
			o = old.Layers[layer]
		}
		if new != nil {
			n = new.Layers[layer]
		}
		if o == nil {
			o = &LayerLock{}
		}
		if n == nil {
			n = &LayerLock{}
		}
		out = append(out, diffDebs(layer, "deb", o.Debs, n.Debs)...)
		out = append(out, diffDebs(layer, "jlink", o.Jlink, n.Jlink)...)
		out = append(out, diffDebs(layer, "build", o.BuildDebs, n.BuildDebs)...)
		out = append(out, diffPins(layer, "pip", "==", o.Pip, n.Pip)...)
		out = append(out, diffPins(layer, "npm", "@", o.Npm, n.Npm)...)
		out = append(out, diffArtifacts(layer, o.Maven, n.Maven)...)
	}
	return out
}

func diffDebs(layer, kind string, old, new []debian.Package) []Change {
	o, n := map[string]debian.Package{}, map[string]debian.Package{}
	for _, p := range old {
		o[p.Name] = p
	}
	for _, p := range new {
		n[p.Name] = p
	}
	var out []Change
	for _, name := range unionKeys(o, n) {
		op, inOld := o[name]
		np, inNew := n[name]
		if inOld && inNew && op.Version == np.Version {
			continue
		}
		out = append(out, Change{Layer: layer, Kind: kind, Name: name, Old: op.Version, New: np.Version, Security: np.Security})
	}
	return out
}

// diffPins compares "name<sep>version" pins.
func diffPins(layer, kind, sep string, old, new []string) []Change {
	split := func(pins []string) map[string]string {
		m := map[string]string{}
		for _, p := range pins {
			i := strings.LastIndex(p, sep)
			if i <= 0 {
				m[p] = ""
				continue
			}
			m[p[:i]] = p[i+len(sep):]
		}
		return m
	}
	o, n := split(old), split(new)
	var out []Change
	for _, name := range unionKeys(o, n) {
		ov, inOld := o[name]
		nv, inNew := n[name]
		if inOld && inNew && ov == nv {
			continue
		}
		out = append(out, Change{Layer: layer, Kind: kind, Name: name, Old: ov, New: nv})
	}
	return out
}

// diffArtifacts compares jars by file name (which holds the version) and
// checksum.
func diffArtifacts(layer string, old, new []Artifact) []Change {
	o, n := map[string]string{}, map[string]string{}
	for _, a := range old {
		o[a.Name] = a.SHA256
	}
	for _, a := range new {
		n[a.Name] = a.SHA256
	}
	var out []Change
	for _, name := range unionKeys(o, n) {
		osum, inOld := o[name]
		nsum, inNew := n[name]
		switch {
		case inOld && inNew && osum == nsum:
			continue
		case inOld && inNew:
			out = append(out, Change{Layer: layer, Kind: "maven", Name: name, Old: "sha256:" + short(osum), New: "sha256:" + short(nsum)})
		default:
			out = append(out, Change{Layer: layer, Kind: "maven", Name: name, Old: map[bool]string{true: "present"}[inOld], New: map[bool]string{true: "present"}[inNew]})
		}
	}
	return out
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

func unionKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// DefaultLockFile is the lock file `base build` and `base update` use when
// none is given: lambdabox-<runtime>-<arch>.lock.json in dir.
func DefaultLockFile(dir, runtime, arch string) string {
	return filepath.Join(dir, fmt.Sprintf("lambdabox-%s-%s.lock.json", runtime, arch))
}
