package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/build"
	"github.com/lambdabox/lambdabox/internal/image"
)

const buildLong = `Build a Lambda function image from DIR (default .), without a container engine.

The runtime is detected from the folder (or --runtime): requirements.txt or
*.py (Python), package.json (Node), go.mod (Go, built with CGO_ENABLED=0 as
/var/task/bootstrap), pom.xml or build.gradle with a built jar (Java; jars of
target/dependency go to /var/task/lib), Cargo.toml with a built bootstrap
(Rust), a dotnet publish folder (*.runtimeconfig.json), or a bootstrap
executable. The handler (--handler, the image's CMD) defaults to the folder's
lambda_function.handler, app.handler, index.handler, bootstrap or .NET
assembly, and is checked without running the code: a missing file or
function is an error that lists what the module defines.

Layers on top of the base: --layer folders or zips under /opt (in order), the
dependencies (pip install --target for the image's Python and platform,
wheels only unless --allow-sdist; npm ci --omit=dev; the Java and .NET
libraries), cached by the hash of their inputs and of the base, and the
code, small and last. npm native addons (binding.gyp) are compiled against
the image's Node: by the host's npm when the host's Node has the image's
major version and architecture, else (as root, on a lambdabox base) in a
chroot of the base's Debian packages, Node headers and build tools. .lambdaboxignore or .dockerignore excludes files.

--base is a runtime name (lambdabox's own base, built from its recipe or
taken from the layer cache), an OCI layout, an image tarball or a registry
reference. Runtimes without a lambdabox base of their own yet use the nearest
one (python3.12 → python3.11; nodejs20.x → nodejs; java21 → java17;
dotnet10 → dotnet8); the build says which it used.

A DIR with a Dockerfile is built natively when it only uses FROM, ARG, ENV,
WORKDIR, COPY/ADD of local files, LABEL, CMD, ENTRYPOINT and RUN lines that
are a pip install --target, npm ci/install, or dnf/yum/microdnf install (the
packages come from Debian bookworm, Amazon Linux names mapped where they
differ). FROM public.ecr.aws/lambda/<rt>
(or amazon/aws-lambda-<rt>) uses lambdabox's base for <rt> when it cannot be
pulled, or always with --base-map. Other RUN lines, or --engine
docker|podman|buildah, hand the whole build to that engine.

The same inputs and SOURCE_DATE_EPOCH give the same digest. An SPDX SBOM of
the dependency layer is written beside each output as <output>.spdx.json.
On a terminal the steps and their timings are shown; --json prints
{"digest","size","layers":[{"digest","size","role"}]} with role base,
dependencies, code or layer.

Outputs (default oci:<DIR name>.oci):
  --output oci:DIR    an OCI image layout directory (repeatable)
  --output tar:FILE   a docker-loadable tarball
  --load              load into the local Docker or Podman
  --push REF          push to a registry with the standard keychain`

type buildOptions struct {
	tag, push, platform, runtime, handler, base, engine, cacheDir, emulator string
	outputs, env, layers, inputs, engineFlags                               []string
	load, baseMap, allowSdist, json                                         bool
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build a function image from a folder or a Lambda Dockerfile, without a container engine",
		Long:  buildLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runBuild(cmd, dir, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.tag, "tag", "t", "", "image reference (default lambdabox/<DIR name>:latest)")
	fs.StringArrayVarP(&o.outputs, "output", "o", nil, "oci:DIR or tar:FILE (repeatable)")
	fs.BoolVar(&o.load, "load", false, "load the image into the local Docker or Podman")
	fs.StringVar(&o.push, "push", "", "push the image to this registry reference")
	fs.StringVar(&o.platform, "platform", "linux/amd64", "linux/amd64 or linux/arm64")
	fs.StringVar(&o.runtime, "runtime", "", "runtime (default: detected); one of "+strings.Join(build.RuntimeNames(), ", "))
	fs.StringVar(&o.handler, "handler", "", "handler, the image's CMD (default: from the folder)")
	fs.StringVar(&o.base, "base", "", "base image: a runtime name, an OCI layout or tarball path, or a registry reference")
	fs.BoolVar(&o.baseMap, "base-map", false, "FROM an AWS Lambda base image always uses lambdabox's base for that runtime")
	fs.StringVar(&o.engine, "engine", "", "docker, podman or buildah: build a Dockerfile with it (and --load into it); none: never")
	fs.StringArrayVar(&o.engineFlags, "engine-flag", nil, "extra flag for the engine's build command (repeatable)")
	fs.StringArrayVar(&o.env, "env", nil, "KEY=VALUE environment variable of the image (repeatable)")
	fs.StringArrayVar(&o.layers, "layer", nil, "Lambda layer folder or .zip, unpacked under /opt (repeatable, in order)")
	fs.BoolVar(&o.allowSdist, "allow-sdist", false, "let pip build packages without a wheel on this host (host Python and arch must match the image's)")
	fs.StringVar(&o.cacheDir, "cache", "", "cache directory (default $XDG_CACHE_HOME/lambdabox)")
	fs.StringVar(&o.emulator, "emulator", "", "static lambdabox binary for lambdabox bases (default: built from the source tree, or this binary)")
	fs.StringArrayVar(&o.inputs, "input", nil, "NAME=PATH for a lambdabox base recipe's user-provided files (dotnet8)")
	fs.BoolVar(&o.json, "json", false, `print {"digest","size","layers":[…]} on stdout`)
	return cmd
}

var badTagChars = regexp.MustCompile(`[^a-z0-9._-]+`)

func runBuild(cmd *cobra.Command, dir string, o buildOptions) error {
	ctx := cmd.Context()
	start := time.Now()
	stdout := cmd.OutOrStdout()
	tty := isTerminal(stdout)
	var log io.Writer = io.Discard
	if tty {
		log = &stepLog{w: cmd.ErrOrStderr()}
	}
	osName, arch, ok := strings.Cut(o.platform, "/")
	if !ok || osName != "linux" || (arch != "amd64" && arch != "arm64") {
		return fmt.Errorf("--platform %q: want linux/amd64 or linux/arm64", o.platform)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if o.tag == "" {
		n := strings.Trim(badTagChars.ReplaceAllString(strings.ToLower(filepath.Base(abs)), "-"), "-._")
		if n == "" {
			n = "function"
		}
		o.tag = "lambdabox/" + n + ":latest"
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	dest := image.Destinations{Load: o.load, Engine: o.engine}
	if o.engine == "none" {
		dest.Engine = ""
	}
	for _, v := range o.outputs {
		out, err := image.ParseOutput(v)
		if err != nil {
			return err
		}
		dest.Outputs = append(dest.Outputs, out)
	}
	var pushRef name.Reference
	if o.push != "" {
		if pushRef, err = name.ParseReference(o.push); err != nil {
			return fmt.Errorf("--push: %w", err)
		}
	}
	if dest.Empty() && pushRef == nil {
		dest.Outputs = []image.Output{{Kind: image.OCI, Path: filepath.Base(abs) + ".oci"}}
	}
	inputs := map[string]string{}
	for _, s := range o.inputs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("--input %q: want NAME=PATH", s)
		}
		inputs[k] = v
	}
	if o.cacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("--cache: %w", err)
		}
		o.cacheDir = filepath.Join(d, "lambdabox")
	}
	epoch, err := image.SourceDateEpoch()
	if err != nil {
		return err
	}
	wd, _ := os.Getwd()
	res, err := build.Build(ctx, build.Config{
		Dir:         abs,
		Runtime:     o.runtime,
		Handler:     o.handler,
		Base:        o.base,
		BaseMap:     o.baseMap,
		Engine:      o.engine,
		EngineFlags: o.engineFlags,
		Arch:        arch,
		Env:         o.env,
		Layers:      o.layers,
		AllowSdist:  o.allowSdist,
		CacheDir:    o.cacheDir,
		Epoch:       epoch,
		Bases:       &build.RecipeBases{CacheDir: o.cacheDir, WorkDir: wd, Emulator: o.emulator, Inputs: inputs, Log: io.Discard},
		Log:         log,
	})
	if err != nil {
		return err
	}
	if !tty {
		// Even a quiet build says when it used a stand-in base or an engine.
		if strings.Contains(res.Base, "nearest to") || strings.Contains(res.Base, "for FROM") {
			fmt.Fprintf(cmd.ErrOrStderr(), "lambdabox build: base %s\n", res.Base)
		}
		if res.Engine != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "lambdabox build: built with %s\n", res.Engine)
		}
	}
	sbom, err := build.SPDX(res.Packages, tag.String(), epoch)
	if err != nil {
		return err
	}
	steps := res.Steps
	t0 := time.Now()
	if err := image.Write(ctx, res.Image, tag, dest, sbom); err != nil {
		return err
	}
	if !dest.Empty() {
		steps = append(steps, build.Step{Name: "write", Took: time.Since(t0)})
	}
	if pushRef != nil {
		t0 = time.Now()
		var opts []remote.Option
		if tty {
			ch := make(chan v1.Update, 16)
			done := make(chan struct{})
			go showPush(cmd.ErrOrStderr(), pushRef.String(), ch, done)
			opts = append(opts, remote.WithProgress(ch))
			err = image.Push(ctx, pushRef, res.Image, opts...)
			<-done
		} else {
			err = image.Push(ctx, pushRef, res.Image)
		}
		if err != nil {
			return err
		}
		steps = append(steps, build.Step{Name: "push", Took: time.Since(t0)})
	}
	digest, err := res.Image.Digest()
	if err != nil {
		return err
	}
	var total int64
	for _, l := range res.Layers {
		total += l.Size
	}
	if o.json {
		return json.NewEncoder(stdout).Encode(struct {
			Digest string            `json:"digest"`
			Size   int64             `json:"size"`
			Layers []build.LayerInfo `json:"layers"`
		}{digest.String(), total, res.Layers})
	}
	if tty {
		w := cmd.ErrOrStderr()
		how := "natively"
		if res.Engine != "" {
			how = "with " + res.Engine
		}
		fmt.Fprintf(w, "built %s %s (%s, handler %s, base %s) %s in %s\n", tag, digest, res.Runtime, res.Handler, res.Base, how, time.Since(start).Round(time.Millisecond))
		for _, s := range steps {
			fmt.Fprintf(w, "  %-14s %8s  %s\n", s.Name, s.Took.Round(time.Millisecond), s.Detail)
		}
		for _, l := range res.Layers {
			if l.Role != build.RoleBase {
				fmt.Fprintf(w, "  layer %-12s %s %s\n", l.Role, l.Digest[:19], humanSize(l.Size))
			}
		}
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

// stepLog is the terminal's progress display: each step's line, with a
// running clock while the step lasts, replaced by its result.
type stepLog struct {
	w    io.Writer
	mu   sync.Mutex
	stop chan struct{} // closes the running step's clock
	done chan struct{} // closed once that clock has stopped
}

func (s *stepLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
		fmt.Fprint(s.w, "\r\033[K")
	}
	line := strings.TrimRight(string(p), "\n")
	if !strings.HasSuffix(line, "…") {
		fmt.Fprintln(s.w, line)
		return len(p), nil
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		start := time.Now()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		fmt.Fprintf(s.w, "%s", line)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(s.w, "\r%s %.1fs", line, time.Since(start).Seconds())
			}
		}
	}(s.stop, s.done)
	return len(p), nil
}

// showPush prints push progress (bytes and rate) on one line until ch is
// closed.
func showPush(w io.Writer, ref string, ch <-chan v1.Update, done chan<- struct{}) {
	defer close(done)
	start := time.Now()
	var last v1.Update
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	print := func() {
		secs := time.Since(start).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(last.Complete) / secs
		}
		fmt.Fprintf(w, "\rpushing %s: %s / %s (%s/s)   ", ref, humanSize(last.Complete), humanSize(last.Total), humanSize(int64(rate)))
	}
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				print()
				fmt.Fprintln(w)
				return
			}
			if u.Error == nil {
				last = u
			}
		case <-tick.C:
			print()
		}
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
