//go:build !lambdabox_emulator

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/base"
	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

const baseBuildLong = `Build a Lambda base image for <runtime> from its recipe (lambdabox base ls),
without a Docker daemon.

The OS and language packages come from Debian bookworm (apt with a private
state directory, unpacked with dpkg-deb; no maintainer scripts run), the
Runtime Interface Clients from PyPI, npm and Maven Central (nodejs: the host's
npm fetches aws-lambda-ric, whose native addon is then built against the
image's Node in a chroot of Debian packages, so it needs root). Every image has the
Lambda layout, ENV block, WORKDIR /var/task, ENTRYPOINT ["/lambda-entrypoint.sh"]
and lambdabox's emulator at /usr/local/bin/aws-lambda-rie.

Layers (os, runtime, ric, entrypoint) are cached under --cache by the hash of
their inputs. Package versions are pinned in the lock file, written on the
first build and read on every later one; the same lock and SOURCE_DATE_EPOCH
give the same image digest.

--platform linux/arm64 builds from Debian's arm64 packages on any host
(java17 links with the host's build of the same JDK, python3.11 compiles its
bytecode with the host's build of the same Python), except nodejs: its addon
build runs the image's own Node, so it needs an arm64 host.

dotnet8: the .NET runtime and Amazon.Lambda.RuntimeSupport come from files you
provide, since NuGet is not reachable from the build:
  --input dotnet=dotnet-runtime-8.0.x-linux-x64.tar.gz   (or aspnetcore-runtime-…; sets DOTNET_VERSION)
  --input runtimesupport=DIR                              (Amazon.Lambda.RuntimeSupport published for
                                                          .NET 8, or a .tar.gz of that directory)

Outputs (at least one; default oci:<runtime>.oci):
  --output oci:DIR    an OCI image layout directory
  --output tar:FILE   a docker-loadable tarball (docker load -i FILE)
  --load              load into the local Docker or Podman
  --push              push -t's reference with the standard keychain
An SPDX SBOM of every package is written beside each output as <output>.spdx.json.`

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
	cmd.AddCommand(newBaseBuildCmd(), newBaseLsCmd())
	return cmd
}

func newBaseLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls [runtime]",
		Short: "List the base image recipes and what each contains",
		Args:  cobra.MaximumNArgs(1),
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
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNTIME\tDESCRIPTION\tPACKAGES")
			for _, n := range recipe.Names() {
				r, err := recipe.Load(n)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Description, strings.Join(r.Contents(), " "))
			}
			return tw.Flush()
		},
	}
	return cmd
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
	fs := cmd.Flags()
	fs.StringVarP(&o.tag, "tag", "t", "", "image reference (default lambdabox/<runtime>:latest)")
	fs.StringArrayVarP(&o.outputs, "output", "o", nil, "oci:DIR or tar:FILE (repeatable)")
	fs.BoolVar(&o.load, "load", false, "load the image into the local Docker or Podman")
	fs.BoolVar(&o.push, "push", false, "push the image to the registry named by --tag")
	fs.StringVar(&o.engine, "engine", "", "engine for --load: docker or podman (default: whichever answers)")
	fs.StringVar(&o.platform, "platform", "linux/amd64", "linux/amd64 or linux/arm64")
	fs.StringVar(&o.cacheDir, "cache", "", "cache directory (default $XDG_CACHE_HOME/lambdabox)")
	fs.StringVar(&o.lockFile, "lock", "", "lock file (default lambdabox-<runtime>-<arch>.lock.json)")
	fs.BoolVar(&o.updateLock, "update-lock", false, "resolve package versions again and rewrite the lock file")
	fs.StringVar(&o.emulator, "emulator", "", "static lambdabox binary to install as the emulator (default: built from the source tree, or this binary)")
	fs.StringArrayVar(&o.inputs, "input", nil, "NAME=PATH for a recipe's user-provided files (repeatable)")
	return cmd
}

func runBaseBuild(cmd *cobra.Command, runtime string, o baseBuildOptions) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	start := time.Now()
	r, err := recipe.Load(runtime)
	if err != nil {
		return err
	}
	osName, arch, ok := strings.Cut(o.platform, "/")
	if !ok || osName != "linux" || (arch != "amd64" && arch != "arm64") {
		return fmt.Errorf("--platform %q: want linux/amd64 or linux/arm64", o.platform)
	}
	if o.tag == "" {
		o.tag = "lambdabox/" + runtime + ":latest"
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	dest := image.Destinations{Load: o.load, Engine: o.engine}
	for _, v := range o.outputs {
		out, err := image.ParseOutput(v)
		if err != nil {
			return err
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
			return fmt.Errorf("--input %q: want NAME=PATH", s)
		}
		inputs[k] = v
	}
	if o.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("--cache: %w", err)
		}
		o.cacheDir = filepath.Join(dir, "lambdabox")
	}
	if o.lockFile == "" {
		o.lockFile = fmt.Sprintf("lambdabox-%s-%s.lock.json", runtime, arch)
	}
	epoch, err := image.SourceDateEpoch()
	if err != nil {
		return err
	}
	if o.emulator == "" {
		wd, _ := os.Getwd()
		if o.emulator, err = base.FindEmulator(ctx, wd, o.cacheDir, arch); err != nil {
			return err
		}
	}
	res, err := base.Build(ctx, base.Config{
		Recipe:     r,
		CacheDir:   o.cacheDir,
		LockFile:   o.lockFile,
		UpdateLock: o.updateLock,
		Arch:       arch,
		Epoch:      epoch,
		Emulator:   o.emulator,
		Inputs:     inputs,
		Log:        stderr,
	})
	if err != nil {
		return err
	}
	sbom, err := base.SPDX(res.Lock, tag.String(), epoch)
	if err != nil {
		return err
	}
	if err := image.Write(ctx, res.Image, tag, dest, sbom); err != nil {
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
	fmt.Fprintf(stderr, "built %s %s (%.1f MiB compressed) in %s\n", tag, digest, float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(cmd.OutOrStdout(), digest)
	return nil
}
