package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/lambdabox/lambdabox/internal/image"
)

// ErrNeedsEngine is wrapped when a Dockerfile has an instruction build
// cannot run natively and no container engine may or can take it.
var ErrNeedsEngine = errors.New("needs a container engine")

// instruction is one parsed Dockerfile line.
type instruction struct {
	cmd   string   // lowercase: from, copy, run, …
	args  []string // unexpanded words (for RUN in shell form: one string)
	json  bool
	flags []string
	line  int
	text  string
}

// unsupported says why ins cannot be built natively, or "".
func unsupported(ins instruction, stages int) string {
	switch ins.cmd {
	case "from":
		if stages > 1 {
			return "multi-stage builds"
		}
	case "arg", "env", "workdir", "label", "cmd", "entrypoint", "expose", "maintainer":
	case "copy", "add":
		for _, f := range ins.flags {
			if strings.HasPrefix(f, "--from") {
				return "COPY --from"
			}
			if strings.HasPrefix(f, "--chmod") || strings.HasPrefix(f, "--exclude") || strings.HasPrefix(f, "--parents") {
				return strings.SplitN(f, "=", 2)[0]
			}
		}
		for _, a := range ins.args {
			if strings.Contains(a, "://") || strings.HasPrefix(a, "git@") {
				return "ADD of a URL"
			}
		}
	case "run":
		if ins.json || len(ins.flags) > 0 {
			return "RUN in exec form or with flags"
		}
		if kind, _ := runKind(ins.args[0]); kind == "" {
			return "this RUN line"
		}
	default:
		return strings.ToUpper(ins.cmd)
	}
	return ""
}

// shellOps are the shell operators that make a RUN line more than one
// known command.
var shellOps = regexp.MustCompile(`\|\||[;|<>` + "`" + `]|\$\(`)

// runKind tells what a RUN line is: "pip", "npm" or "" for anything else,
// and its commands split on &&.
func runKind(line string) (string, []string) {
	if shellOps.MatchString(line) {
		return "", nil
	}
	parts := strings.Split(line, "&&")
	kind := ""
	for _, p := range parts {
		f := strings.Fields(p)
		k := ""
		switch {
		case len(f) >= 2 && pipCmd.MatchString(path.Base(f[0])) && f[1] == "install" && hasTarget(f),
			len(f) >= 4 && strings.HasPrefix(path.Base(f[0]), "python") && f[1] == "-m" && f[2] == "pip" && f[3] == "install" && hasTarget(f):
			k = "pip"
		case len(f) >= 2 && path.Base(f[0]) == "npm" && (f[1] == "ci" || f[1] == "install" || f[1] == "i") && onlyFlags(f[2:]):
			k = "npm"
		case len(f) >= 2 && isRPMTool(f[0]) && (f[1] == "install" || f[1] == "clean" || f[1] == "makecache"):
			k = "rpm"
		case len(f) >= 3 && f[0] == "rm" && f[1] == "-rf" && allCaches(f[2:]):
			k = "rpm"
		default:
			return "", nil
		}
		if kind != "" && kind != k {
			return "", nil
		}
		kind = k
	}
	return kind, parts
}

var pipCmd = regexp.MustCompile(`^pip(3(\.\d+)?)?$`)

func hasTarget(words []string) bool {
	for _, w := range words {
		if w == "-t" || w == "--target" || strings.HasPrefix(w, "--target=") {
			return true
		}
	}
	return false
}

func onlyFlags(words []string) bool {
	for _, w := range words {
		if !strings.HasPrefix(w, "-") {
			return false
		}
	}
	return true
}

// allCaches reports whether every path is a package manager's cache, which
// the native build never writes.
func allCaches(paths []string) bool {
	for _, p := range paths {
		if !strings.HasPrefix(p, "/var/cache/yum") && !strings.HasPrefix(p, "/var/cache/dnf") {
			return false
		}
	}
	return true
}

// parseDockerfile reads file into instructions.
func parseDockerfile(file string) ([]instruction, rune, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, err
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	var out []instruction
	for _, n := range res.AST.Children {
		ins := instruction{cmd: strings.ToLower(n.Value), flags: n.Flags, line: n.StartLine, text: n.Original, json: n.Attributes["json"]}
		for a := n.Next; a != nil; a = a.Next {
			ins.args = append(ins.args, a.Value)
		}
		if len(n.Heredocs) > 0 {
			ins.cmd = "heredoc " + ins.cmd
		}
		// ENV and LABEL come as (key, value, separator) triples.
		min := map[string]int{"from": 1, "copy": 2, "add": 2, "workdir": 1, "run": 1, "arg": 1, "env": 3, "label": 3, "user": 1}[ins.cmd]
		if len(ins.args) < min || ((ins.cmd == "env" || ins.cmd == "label") && len(ins.args)%3 != 0) {
			return nil, 0, fmt.Errorf("%s line %d: %s: too few arguments", filepath.Base(file), ins.line, ins.text)
		}
		out = append(out, ins)
	}
	return out, res.EscapeToken, nil
}

// lambdaRef matches AWS's Lambda base image references.
var lambdaRef = regexp.MustCompile(`^(?:public\.ecr\.aws/lambda/|(?:docker\.io/)?amazon/aws-lambda-)([a-z0-9]+)(?::([A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]{64})?$`)

// lambdaRuntime returns the runtime an AWS Lambda base image reference is
// for, and false for any other reference.
func lambdaRuntime(ref string) (Runtime, bool) {
	m := lambdaRef.FindStringSubmatch(ref)
	if m == nil {
		return Runtime{}, false
	}
	repo, tag := m[1], m[2]
	if tag == "" || tag == "latest" {
		tag = map[string]string{"python": "3.13", "nodejs": "22", "java": "21", "dotnet": "8", "provided": "al2023", "go": "1"}[repo]
	}
	var name string
	switch repo {
	case "python", "java", "dotnet":
		name = repo + tag
	case "nodejs":
		name = "nodejs" + strings.TrimSuffix(tag, ".x") + ".x"
		if strings.TrimSuffix(tag, ".x") == "24" {
			name = "nodejs24"
		}
	case "provided":
		name = "provided." + tag
	case "go":
		name = "go1.x"
	}
	rt, err := LookupRuntime(name)
	if err != nil {
		// An unknown version of a known language: its nearest base.
		if lang := map[string]string{"python": "python3.11", "nodejs": "nodejs", "java": "java17", "dotnet": "dotnet8", "provided": "provided"}[repo]; lang != "" {
			rt, _ = LookupRuntime(lang)
			return rt, true
		}
		return Runtime{}, false
	}
	return rt, true
}

// dfState is the image being built from a Dockerfile.
type dfState struct {
	lex         *shell.Lex
	env         []string // the image's environment
	args        map[string]string
	workdir     string
	cmd         []string
	entrypoint  []string
	labels      map[string]string
	code        *image.Tree
	lang        string // python or node, from FROM, for the handler check
	langVersion string
}

func (s *dfState) getenv() shell.EnvGetter {
	all := []string{}
	for k, v := range s.args {
		all = append(all, k+"="+v)
	}
	sort.Strings(all)
	return shell.EnvsFromSlice(append(all, s.env...))
}

func (s *dfState) expand(word string) (string, error) {
	out, _, err := s.lex.ProcessWord(word, s.getenv())
	return out, err
}

func (s *dfState) abs(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(s.workdir, p)
}

// dockerfile builds the Dockerfile natively, or hands it to an engine.
func (b *builder) dockerfile(ctx context.Context, file string) error {
	ins, escape, err := parseDockerfile(file)
	if err != nil {
		return err
	}
	stages := 0
	for _, in := range ins {
		if in.cmd == "from" {
			stages++
		}
	}
	if stages == 0 {
		return fmt.Errorf("%s: no FROM", file)
	}
	var why []string
	for _, in := range ins {
		if r := unsupported(in, stages); r != "" {
			why = append(why, fmt.Sprintf("line %d: %s (%s)", in.line, in.text, r))
		}
	}
	if b.cfg.Engine == "docker" || b.cfg.Engine == "podman" || b.cfg.Engine == "buildah" {
		return b.engineBuild(ctx, file, ins, escape, "--engine "+b.cfg.Engine)
	}
	if len(why) > 0 {
		if b.cfg.Engine == "none" {
			return fmt.Errorf("this Dockerfile %w: %s", ErrNeedsEngine, strings.Join(why, "; "))
		}
		return b.engineBuild(ctx, file, ins, escape, strings.Join(why, "; "))
	}
	s := &dfState{lex: shell.NewLex(escape), args: map[string]string{}, labels: map[string]string{}, code: image.NewTree()}
	b.res.Runtime = "dockerfile"
	var ext image.Extension
	var envSet []string
	for _, in := range ins {
		if err := b.dfInstruction(ctx, s, in, &ext, &envSet); err != nil {
			return fmt.Errorf("line %d of the Dockerfile: %s: %w", in.line, in.text, err)
		}
	}
	if len(s.cmd) == 1 && (s.lang == Python || s.lang == Node) && len(s.entrypoint) == 0 {
		// The runtime interface clients load the handler from LAMBDA_TASK_ROOT.
		root := image.Getenv(s.env, "LAMBDA_TASK_ROOT")
		if root == "" {
			root = "/var/task"
		}
		read := func(rel string) ([]byte, bool) { return s.code.File(path.Join(root, rel)) }
		check := pythonHandler
		if s.lang == Node {
			check = nodeHandler
		}
		// Code that only the base has cannot be checked.
		if err := check(read, root, s.cmd[0]); err != nil && len(s.code.Files(root)) > 0 {
			return err
		}
	}
	if len(s.cmd) > 0 {
		b.res.Handler = strings.Join(s.cmd, " ")
	}
	if err := b.step("code", func() (string, error) {
		return b.addTree(s.code, RoleCode, "lambdabox code (COPY)")
	}); err != nil {
		return err
	}
	ext.Env = envSet
	ext.Cmd, ext.Entrypoint, ext.WorkingDir, ext.Labels = s.cmd, s.entrypoint, s.workdir, s.labels
	return b.finish(ext)
}

func (b *builder) dfInstruction(ctx context.Context, s *dfState, in instruction, ext *image.Extension, envSet *[]string) error {
	switch in.cmd {
	case "arg":
		for _, a := range in.args {
			k, v, ok := strings.Cut(a, "=")
			if _, set := s.args[k]; set && !ok {
				continue
			}
			if ok {
				var err error
				if v, err = s.expand(v); err != nil {
					return err
				}
			}
			s.args[k] = v
		}
	case "from":
		ref, err := s.expand(in.args[0])
		if err != nil {
			return err
		}
		if err := b.step("base", func() (string, error) { return b.dfBase(ctx, s, ref) }); err != nil {
			return err
		}
		cf, err := b.base.ConfigFile()
		if err != nil {
			return fmt.Errorf("base config: %w", err)
		}
		s.env = append([]string(nil), cf.Config.Env...)
		s.workdir = cf.Config.WorkingDir
		if s.workdir == "" {
			s.workdir = "/"
		}
		s.cmd, s.entrypoint = nil, nil
	case "env", "label":
		for i := 0; i+1 < len(in.args); i += 3 {
			v, err := s.expand(in.args[i+1])
			if err != nil {
				return err
			}
			k := in.args[i]
			if in.cmd == "env" {
				s.env = image.MergeEnv(s.env, []string{k + "=" + v})
				*envSet = image.MergeEnv(*envSet, []string{k + "=" + v})
			} else {
				s.labels[k] = v
			}
		}
	case "maintainer":
		s.labels["maintainer"] = strings.Join(in.args, " ")
	case "workdir":
		w, err := s.expand(in.args[0])
		if err != nil {
			return err
		}
		s.workdir = s.abs(w)
		if err := s.code.AddDir(s.workdir); err != nil {
			return err
		}
	case "cmd", "entrypoint":
		var v []string
		if in.json {
			v = append([]string{}, in.args...)
		} else {
			v = []string{"/bin/sh", "-c", strings.Join(in.args, " ")}
		}
		if in.cmd == "cmd" {
			s.cmd = v
		} else {
			s.entrypoint = v
			if s.cmd != nil {
				s.cmd = []string{}
			}
		}
	case "expose":
	case "copy", "add":
		return b.dfCopy(s, in)
	case "run":
		return b.dfRun(ctx, s, in)
	default:
		return fmt.Errorf("%w", ErrNeedsEngine)
	}
	return nil
}

// dfBase resolves FROM ref: --base when given, an AWS Lambda base image
// mapped to lambdabox's (with --base-map, or when it cannot be pulled),
// else the image itself.
func (b *builder) dfBase(ctx context.Context, s *dfState, ref string) (string, error) {
	rt, isLambda := lambdaRuntime(ref)
	if isLambda {
		s.lang, s.langVersion = rt.Lang, rt.Version
	}
	if b.cfg.Base != "" {
		if brt, err := LookupRuntime(b.cfg.Base); err == nil {
			s.lang, s.langVersion = brt.Lang, brt.RecipeVersion
		}
		_, err := b.resolveBase(ctx, rt)
		return b.res.Base + " (--base, instead of " + ref + ")", err
	}
	if m := regexp.MustCompile(`^(?:localhost/)?lambdabox/([a-z0-9.]+)(?::latest)?$`).FindStringSubmatch(ref); m != nil {
		if brt, err := LookupRuntime(m[1]); err == nil {
			s.lang, s.langVersion = brt.Lang, brt.RecipeVersion
			img, err := b.lambdaboxBase(ctx, brt)
			if err != nil {
				return "", err
			}
			return b.res.Base, b.setBase(img)
		}
	}
	why := "--base-map"
	if !isLambda || !b.cfg.BaseMap {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		img, err := image.Read(pctx, ref, b.cfg.Arch)
		cancel()
		if err == nil {
			b.res.Base = ref
			return ref, b.setBase(img)
		}
		if !isLambda {
			return "", err
		}
		why = "cannot pull it: " + err.Error()
	}
	s.langVersion = rt.RecipeVersion
	img, err := b.lambdaboxBase(ctx, rt)
	if err != nil {
		return "", err
	}
	b.res.Base = fmt.Sprintf("%s for FROM %s (%s)", b.res.Base, ref, why)
	return b.res.Base, b.setBase(img)
}

// dfCopy copies local files of the build context into s.code.
func (b *builder) dfCopy(s *dfState, in instruction) error {
	if len(in.args) < 2 {
		return fmt.Errorf("want a source and a destination")
	}
	words := make([]string, len(in.args))
	for i, a := range in.args {
		v, err := s.expand(a)
		if err != nil {
			return err
		}
		words[i] = v
	}
	srcs, dst := words[:len(words)-1], words[len(words)-1]
	dstDir := strings.HasSuffix(dst, "/") || len(srcs) > 1
	dst = s.abs(dst)
	ctxDir := b.cfg.Dir
	skip := func(rel string, dir bool) bool { return rel == ".git" || b.ig.match(rel) }
	for _, src := range srcs {
		rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
		matches, err := filepath.Glob(filepath.Join(ctxDir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		if rel == "" {
			matches = []string{ctxDir}
		}
		if len(matches) == 0 {
			return fmt.Errorf("%s: no such file in the build context %s", src, ctxDir)
		}
		for _, m := range matches {
			mrel, _ := filepath.Rel(ctxDir, m)
			mrel = filepath.ToSlash(mrel)
			if mrel != "." && b.ig.match(mrel) {
				continue
			}
			st, err := os.Lstat(m)
			if err != nil {
				return err
			}
			if st.Mode()&os.ModeSymlink != 0 {
				// Kept as a link, never followed out of the context.
				target, err := os.Readlink(m)
				if err != nil {
					return err
				}
				to := dst
				if dstDir || len(matches) > 1 {
					to = path.Join(dst, filepath.Base(m))
				}
				if err := s.code.AddSymlink(to, target); err != nil {
					return err
				}
				continue
			}
			if st.IsDir() {
				sub := image.NewTree()
				if err := addDir(sub, m, strings.TrimPrefix(dst, "/"), func(r string, d bool) bool {
					if mrel != "." {
						r = mrel + "/" + r
					}
					return skip(r, d)
				}); err != nil {
					return err
				}
				s.code.Merge(sub)
				continue
			}
			target := dst
			if dstDir || len(matches) > 1 || s.code.Has(dst) && !hasFile(s.code, dst) {
				target = path.Join(dst, filepath.Base(m))
			}
			data, err := os.ReadFile(m)
			if err != nil {
				return err
			}
			if in.cmd == "add" && isTarball(m) {
				if err := addTarball(s.code, m, dst); err != nil {
					return err
				}
				continue
			}
			if err := s.code.AddFile(target, data, st.Mode()); err != nil {
				return err
			}
		}
	}
	return nil
}
