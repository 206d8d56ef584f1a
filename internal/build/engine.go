package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/lambdabox/lambdabox/internal/image"
)

// findEngine returns the first of docker (when its daemon answers), podman
// and buildah on PATH, or "".
func findEngine(ctx context.Context) string {
	if _, err := exec.LookPath("docker"); err == nil && exec.CommandContext(ctx, "docker", "info").Run() == nil {
		return "docker"
	}
	for _, e := range []string{"podman", "buildah"} {
		if _, err := exec.LookPath(e); err == nil {
			return e
		}
	}
	return ""
}

// engineBuild hands the whole Dockerfile to a container engine and reads
// the image back. A FROM of an AWS Lambda base image the engine cannot
// pull (or any, with --base-map) is given lambdabox's base, loaded into
// the engine first.
func (b *builder) engineBuild(ctx context.Context, file string, ins []instruction, escape rune, why string) error {
	engine := b.cfg.Engine
	if engine == "" {
		engine = findEngine(ctx)
	}
	if engine == "" {
		return fmt.Errorf("this Dockerfile %w (--engine docker|podman|buildah), and none is installed: %s", ErrNeedsEngine, why)
	}
	b.res.Engine, b.res.Runtime = engine, "dockerfile"
	b.logf("building with %s: %s", engine, why)
	df := file
	var from *instruction
	for i := range ins {
		if ins[i].cmd == "from" {
			from = &ins[i]
			break
		}
	}
	baseLayers := 0
	if from != nil {
		ref := from.args[0]
		if rt, ok := lambdaRuntime(ref); ok && (b.cfg.BaseMap || b.cfg.Base != "" || !b.enginePulls(ctx, engine, ref)) {
			if err := b.step("base", func() (string, error) {
				if _, err := b.resolveBase(ctx, rt); err != nil {
					return "", err
				}
				return b.res.Base + " for FROM " + ref, nil
			}); err != nil {
				return err
			}
			d, _ := b.base.Digest()
			local := "localhost/lambdabox-base/" + rt.Recipe + ":" + d.Hex[:12]
			tag, err := name.NewTag(local)
			if err != nil {
				return err
			}
			if err := image.Load(ctx, engine, b.base, tag); err != nil {
				return err
			}
			ls, _ := b.base.Layers()
			baseLayers = len(ls)
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			lines := strings.Split(string(data), "\n")
			lines[from.line-1] = strings.Replace(lines[from.line-1], ref, local, 1)
			tmp, err := os.MkdirTemp("", "lambdabox-dockerfile-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			df = filepath.Join(tmp, "Dockerfile")
			if err := os.WriteFile(df, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				return err
			}
		}
	}
	out := filepath.Join(b.cfg.CacheDir, "build", "engine")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	clearOld(out, time.Hour)
	id := fmt.Sprintf("lambdabox-build-%d", time.Now().UnixNano())
	tag := "localhost/" + id + ":latest"
	saved := filepath.Join(out, id+".tar")
	if err := b.step("engine build", func() (string, error) {
		var args []string
		if engine == "buildah" {
			args = append([]string{"bud"}, b.cfg.EngineFlags...)
		} else {
			args = append([]string{"build"}, b.cfg.EngineFlags...)
		}
		args = append(args, "--platform", "linux/"+b.cfg.Arch, "-t", tag, "-f", df, b.cfg.Dir)
		if err := run(ctx, engine, args...); err != nil {
			return "", err
		}
		defer run(context.WithoutCancel(ctx), engine, "rmi", tag)
		if engine == "buildah" {
			return engine, run(ctx, engine, "push", tag, "docker-archive:"+saved+":"+tag)
		}
		return engine, run(ctx, engine, "save", "-o", saved, tag)
	}); err != nil {
		return err
	}
	img, err := tarball.ImageFromPath(saved, nil)
	if err != nil {
		return fmt.Errorf("reading the image %s saved: %w", engine, err)
	}
	b.base, b.adds = img, nil
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	b.roles = nil
	for i, l := range ls {
		d, _ := l.Digest()
		sz, _ := l.Size()
		role := RoleLayer
		if i < baseLayers {
			role = RoleBase
		}
		b.res.Layers = append(b.res.Layers, LayerInfo{Digest: d.String(), Size: sz, Role: role})
	}
	b.res.Image = img
	return nil
}

var refLike = regexp.MustCompile(`^[a-z0-9./:_@-]+$`)

// enginePulls reports whether engine has or can pull ref.
func (b *builder) enginePulls(ctx context.Context, engine, ref string) bool {
	if !refLike.MatchString(ref) {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if engine == "buildah" {
		return exec.CommandContext(pctx, engine, "pull", "-q", ref).Run() == nil
	}
	return exec.CommandContext(pctx, engine, "pull", "-q", ref).Run() == nil
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// clearOld removes files in dir older than age: images saved by earlier
// engine builds.
func clearOld(dir string, age time.Duration) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
