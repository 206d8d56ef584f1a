package recipe

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lambdabox/lambdabox/internal/debian"
)

//go:embed recipes/*.toml
var builtin embed.FS

// ErrUnknownRuntime is returned by Load for a runtime with no recipe.
var ErrUnknownRuntime = errors.New("unknown runtime")

// Recipe describes one base image.
type Recipe struct {
	// Name is the runtime's name, e.g. "python3.11"; it must match the file name.
	Name string `toml:"name"`
	// Description is one line shown by `lambdabox base ls`.
	Description string `toml:"description"`
	// Suite is the Debian release every package comes from ("bookworm",
	// "trixie", "forky"), with its -updates and -security archives.
	// Required: a recipe is built from one suite, which its lock records.
	Suite string `toml:"suite"`
	// Language is the language and version the image runs, e.g.
	// "Python 3.13"; shown by `lambdabox base ls`.
	Language string `toml:"language"`
	// Lambda is the AWS Lambda runtime the image stands for.
	Lambda Lambda `toml:"lambda"`
	// Env holds environment variables added to the standard ENV block.
	Env map[string]string `toml:"env"`
	// Inputs are files the user must provide with --input NAME=PATH.
	Inputs []Input `toml:"inputs"`
	// OS is the operating system layer: changes least often.
	OS Layer `toml:"os"`
	// Runtime is the language runtime layer (/var/lang).
	Runtime Layer `toml:"runtime"`
	// RIC is the Runtime Interface Client and /var/runtime/bootstrap.
	RIC Layer `toml:"ric"`
}

// Lambda names the AWS Lambda runtime an image stands for.
type Lambda struct {
	// Runtime is Lambda's runtime identifier, e.g. "python3.13",
	// "nodejs24.x", "provided.al2023".
	Runtime string `toml:"runtime"`
	// Deprecated is the date (YYYY-MM-DD) AWS has published for the
	// identifier's deprecation, if any.
	Deprecated string `toml:"deprecated"`
	// Successor is the recipe to move to once Deprecated has passed.
	Successor string `toml:"successor"`
}

// DeprecatedAt is the deprecation date, and whether there is one.
func (l Lambda) DeprecatedAt() (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, l.Deprecated)
	return t, err == nil
}

// Input is a file or directory the user provides, for what no reachable
// registry serves (the .NET runtime, Amazon.Lambda.RuntimeSupport).
type Input struct {
	// Name is the key given on the command line (--input NAME=PATH).
	Name string `toml:"name"`
	// Help says what the input is and where to get it.
	Help string `toml:"help"`
	// Version, when set, is a directory inside the input whose only
	// subdirectory is named after the input's version (the .NET runtime's
	// shared/Microsoft.NETCore.App/8.0.x); the image's environment then gets
	// <NAME>_VERSION, e.g. DOTNET_VERSION=8.0.x.
	Version string `toml:"version"`
}

// Layer is what one image layer contains. The build applies the fields in
// the order they are declared here.
type Layer struct {
	// Suite, when set, must be the recipe's: a recipe is built from one
	// Debian release (a layer of another would need a second lock and
	// libraries of two releases in one image).
	Suite string `toml:"suite" json:",omitempty"`
	// Packages are Debian packages, installed with their dependencies.
	Packages []string `toml:"packages"`
	// Exclude are Debian packages treated as already present: they and the
	// dependencies only they need are left out (maintainer-script tools such
	// as dpkg, debconf and perl-base, never run in a Lambda image).
	Exclude []string `toml:"exclude"`
	// Pip installs Python distributions as binary wheels into a directory.
	Pip *Pip `toml:"pip"`
	// Npm installs npm packages into a directory.
	Npm *Npm `toml:"npm"`
	// Maven copies Maven artifacts and their runtime dependencies into a directory.
	Maven *Maven `toml:"maven"`
	// Jlink links a trimmed Java runtime from a JDK's jmods into a directory.
	Jlink *Jlink `toml:"jlink" json:",omitempty"`
	// Bytecode compiles the layer's Python sources with the image's Python.
	Bytecode *Bytecode `toml:"python_bytecode" json:",omitempty"`
	// Unpack extracts a user-provided tarball or copies a user-provided
	// directory into the image.
	Unpack []Unpack `toml:"unpack"`
	// Files are written verbatim.
	Files []File `toml:"files"`
	// Symlinks maps a link's path to its target; "{arch}" in either
	// becomes the image's Debian architecture (amd64, arm64).
	Symlinks map[string]string `toml:"symlinks"`
	// Remove lists paths (and everything below them) dropped from the layer.
	Remove []string `toml:"remove"`
}

// Pip installs wheels for one CPython version and platform with
// pip install --target.
type Pip struct {
	// Packages are requirement specifiers, e.g. "awslambdaric".
	Packages []string `toml:"packages"`
	// Target is the directory in the image, e.g. "/var/runtime".
	Target string `toml:"target"`
	// Python is the CPython version the wheels are for, e.g. "3.11".
	Python string `toml:"python"`
}

// Npm installs npm packages into Target/node_modules.
type Npm struct {
	Packages []string `toml:"packages"`
	Target   string   `toml:"target"`
	// NodeHeaders is the Debian package with the image Node's headers, used
	// to build native addons against the image's Node.
	NodeHeaders string `toml:"node_headers"`
	// Build are Debian packages for a build root in which the packages'
	// install scripts run (chrooted), with the recipe's own packages and
	// NodeHeaders: compilers and tools for native addons. Nothing of the
	// build root but Target/node_modules goes into the image.
	Build []string `toml:"build"`
	// Keep, when set, names the packages of node_modules that go into the
	// image; the others were needed only to build them. (aws-lambda-ric
	// lists node-gyp and node-addon-api among its dependencies, though its
	// built addon needs neither.)
	Keep []string `toml:"keep" json:",omitempty"`
}

// Maven copies artifacts ("group:artifact:version") and their runtime
// dependencies into Target.
type Maven struct {
	Artifacts []string `toml:"artifacts"`
	Target    string   `toml:"target"`
	// PruneNative drops, from every jar, the native libraries (.so) built
	// for another platform than the image's: musl builds and other CPU
	// architectures (the Java RIC carries its JNI library for four).
	PruneNative bool `toml:"prune_native" json:",omitempty"`
}

// Jlink runs jlink from Debian's JDK, unpacked in a throwaway build root
// that never reaches the image, and puts the runtime it links in Target.
type Jlink struct {
	// Packages are the Debian packages unpacked in the build root, without
	// their dependencies (jlink runs with the host's C libraries): the
	// JDK with its jmods, e.g. openjdk-17-jdk-headless, and the JRE it
	// builds on.
	Packages []string `toml:"packages"`
	// JavaHome is the JDK's directory in the build root; "{arch}" becomes
	// the image's Debian architecture.
	JavaHome string `toml:"java_home"`
	// Modules are the root modules (--add-modules); jlink adds what they require.
	Modules []string `toml:"modules"`
	// Options are further jlink options, e.g. "--strip-debug".
	Options []string `toml:"options"`
	// Target is the runtime's directory in the image, e.g. "/var/lang".
	Target string `toml:"target"`
}

// Bytecode compiles the Python sources below Dirs to .pyc files in their
// __pycache__ directories, with the image's own Python (the layers below
// and this one), after everything else in the layer. The .pycs are
// unchecked-hash ones: reproducible, and imported without reading the
// sources' timestamps. A Lambda image is read-only, so Python could never
// write them at run time and would compile every module at each cold start.
type Bytecode struct {
	// Python is the interpreter in the image, e.g. "/usr/bin/python3.11".
	Python string `toml:"python"`
	// Dirs are the directories compiled, e.g. "/usr/lib/python3.11".
	Dirs []string `toml:"dirs"`
}

// Unpack puts a user-provided input into the image.
type Unpack struct {
	// Input names an entry of Recipe.Inputs.
	Input string `toml:"input"`
	// Target is the directory in the image.
	Target string `toml:"target"`
}

// File is a file written into the image.
type File struct {
	Path string `toml:"path"`
	// Content is the file's text; "{arch}" in it becomes the image's
	// Debian architecture (amd64, arm64), as it does in symlinks.
	Content string `toml:"content"`
	// Generate names a generator that computes the content from the layer
	// so far instead: "ca-bundle" concatenates /usr/share/ca-certificates,
	// as Debian's update-ca-certificates does; "java-cacerts" writes those
	// certificates as a Java trust store (JKS, password "changeit"), as
	// ca-certificates-java does.
	Generate string `toml:"generate"`
	// Mode is the file's permission bits as an octal string; default "0644".
	Mode string `toml:"mode"`
}

// Layers returns the recipe's layers with their names, in image order.
func (r *Recipe) Layers() []NamedLayer {
	return []NamedLayer{{"os", &r.OS}, {"runtime", &r.Runtime}, {"ric", &r.RIC}}
}

// Contents lists what the recipe puts in the image, layer by layer: Debian
// packages by name, then "pip:", "npm:", "maven:", "jlink:" and "input:"
// entries.
func (r *Recipe) Contents() []string {
	var out []string
	prefixed := func(p string, xs []string) {
		for _, x := range xs {
			out = append(out, p+x)
		}
	}
	for _, nl := range r.Layers() {
		l := nl.Layer
		out = append(out, l.Packages...)
		if l.Pip != nil {
			prefixed("pip:", l.Pip.Packages)
		}
		if l.Npm != nil {
			prefixed("npm:", l.Npm.Packages)
		}
		if l.Maven != nil {
			prefixed("maven:", l.Maven.Artifacts)
		}
		if l.Jlink != nil {
			out = append(out, "jlink:"+strings.Join(l.Jlink.Modules, ","))
		}
		for _, u := range l.Unpack {
			out = append(out, "input:"+u.Input)
		}
	}
	return out
}

// RICVersion is the version of the Runtime Interface Client the recipe
// pins in its ric layer ("awslambdaric==4.2.2", "aws-lambda-ric@4.0.2",
// "group:aws-lambda-java-runtime-interface-client:2.10.1"), or "" when it
// pins none.
func (r *Recipe) RICVersion() string {
	l := r.RIC
	if l.Pip != nil && len(l.Pip.Packages) > 0 {
		if _, v, ok := strings.Cut(l.Pip.Packages[0], "=="); ok {
			return v
		}
	}
	if l.Npm != nil && len(l.Npm.Packages) > 0 {
		if i := strings.LastIndex(l.Npm.Packages[0], "@"); i > 0 {
			return l.Npm.Packages[0][i+1:]
		}
	}
	if l.Maven != nil && len(l.Maven.Artifacts) > 0 {
		a := l.Maven.Artifacts[0]
		return a[strings.LastIndex(a, ":")+1:]
	}
	return ""
}

// NamedLayer is a layer and its name in the recipe.
type NamedLayer struct {
	Name  string
	Layer *Layer
}

// Parse reads a recipe from TOML. Unknown keys are errors, so a misspelt
// field never goes unnoticed.
func Parse(name string, data []byte) (*Recipe, error) {
	var r Recipe
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&r)
	if err != nil {
		return nil, fmt.Errorf("parsing recipe %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("parsing recipe %s: unknown keys %s", name, strings.Join(keys, ", "))
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", name, err)
	}
	return &r, nil
}

// Validate checks that the recipe is complete, names one known Debian
// suite and has absolute paths.
func (r *Recipe) Validate() error {
	if r.Name == "" {
		return errors.New("name is required")
	}
	if r.Suite == "" {
		return errors.New("suite is required (the Debian release: bookworm, trixie or forky)")
	}
	if _, err := debian.LookupSuite(r.Suite); err != nil {
		return fmt.Errorf("suite: %w", err)
	}
	if r.Lambda.Deprecated != "" {
		if _, ok := r.Lambda.DeprecatedAt(); !ok {
			return fmt.Errorf("lambda.deprecated %q: want a date, YYYY-MM-DD", r.Lambda.Deprecated)
		}
	}
	inputs := map[string]bool{}
	for _, in := range r.Inputs {
		if in.Name == "" || strings.ContainsAny(in.Name, " =") {
			return fmt.Errorf("input name %q: want a word", in.Name)
		}
		if in.Version != "" && (path.IsAbs(in.Version) || path.Clean(in.Version) != in.Version || strings.HasPrefix(in.Version, "..")) {
			return fmt.Errorf("input %s: version %q must be a clean relative path", in.Name, in.Version)
		}
		inputs[in.Name] = true
	}
	for _, nl := range r.Layers() {
		l := nl.Layer
		check := func(what, p string) error {
			if !path.IsAbs(p) || path.Clean(p) != p {
				return fmt.Errorf("%s: %s %q must be a clean absolute path", nl.Name, what, p)
			}
			return nil
		}
		if l.Suite != "" && l.Suite != r.Suite {
			return fmt.Errorf("%s: suite %q, but the recipe's is %q: a recipe is built from one Debian suite", nl.Name, l.Suite, r.Suite)
		}
		for _, p := range l.Packages {
			if name, suite, ok := strings.Cut(p, "/"); ok && name != "" && suite != "" && suite != r.Suite {
				return fmt.Errorf("%s: package %q is from suite %q, but the recipe's is %q: a recipe is built from one Debian suite", nl.Name, p, suite, r.Suite)
			}
			if p == "" || strings.ContainsAny(p, " =/") {
				return fmt.Errorf("%s: bad Debian package name %q", nl.Name, p)
			}
		}
		if l.Pip != nil {
			if len(l.Pip.Packages) == 0 || l.Pip.Python == "" {
				return fmt.Errorf("%s: pip needs packages and python", nl.Name)
			}
			if err := check("pip target", l.Pip.Target); err != nil {
				return err
			}
		}
		if l.Npm != nil {
			if len(l.Npm.Packages) == 0 {
				return fmt.Errorf("%s: npm needs packages", nl.Name)
			}
			if err := check("npm target", l.Npm.Target); err != nil {
				return err
			}
		}
		if l.Maven != nil {
			if len(l.Maven.Artifacts) == 0 {
				return fmt.Errorf("%s: maven needs artifacts", nl.Name)
			}
			for _, a := range l.Maven.Artifacts {
				if strings.Count(a, ":") != 2 {
					return fmt.Errorf("%s: maven artifact %q: want group:artifact:version", nl.Name, a)
				}
			}
			if err := check("maven target", l.Maven.Target); err != nil {
				return err
			}
		}
		if bc := l.Bytecode; bc != nil {
			if len(bc.Dirs) == 0 {
				return fmt.Errorf("%s: python_bytecode needs dirs", nl.Name)
			}
			for _, p := range append([]string{bc.Python}, bc.Dirs...) {
				if err := check("python_bytecode path", p); err != nil {
					return err
				}
			}
		}
		if j := l.Jlink; j != nil {
			if len(j.Packages) == 0 || len(j.Modules) == 0 || j.JavaHome == "" {
				return fmt.Errorf("%s: jlink needs packages, java_home and modules", nl.Name)
			}
			for _, p := range j.Packages {
				if p == "" || strings.ContainsAny(p, " =/") {
					return fmt.Errorf("%s: jlink: bad Debian package name %q", nl.Name, p)
				}
			}
			for _, o := range j.Options {
				if o == "--output" || o == "--module-path" || o == "-p" || strings.HasPrefix(o, "--output=") || strings.HasPrefix(o, "--module-path=") {
					return fmt.Errorf("%s: jlink option %q is set by lambdabox", nl.Name, o)
				}
			}
			if err := check("jlink java_home", strings.ReplaceAll(j.JavaHome, "{arch}", "amd64")); err != nil {
				return err
			}
			if err := check("jlink target", j.Target); err != nil {
				return err
			}
		}
		for _, u := range l.Unpack {
			if !inputs[u.Input] {
				return fmt.Errorf("%s: unpack names undeclared input %q", nl.Name, u.Input)
			}
			if err := check("unpack target", u.Target); err != nil {
				return err
			}
		}
		for _, f := range l.Files {
			if err := check("file", f.Path); err != nil {
				return err
			}
			if f.Generate != "" && (f.Content != "" || (f.Generate != "ca-bundle" && f.Generate != "java-cacerts")) {
				return fmt.Errorf("%s: file %s: generate %q: want \"ca-bundle\" or \"java-cacerts\" and no content", nl.Name, f.Path, f.Generate)
			}
			if _, err := f.Perm(); err != nil {
				return fmt.Errorf("%s: file %s: %w", nl.Name, f.Path, err)
			}
		}
		for p, target := range l.Symlinks {
			if err := check("symlink", p); err != nil {
				return err
			}
			if target == "" {
				return fmt.Errorf("%s: symlink %s has no target", nl.Name, p)
			}
		}
		for _, p := range l.Remove {
			if err := check("remove", p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Perm returns the file's permission bits.
func (f File) Perm() (fs.FileMode, error) {
	if f.Mode == "" {
		return 0o644, nil
	}
	var m uint32
	if _, err := fmt.Sscanf(f.Mode, "%o", &m); err != nil || m > 0o777 {
		return 0, fmt.Errorf("mode %q: want octal permission bits such as \"0755\"", f.Mode)
	}
	return fs.FileMode(m), nil
}

// Load returns the built-in recipe for a runtime.
func Load(runtime string) (*Recipe, error) {
	data, err := builtin.ReadFile("recipes/" + runtime + ".toml")
	if err != nil || strings.ContainsAny(runtime, "/\\") {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownRuntime, runtime, strings.Join(Names(), ", "))
	}
	r, err := Parse(runtime+".toml", data)
	if err != nil {
		return nil, err
	}
	if r.Name != runtime {
		return nil, fmt.Errorf("recipe %s.toml: name is %q", runtime, r.Name)
	}
	return r, nil
}

// Source returns the TOML text of a built-in recipe.
func Source(runtime string) ([]byte, error) {
	data, err := builtin.ReadFile("recipes/" + runtime + ".toml")
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownRuntime, runtime)
	}
	return data, nil
}

// Names lists the built-in recipes, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(builtin, "recipes")
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
