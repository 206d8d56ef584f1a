package build

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
)

// amazonToDebian maps Amazon Linux package names to Debian bookworm's
// where they differ; other names are looked up as they are.
var amazonToDebian = map[string]string{
	"which": "debianutils", "shadow-utils": "passwd", "procps-ng": "procps", "ImageMagick": "imagemagick",
	"openssl-libs": "libssl3", "openssl-devel": "libssl-dev", "libffi-devel": "libffi-dev", "zlib": "zlib1g",
	"zlib-devel": "zlib1g-dev", "libjpeg-turbo": "libjpeg62-turbo", "libjpeg-turbo-devel": "libjpeg62-turbo-dev",
	"libpng": "libpng16-16", "libpng-devel": "libpng-dev", "libxslt": "libxslt1.1", "mesa-libGL": "libgl1",
	"freetype": "libfreetype6", "sqlite": "sqlite3", "sqlite-devel": "libsqlite3-dev", "postgresql-libs": "libpq5",
	"postgresql-devel": "libpq-dev", "mariadb-connector-c": "libmariadb3", "libicu": "libicu72", "gcc-c++": "g++",
	"python3-devel": "python3-dev", "libxml2-devel": "libxml2-dev", "nss": "libnss3", "atk": "libatk1.0-0",
	"cups-libs": "libcups2", "gtk3": "libgtk-3-0", "alsa-lib": "libasound2", "libXcomposite": "libxcomposite1",
	"libXcursor": "libxcursor1", "libXdamage": "libxdamage1", "libXext": "libxext6", "libXi": "libxi6",
	"libXrandr": "libxrandr2", "libXScrnSaver": "libxss1", "libXtst": "libxtst6", "pango": "libpango-1.0-0",
	"xz": "xz-utils", "bzip2-libs": "libbz2-1.0", "glibc-langpack-en": "locales", "git-core": "git",
}

// rpmBase are packages every lambdabox base has: Resolve counts them as
// installed, so that a dnf install adds only what is new.
var rpmBase = []string{"libc6", "libgcc-s1", "libssl3", "ca-certificates", "tzdata", "debconf", "dpkg", "perl-base", "tar"}

// rpmPackages returns the packages a dnf/yum/microdnf line installs; clean
// and makecache lines install nothing.
func rpmPackages(words []string) ([]string, error) {
	if len(words) < 2 {
		return nil, fmt.Errorf("want %s install PACKAGE…", words[0])
	}
	switch words[1] {
	case "clean", "makecache":
		return nil, nil
	case "install":
	default:
		return nil, fmt.Errorf("%s %s: %w", words[0], words[1], ErrNeedsEngine)
	}
	var pkgs []string
	for _, w := range words[2:] {
		if strings.HasPrefix(w, "-") {
			continue // -y, --nodocs, --setopt=…, --allowerasing
		}
		n := w
		if d, ok := amazonToDebian[w]; ok {
			n = d
		}
		pkgs = append(pkgs, n)
	}
	return pkgs, nil
}

// aptFor returns apt for the build's architecture, with its state in the
// cache directory shared with the base builder.
func (b *builder) aptFor() (*debian.Apt, error) {
	return debian.New(debian.Config{Dir: filepath.Join(b.cfg.CacheDir, "apt-"+b.suite.Name+"-"+b.cfg.Arch), Suite: b.suite.Name, Arch: b.cfg.Arch})
}

// debInstall resolves pkgs (Debian names) against the base's Debian suite and
// returns them unpacked as a tree, documentation left out.
func (b *builder) debInstall(ctx context.Context, pkgs []string) (*image.Tree, []Package, error) {
	a, err := b.aptFor()
	if err != nil {
		return nil, nil, err
	}
	resolved, err := a.Resolve(ctx, pkgs, rpmBase)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (Amazon Linux names are mapped to Debian's for a few packages; use Debian's name or --engine)", err)
	}
	t := image.NewTree()
	var out []Package
	for _, p := range resolved {
		file, err := a.Fetch(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		if err := debian.Unpack(ctx, file, t, b.suite.MergedUsr); err != nil {
			return nil, nil, err
		}
		out = append(out, Package{Type: "deb", Name: p.Name, Version: p.Version})
	}
	for _, p := range t.Paths() {
		if strings.HasPrefix(p, "usr/share/doc/") || strings.HasPrefix(p, "usr/share/man/") || strings.HasPrefix(p, "usr/share/info/") || strings.HasPrefix(p, "usr/share/locale/") || strings.HasPrefix(p, "usr/share/lintian/") {
			if err := t.Remove(p); err != nil {
				return nil, nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return t, out, nil
}

// isRPMTool reports whether a command is a dnf, yum or microdnf.
func isRPMTool(cmd string) bool {
	switch path.Base(cmd) {
	case "dnf", "yum", "microdnf":
		return true
	}
	return false
}
