// Package debian resolves, fetches and unpacks Debian packages with
// Debian's own tools: apt-get and apt-cache with a private state directory
// (the host's package database is never read or written) and dpkg-deb.
// Maintainer scripts are never run.
package debian

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPackageNotFound is returned for a package name or pinned version the
// archive does not have.
var ErrPackageNotFound = errors.New("debian package not found")

// ErrUnknownSuite is returned for a Debian release lambdabox does not build from.
var ErrUnknownSuite = errors.New("unknown Debian suite")

// Suite is a Debian release lambdabox builds images from.
type Suite struct {
	// Name is the release's code name, e.g. "trixie".
	Name string
	// Version is its number, e.g. "13".
	Version string
	// Testing is true for Debian testing: packages change daily and
	// security support is best effort.
	Testing bool
	// Glibc is the C library version (major.minor): binary wheels for the
	// suite may need at most this manylinux tag.
	Glibc string
	// MergedUsr is true when /bin, /lib, /lib64 and /sbin are links into
	// /usr (base-files ships them; packages install into /usr only).
	MergedUsr bool
}

// suites are the releases the archive serves, oldest first.
var suites = []Suite{
	{Name: "bookworm", Version: "12", Glibc: "2.36"},
	{Name: "trixie", Version: "13", Glibc: "2.41", MergedUsr: true},
	{Name: "forky", Version: "14", Testing: true, Glibc: "2.41", MergedUsr: true},
}

// Suites lists the releases lambdabox builds from, oldest first.
func Suites() []Suite { return append([]Suite(nil), suites...) }

// LookupSuite returns the release named name.
func LookupSuite(name string) (Suite, error) {
	var names []string
	for _, s := range suites {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Suite{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownSuite, name, strings.Join(names, ", "))
}

// Config says which archive to use and where apt keeps its state.
type Config struct {
	// Dir holds apt's private state, lists and downloaded packages. Required.
	Dir string
	// Suite is the Debian release; default "bookworm". Its -updates and
	// -security suites are used too.
	Suite string
	// Mirror is the Debian archive; default http://deb.debian.org/debian.
	Mirror string
	// SecurityMirror is the security archive; default http://deb.debian.org/debian-security.
	SecurityMirror string
	// Arch is the Debian architecture; default amd64.
	Arch string
	// Keyring verifies the archive; default /usr/share/keyrings/debian-archive-keyring.gpg.
	Keyring string
	// MaxListAge is how old the package lists may be before Resolve
	// refreshes them; default 6h.
	MaxListAge time.Duration
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("debian: Dir is required")
	}
	if c.Suite != "" {
		if _, err := LookupSuite(c.Suite); err != nil {
			return fmt.Errorf("debian: %w", err)
		}
	}
	switch c.Arch {
	case "", "amd64", "arm64":
	default:
		return fmt.Errorf("debian: architecture %q: want amd64 or arm64", c.Arch)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Suite == "" {
		c.Suite = "bookworm"
	}
	if c.Mirror == "" {
		c.Mirror = "http://deb.debian.org/debian"
	}
	if c.SecurityMirror == "" {
		c.SecurityMirror = "http://deb.debian.org/debian-security"
	}
	if c.Arch == "" {
		c.Arch = "amd64"
	}
	if c.Keyring == "" {
		c.Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	}
	if c.MaxListAge == 0 {
		c.MaxListAge = 6 * time.Hour
	}
	return c
}

// Package is one resolved binary package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	// SHA256 is the .deb's checksum, recorded in the lock file.
	SHA256 string `json:"sha256,omitempty"`
	// Security is true when the version comes from the suite's security
	// archive (DSA/DLA fixes not yet in a point release).
	Security bool `json:"security,omitempty"`
}

// File is the package's .deb file name.
func (p Package) File() string {
	v := strings.ReplaceAll(p.Version, ":", "%3a")
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, v, p.Arch)
}

// Apt runs apt against a private state directory.
type Apt struct {
	cfg      Config
	mu       sync.Mutex
	updated  bool
	statusID int
}

// New prepares the private apt directory.
func New(cfg Config) (*Apt, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	for _, d := range []string{"lists/partial", "archives/partial", "etc/apt.conf.d", "etc/preferences.d", "debs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("preparing apt state: %w", err)
		}
	}
	sources := fmt.Sprintf("deb [signed-by=%[1]s] %[2]s %[3]s main\ndeb [signed-by=%[1]s] %[2]s %[3]s-updates main\ndeb [signed-by=%[1]s] %[4]s %[3]s-security main\n",
		cfg.Keyring, cfg.Mirror, cfg.Suite, cfg.SecurityMirror)
	if err := os.WriteFile(filepath.Join(dir, "etc/sources.list"), []byte(sources), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), nil, 0o644); err != nil {
		return nil, err
	}
	return &Apt{cfg: cfg}, nil
}

func (a *Apt) opts(status string) []string {
	d := a.cfg.Dir
	if status == "" {
		status = filepath.Join(d, "status")
	}
	return []string{
		"-o", "Dir::Etc=" + filepath.Join(d, "etc"),
		"-o", "Dir::Etc::SourceList=" + filepath.Join(d, "etc/sources.list"),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State=" + d,
		"-o", "Dir::State::Lists=" + filepath.Join(d, "lists"),
		"-o", "Dir::State::status=" + status,
		"-o", "Dir::Cache=" + d,
		"-o", "Dir::Cache::Archives=" + filepath.Join(d, "archives"),
		// Named explicitly, apt keeps its parsed package lists between
		// runs (about 1 s of CPU each time otherwise).
		"-o", "Dir::Cache::pkgcache=" + filepath.Join(d, "pkgcache.bin"),
		"-o", "Dir::Cache::srcpkgcache=" + filepath.Join(d, "srcpkgcache.bin"),
		"-o", "APT::Architecture=" + a.cfg.Arch,
		"-o", "APT::Architectures=" + a.cfg.Arch,
		"-o", "Debug::NoLocking=1",
		"-o", "Acquire::Languages=none",
		"-o", "APT::Sandbox::User=root",
	}
}

func (a *Apt) run(ctx context.Context, dir, status, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.opts(status), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if m := notFound.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%w: %s in %s", ErrPackageNotFound, m[1], a.cfg.Suite)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", tool, args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

var notFound = regexp.MustCompile(`(?:Unable to locate package|Version '[^']*' for '[^']*' was not found|Package '?)\s*([^\s']+)`)

// Update refreshes the package lists when they are older than MaxListAge
// (or when force is set).
func (a *Apt) Update(ctx context.Context, force bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.updated && !force {
		return nil
	}
	// Builds in other processes share the lists: one apt-get update at a time.
	unlock, err := lockFile(filepath.Join(a.cfg.Dir, "lists", ".lambdabox-lock"))
	if err != nil {
		return err
	}
	defer unlock()
	stamp := filepath.Join(a.cfg.Dir, "lists", ".lambdabox-updated")
	if fi, err := os.Stat(stamp); err == nil && !force && time.Since(fi.ModTime()) < a.cfg.MaxListAge {
		a.updated = true
		return nil
	}
	if _, err := os.Stat(stamp); err == nil && a.releasesUnchanged(ctx) {
		// The archive still signs the lists apt has: nothing to fetch, and
		// apt's parsed cache stays valid.
		a.updated = true
		now := time.Now()
		return os.Chtimes(stamp, now, now)
	}
	if _, err := a.run(ctx, a.cfg.Dir, "", "apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("updating package lists: %w", err)
	}
	a.updated = true
	return os.WriteFile(stamp, nil, 0o644)
}

// releases are the InRelease files of the suite, its -updates and its
// -security archives: their URLs and the files apt keeps them in.
func (a *Apt) releases() [][2]string {
	var out [][2]string
	for _, r := range [][2]string{{a.cfg.Mirror, a.cfg.Suite}, {a.cfg.Mirror, a.cfg.Suite + "-updates"}, {a.cfg.SecurityMirror, a.cfg.Suite + "-security"}} {
		url := strings.TrimSuffix(r[0], "/") + "/dists/" + r[1] + "/InRelease"
		// apt's URItoFileName: no scheme, "/" as "_".
		name := strings.ReplaceAll(url[strings.Index(url, "://")+3:], "/", "_")
		out = append(out, [2]string{url, filepath.Join(a.cfg.Dir, "lists", name)})
	}
	return out
}

// releasesUnchanged fetches the archives' InRelease files and reports
// whether each is byte for byte the one apt verified and keeps: then every
// list they sign is unchanged too. Any error means "fetch them with apt".
func (a *Apt) releasesUnchanged(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rels := a.releases()
	same := make(chan bool, len(rels))
	for _, r := range rels {
		go func() {
			local, err := os.ReadFile(r[1])
			if err != nil {
				same <- false
				return
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r[0], nil)
			if err != nil {
				same <- false
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				same <- false
				return
			}
			defer resp.Body.Close()
			remote, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(local))+1))
			same <- err == nil && resp.StatusCode == http.StatusOK && bytes.Equal(remote, local)
		}()
	}
	all := true
	for range rels {
		all = <-same && all
	}
	return all
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking apt state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking apt state: %w", err)
	}
	return func() { f.Close() }, nil
}

// Versions lists the versions of a package the suite, its -updates and
// its -security archives offer, newest first.
func (a *Apt) Versions(ctx context.Context, name string) ([]string, error) {
	if err := a.Update(ctx, false); err != nil {
		return nil, err
	}
	out, err := a.run(ctx, a.cfg.Dir, "", "apt-cache", "madison", name)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", name, err)
	}
	var vs []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 3 || strings.TrimSpace(f[0]) != name {
			continue
		}
		v := strings.TrimSpace(f[1])
		if !seen[v] {
			seen[v] = true
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %s in %s", ErrPackageNotFound, name, a.cfg.Suite)
	}
	return vs, nil
}

// Candidates returns the version apt would install now of each named
// package (the newest in the suite, -updates and -security), with one
// apt-cache call; names apt does not know are missing from the map.
func (a *Apt) Candidates(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	if err := a.Update(ctx, false); err != nil {
		return nil, err
	}
	data, err := a.run(ctx, a.cfg.Dir, "", "apt-cache", append([]string{"policy"}, names...)...)
	if err != nil {
		return nil, fmt.Errorf("candidate versions: %w", err)
	}
	name := ""
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			name = strings.TrimSuffix(line, ":")
			name, _, _ = strings.Cut(name, ":") // "libc6:amd64"
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && name != "" && v != "(none)" {
			out[name] = v
		}
	}
	return out, nil
}

// Suite is the release the apt state reads.
func (a *Apt) Suite() string { return a.cfg.Suite }

// Resolve returns the packages that installing include pulls in, without
// recommends, sorted by name. Packages in exclude count as installed
// already: they and the dependencies only they need are left out.
func (a *Apt) Resolve(ctx context.Context, include, exclude []string) ([]Package, error) {
	if len(include) == 0 {
		return nil, nil
	}
	if err := a.Update(ctx, false); err != nil {
		return nil, err
	}
	status := ""
	if len(exclude) > 0 {
		var err error
		if status, err = a.fakeStatus(ctx, exclude); err != nil {
			return nil, err
		}
		defer os.Remove(status)
	}
	args := append([]string{"install", "-s", "-q", "--no-install-recommends"}, include...)
	out, err := a.run(ctx, a.cfg.Dir, status, "apt-get", args...)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", strings.Join(include, " "), err)
	}
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := instLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pkgs = append(pkgs, Package{Name: m[1], Version: m[2], Arch: m[4], Security: strings.Contains(m[3], "Debian-Security:")})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])", or with
// several origins: "(1.5.7+dfsg-1+deb13u1 Debian-Security:13/stable-security [amd64])".
var instLine = regexp.MustCompile(`^Inst (\S+) (?:\[\S+\] )?\((\S+) (.*)\[(\S+)\]\)`)

// fakeStatus writes a dpkg status file that lists the excluded packages as
// installed, at their candidate versions.
func (a *Apt) fakeStatus(ctx context.Context, exclude []string) (string, error) {
	args := append([]string{"show", "--no-all-versions"}, exclude...)
	out, err := a.run(ctx, a.cfg.Dir, "", "apt-cache", args...)
	if err != nil {
		return "", fmt.Errorf("looking up excluded packages: %w", err)
	}
	var buf bytes.Buffer
	// Only the fields that satisfy dependencies: an excluded package's own
	// dependencies must not count as broken.
	keep := map[string]bool{"Package": true, "Version": true, "Architecture": true, "Provides": true, "Multi-Arch": true}
	for _, stanza := range bytes.Split(bytes.TrimSpace(out), []byte("\n\n")) {
		for _, line := range strings.Split(string(stanza), "\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && keep[k] {
				buf.WriteString(line + "\n")
			}
		}
		buf.WriteString("Status: install ok installed\n\n")
	}
	a.mu.Lock()
	a.statusID++
	name := filepath.Join(a.cfg.Dir, fmt.Sprintf("status.%d.%d", os.Getpid(), a.statusID))
	a.mu.Unlock()
	return name, os.WriteFile(name, buf.Bytes(), 0o644)
}

// Fetch returns the path of the package's .deb in the cache, downloading
// it with apt-get download when missing. A pinned SHA256 is verified.
func (a *Apt) Fetch(ctx context.Context, p Package) (string, error) {
	path := filepath.Join(a.cfg.Dir, "debs", p.File())
	if _, err := os.Stat(path); err != nil {
		if err := a.Update(ctx, false); err != nil {
			return "", err
		}
		tmp, err := os.MkdirTemp(filepath.Join(a.cfg.Dir, "debs"), ".dl-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		if _, err := a.run(ctx, tmp, "", "apt-get", "download", "-q", p.Name+":"+p.Arch+"="+p.Version); err != nil {
			return "", fmt.Errorf("downloading %s %s: %w", p.Name, p.Version, err)
		}
		ents, err := os.ReadDir(tmp)
		if err != nil || len(ents) != 1 {
			return "", fmt.Errorf("downloading %s %s: apt-get download left %d files", p.Name, p.Version, len(ents))
		}
		if err := os.Rename(filepath.Join(tmp, ents[0].Name()), path); err != nil {
			return "", err
		}
	}
	if p.SHA256 != "" {
		sum, err := fileSHA256(path)
		if err != nil {
			return "", err
		}
		if sum != p.SHA256 {
			os.Remove(path)
			return "", fmt.Errorf("%s: sha256 %s, lock file says %s", p.File(), sum, p.SHA256)
		}
	}
	return path, nil
}

// Pin downloads p and returns it with its .deb's checksum, for a lock file.
func (a *Apt) Pin(ctx context.Context, p Package) (Package, error) {
	path, err := a.Fetch(ctx, p)
	if err != nil {
		return p, err
	}
	p.SHA256, err = fileSHA256(path)
	return p, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TarAdder takes a tar stream; *image.Tree implements it.
type TarAdder interface {
	AddTar(r io.Reader) error
}

// MergedDirs are the top-level directories a merged-/usr system links into
// /usr, and the links' targets.
var MergedDirs = [][2]string{{"bin", "usr/bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}, {"sbin", "usr/sbin"}}

// UsrMerged is the path p (relative to the root, no leading slash) has on
// a merged-/usr system: "bin/sh" is "usr/bin/sh".
func UsrMerged(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for _, d := range MergedDirs {
		if p == d[0] {
			return d[1]
		}
		if rest, ok := strings.CutPrefix(p, d[0]+"/"); ok {
			return d[1] + "/" + rest
		}
	}
	return p
}

// Unpack adds the files of a .deb to t, read with dpkg-deb --fsys-tarfile.
// With mergedUsr, files a package still ships under /bin, /lib, /lib64 or
// /sbin go to their /usr paths, as dpkg puts them through the links.
func Unpack(ctx context.Context, deb string, t TarAdder, mergedUsr bool) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	var src io.Reader = out
	if mergedUsr {
		src = usrMergedTar(out)
	}
	addErr := t.AddTar(src)
	_, _ = io.Copy(io.Discard, src)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", filepath.Base(deb), err, strings.TrimSpace(stderr.String()))
	}
	if addErr != nil {
		return fmt.Errorf("unpacking %s: %w", filepath.Base(deb), addErr)
	}
	return nil
}

// usrMergedTar rewrites the names of a tar stream with UsrMerged.
func usrMergedTar(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tr := tar.NewReader(r)
		tw := tar.NewWriter(pw)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			dir := h.Typeflag == tar.TypeDir
			h.Name = UsrMerged(h.Name)
			if dir {
				h.Name += "/"
			}
			if h.Typeflag == tar.TypeLink {
				h.Linkname = UsrMerged(h.Linkname)
			}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// Extract unpacks the files of a .deb into the host directory dir with
// dpkg-deb -x, for a build root whose files never reach an image.
func Extract(ctx context.Context, deb, dir string) error {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, strings.TrimSpace(string(out)))
	}
	return nil
}
