package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/base"
	"github.com/lambdabox/lambdabox/internal/debian"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

const baseBuildLong = `Build a Lambda base image for <runtime> from its recipe (lambdabox base ls),
without a Docker daemon.

Each recipe names one Debian suite: python3.11, java17, nodejs (Node.js 18)
and dotnet8 come from bookworm; python3.13, java21, java25, dotnet10 and
provided from trixie (Debian 13, stable); nodejs24 and python3.14 from forky
(Debian testing). The OS and language packages come from that suite and its
-updates and -security archives (apt with a private state directory,
unpacked with dpkg-deb; no maintainer scripts run), the Runtime Interface
Clients from PyPI, npm and Maven Central (nodejs, nodejs24: the host's npm
fetches aws-lambda-ric, whose native addon is then built against the image's
Node in a chroot of Debian packages, so it needs root). Every image has the
Lambda layout, ENV block, WORKDIR /var/task, ENTRYPOINT ["/lambda-entrypoint.sh"]
and lambdabox's emulator at /usr/local/bin/aws-lambda-rie. A recipe for a
runtime Lambda has deprecated builds with a warning naming its successor.

Layers (os, runtime, ric, entrypoint) are cached under --cache by the hash of
their inputs. Package versions are pinned in the lock file, with the suite,
written on the first build and read on every later one; the same lock and
SOURCE_DATE_EPOCH give the same image digest. lambdabox base update refreshes
the lock with the suite's security and point-release updates.

The emulator is lambdabox's own cmd/aws-lambda-rie built reproducibly (-trimpath,
stripped, CGO_ENABLED=0, Go ` + base.EmulatorToolchain + `) from the source tree lambdabox
runs in, or, for an installed release, from that version's module source; the
same lambdabox version gives the same emulator bytes for every user.
--emulator FILE installs another binary instead.

--platform linux/arm64 builds from Debian's arm64 packages on any host
(java links with the host's build of the same JDK, python compiles its
bytecode with the host's build of the same Python), except nodejs and
nodejs24: their addon build runs the image's own Node, so it needs an arm64 host.

dotnet8 and dotnet10: the .NET runtime and Amazon.Lambda.RuntimeSupport come
from files you provide, since NuGet is not reachable from the build:
  --input dotnet=dotnet-runtime-10.0.x-linux-x64.tar.gz   (or aspnetcore-runtime-…; sets DOTNET_VERSION)
  --input runtimesupport=DIR                               (Amazon.Lambda.RuntimeSupport published for
                                                           that .NET, or a .tar.gz of that directory)

Outputs (at least one; default oci:<runtime>.oci):
  --output oci:DIR    an OCI image layout directory
  --output tar:FILE   a docker-loadable tarball (docker load -i FILE)
  --load              load into the local Docker or Podman
  --push              push -t's reference with the standard keychain
An SPDX SBOM of every package is written beside each output as <output>.spdx.json.`

const baseUpdateLong = `Refresh the lock file of <runtime> from its Debian suite and the suite's
-updates and -security archives (package lists fetched again), and from PyPI,
npm and Maven Central, then rebuild the image from it.

Every package whose pinned version changed is printed, one per line:
  <layer> <kind> <name> <old version> → <new version> [(security)]
where kind is deb (in the image), jlink or build (in a build root whose output
is in the image), pip, npm or maven, and "(security)" marks a version from the
security archive. The build then rebuilds only the layers whose pins changed;
the others come from the cache with their digests unchanged.

--check prints the changes and writes nothing (no lock, no image, no
package downloaded: only the package lists in the cache are refreshed); it exits with status 1 when there are updates, 0 when the lock is
current, so a scheduled CI job can run it.

The build flags (--tag, --output, --load, --push, --platform, --cache, --lock,
--emulator, --input) are those of lambdabox base build.`

type baseBuildOptions struct {
	tag        string
	outputs    []string
	load       bool
	push       bool
	engine     string
	platform   string
	cacheDir   string
	lockFile   string
	updateLock bool
	emulator   string
	inputs     []string
}

func newBaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Build Lambda base images from recipes, without a Docker daemon",
	}
	cmd.AddCommand(newBaseBuildCmd(), newBaseUpdateCmd(), newBaseLsCmd())
	return cmd
}

func newBaseLsCmd() *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls [runtime]",
		Short: "List the base image recipes: Debian suite, language, RIC, Lambda runtime and its deprecation date",
		Long: `List the base image recipes: for each, the Debian suite it is built from
(marked "testing" for Debian testing, whose packages change often), the
language version, the Runtime Interface Client version, the Lambda runtime
identifier it stands for and the date AWS deprecates that identifier
("deprecated" once passed). -l adds what each image contains. With a
runtime, print its recipe.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 1 {
				src, err := recipe.Source(args[0])
				if err != nil {
					return err
				}
				_, err = out.Write(src)
				return err
			}
			return writeBaseList(out, time.Now(), long)
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "also list each image's packages")
	return cmd
}

// writeBaseList writes the table of `base ls`; now decides which runtimes
// are past their deprecation date.
func writeBaseList(w io.Writer, now time.Time, long bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "RUNTIME\tDEBIAN SUITE\tLANGUAGE\tRIC\tLAMBDA RUNTIME\tDEPRECATION"
	if long {
		head += "\tCONTENTS"
	}
	fmt.Fprintln(tw, head)
	testing := false
	for _, n := range recipe.Names() {
		r, err := recipe.Load(n)
		if err != nil {
			return err
		}
		s, err := debian.LookupSuite(r.Suite)
		if err != nil {
			return err
		}
		suite := fmt.Sprintf("%s (%s)", s.Name, s.Version)
		if s.Testing {
			suite = s.Name + " (testing)"
			testing = true
		}
		ric := r.RICVersion()
		switch {
		case ric == "" && len(r.Inputs) > 0:
			ric = "--input"
		case ric == "":
			ric = "-"
		}
		dep := "-"
		if d, ok := r.Lambda.DeprecatedAt(); ok {
			dep = r.Lambda.Deprecated
			if !now.Before(d) {
				dep += " (deprecated"
				if r.Lambda.Successor != "" {
					dep += ": use " + r.Lambda.Successor
				}
				dep += ")"
			}
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.Name, suite, r.Language, ric, r.Lambda.Runtime, dep)
		if long {
			line += "\t" + strings.Join(r.Contents(), " ")
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if testing {
		fmt.Fprintln(w, "\nDebian testing (forky) has the newest Node.js and Python, and no stable release's guarantees:\nits packages change often; `lambdabox base update <runtime>` refreshes a lock from it.")
	}
	return nil
}

func addBaseBuildFlags(cmd *cobra.Command, o *baseBuildOptions) {
	fs := cmd.Flags()
	fs.StringVarP(&o.tag, "tag", "t", "", "image reference (default lambdabox/<runtime>:latest)")
	fs.StringArrayVarP(&o.outputs, "output", "o", nil, "oci:DIR or tar:FILE (repeatable)")
	fs.BoolVar(&o.load, "load", false, "load the image into the local Docker or Podman")
	fs.BoolVar(&o.push, "push", false, "push the image to the registry named by --tag")
	fs.StringVar(&o.engine, "engine", "", "engine for --load: docker or podman (default: whichever answers)")
	fs.StringVar(&o.platform, "platform", "linux/amd64", "linux/amd64 or linux/arm64")
	fs.StringVar(&o.cacheDir, "cache", "", "cache directory (default $XDG_CACHE_HOME/lambdabox)")
	fs.StringVar(&o.lockFile, "lock", "", "lock file (default lambdabox-<runtime>-<arch>.lock.json)")
	fs.StringVar(&o.emulator, "emulator", "", "static lambdabox binary to install as the emulator (default: lambdabox's emulator built reproducibly from its source)")
	fs.StringArrayVar(&o.inputs, "input", nil, "NAME=PATH for a recipe's user-provided files (repeatable)")
}

func newBaseBuildCmd() *cobra.Command {
	var o baseBuildOptions
	cmd := &cobra.Command{
		Use:   "build <runtime>",
		Short: "Build a base image for a runtime",
		Long:  baseBuildLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBaseBuild(cmd, args[0], o)
		},
	}
	addBaseBuildFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.updateLock, "update-lock", false, "resolve package versions again and rewrite the lock file (lambdabox base update also lists what changed)")
	return cmd
}

func newBaseUpdateCmd() *cobra.Command {
	var o baseBuildOptions
	var check bool
	cmd := &cobra.Command{
		Use:   "update <runtime>",
		Short: "Refresh a base image's lock from its Debian suite's updates, print what changed, rebuild the changed layers",
		Long:  baseUpdateLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBaseUpdate(cmd, args[0], o, check)
		},
	}
	addBaseBuildFlags(cmd, &o)
	cmd.Flags().BoolVar(&check, "check", false, "print the updates without writing anything; exit 1 when there are any")
	return cmd
}

// baseJob is a parsed base build or update command line.
type baseJob struct {
	recipe *recipe.Recipe
	cfg    base.Config
	tag    name.Tag
	dest   image.Destinations
	epoch  time.Time
}

// prepareBase turns the flags into a build config; the emulator is found
// later, only when an image is built.
func prepareBase(cmd *cobra.Command, runtime string, o baseBuildOptions) (*baseJob, error) {
	r, err := recipe.Load(runtime)
	if err != nil {
		return nil, err
	}
	osName, arch, ok := strings.Cut(o.platform, "/")
	if !ok || osName != "linux" || (arch != "amd64" && arch != "arm64") {
		return nil, fmt.Errorf("--platform %q: want linux/amd64 or linux/arm64", o.platform)
	}
	if o.tag == "" {
		o.tag = "lambdabox/" + runtime + ":latest"
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return nil, fmt.Errorf("--tag: %w", err)
	}
	dest := image.Destinations{Load: o.load, Engine: o.engine}
	for _, v := range o.outputs {
		out, err := image.ParseOutput(v)
		if err != nil {
			return nil, err
		}
		dest.Outputs = append(dest.Outputs, out)
	}
	if o.push {
		dest.Push = tag
	}
	if dest.Empty() {
		dest.Outputs = []image.Output{{Kind: image.OCI, Path: runtime + ".oci"}}
	}
	inputs := map[string]string{}
	for _, s := range o.inputs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--input %q: want NAME=PATH", s)
		}
		inputs[k] = v
	}
	if o.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("--cache: %w", err)
		}
		o.cacheDir = filepath.Join(dir, "lambdabox")
	}
	if o.lockFile == "" {
		o.lockFile = base.DefaultLockFile("", runtime, arch)
	}
	epoch, err := image.SourceDateEpoch()
	if err != nil {
		return nil, err
	}
	return &baseJob{
		recipe: r,
		tag:    tag,
		dest:   dest,
		epoch:  epoch,
		cfg: base.Config{
			Recipe:     r,
			CacheDir:   o.cacheDir,
			LockFile:   o.lockFile,
			UpdateLock: o.updateLock,
			Arch:       arch,
			Epoch:      epoch,
			Emulator:   o.emulator,
			Inputs:     inputs,
			Log:        cmd.ErrOrStderr(),
		},
	}, nil
}

// warnDeprecated tells the user when Lambda has deprecated the recipe's
// runtime, and what to use instead.
func warnDeprecated(w io.Writer, r *recipe.Recipe, now time.Time) {
	d, ok := r.Lambda.DeprecatedAt()
	if !ok || now.Before(d) {
		return
	}
	msg := fmt.Sprintf("warning: AWS Lambda deprecated %s on %s", r.Lambda.Runtime, r.Lambda.Deprecated)
	if r.Lambda.Successor != "" {
		msg += fmt.Sprintf("; use %s (lambdabox base build %s)", r.Lambda.Successor, r.Lambda.Successor)
	}
	fmt.Fprintln(w, msg)
}

func runBaseBuild(cmd *cobra.Command, runtime string, o baseBuildOptions) error {
	start := time.Now()
	job, err := prepareBase(cmd, runtime, o)
	if err != nil {
		return err
	}
	warnDeprecated(cmd.ErrOrStderr(), job.recipe, time.Now())
	return buildBase(cmd, job, start)
}

// buildBase builds the image of job and writes it to its destinations.
func buildBase(cmd *cobra.Command, job *baseJob, start time.Time) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	cfg := job.cfg
	if cfg.Emulator == "" {
		wd, _ := os.Getwd()
		var err error
		if cfg.Emulator, err = base.FindEmulator(ctx, wd, cfg.CacheDir, cfg.Arch); err != nil {
			return err
		}
	}
	res, err := base.Build(ctx, cfg)
	if err != nil {
		return err
	}
	sbom, err := base.SPDX(res.Lock, job.tag.String(), job.epoch)
	if err != nil {
		return err
	}
	if err := image.Write(ctx, res.Image, job.tag, job.dest, sbom); err != nil {
		return err
	}
	digest, err := res.Image.Digest()
	if err != nil {
		return err
	}
	var total int64
	for _, l := range res.Layers {
		total += l.Size
	}
	fmt.Fprintf(stderr, "built %s %s (%.1f MiB compressed) in %s\n", job.tag, digest, float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(cmd.OutOrStdout(), digest)
	return nil
}

func runBaseUpdate(cmd *cobra.Command, runtime string, o baseBuildOptions, check bool) error {
	start := time.Now()
	job, err := prepareBase(cmd, runtime, o)
	if err != nil {
		return err
	}
	warnDeprecated(cmd.ErrOrStderr(), job.recipe, time.Now())
	res, err := base.Update(cmd.Context(), job.cfg, check)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, c := range res.Changes {
		fmt.Fprintln(out, c)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s is up to date with %s, %s-updates and %s-security\n", job.cfg.LockFile, job.recipe.Suite, job.recipe.Suite, job.recipe.Suite)
	}
	if check {
		if len(res.Changes) > 0 {
			return fmt.Errorf("%w: %d package(s) in the %s layer(s); run lambdabox base update %s", base.ErrUpdatesAvailable, len(res.Changes), strings.Join(res.Layers, ", "), runtime)
		}
		return nil
	}
	return buildBase(cmd, job, start)
}
