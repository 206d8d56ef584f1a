package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// WriteLayout writes img as an OCI image layout directory at dir, tagged
// ref. The layout is built beside dir and renamed into place, so a failed
// write leaves no half-written layout and an existing one is replaced whole.
func WriteLayout(dir string, img v1.Image, ref name.Reference) error {
	dir = filepath.Clean(dir)
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	linkBlobs(dir, tmp, img)
	ann := map[string]string{"org.opencontainers.image.ref.name": ref.String()}
	if err := p.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return replace(tmp, dir)
}

// replace renames tmp to dst; an existing dst is moved aside first and
// removed only once tmp is in place.
func replace(tmp, dst string) error {
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dst, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dst, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		if old != "" {
			_ = os.Rename(old, dst)
		}
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// WriteTarball writes img as a docker-loadable tarball (docker load,
// podman load) at file, atomically.
func WriteTarball(file string, img v1.Image, tag name.Tag) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := tarball.Write(tag, img, f); err != nil {
		f.Close()
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	return nil
}

// Keychain is the credentials Push uses: the docker config and its
// credential helpers, then the Amazon ECR credential helper library (the
// AWS SDK's default credential chain) for *.dkr.ecr.*.amazonaws.com and
// public.ecr.aws, which needs no docker-credential-ecr-login binary.
var Keychain = authn.NewMultiKeychain(
	authn.DefaultKeychain,
	authn.NewKeychainFromHelper(ecr.NewECRHelper(ecr.WithLogger(io.Discard))),
)

// Push writes img to a registry with Keychain.
func Push(ctx context.Context, ref name.Reference, img v1.Image, opts ...remote.Option) error {
	opts = append([]remote.Option{remote.WithAuthFromKeychain(Keychain), remote.WithContext(ctx)}, opts...)
	if err := remote.Write(ref, img, opts...); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// ErrNoEngine is returned by Load when neither docker nor podman works.
var ErrNoEngine = errors.New("no container engine: neither `docker info` nor `podman info` succeeds")

// Engine returns the container engine to load images into: engine if set,
// else docker when its daemon answers, else podman.
func Engine(ctx context.Context, engine string) (string, error) {
	if engine != "" {
		return engine, nil
	}
	for _, e := range []string{"docker", "podman"} {
		if _, err := exec.LookPath(e); err != nil {
			continue
		}
		if exec.CommandContext(ctx, e, "info").Run() == nil {
			return e, nil
		}
	}
	return "", ErrNoEngine
}

// Load loads img into a local Docker or Podman engine as tag.
func Load(ctx context.Context, engine string, img v1.Image, tag name.Tag) error {
	engine, err := Engine(ctx, engine)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lambdabox-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "image.tar")
	if err := WriteTarball(file, img, tag); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, engine, "load", "-i", file)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err == nil {
			return nil
		}
		if attempt < LoadAttempts && LostLayer(out.String()) && ctx.Err() == nil {
			continue
		}
		return fmt.Errorf("%s load: %w: %s", engine, err, bytes.TrimSpace(out.Bytes()))
	}
}

// LoadAttempts bounds the tries of a load that the engine failed with
// LostLayer.
const LoadAttempts = 3

// LostLayer reports whether msg, an engine's answer to a failed load, says
// that Podman's storage lost a layer it had found present to an image
// removal running at the same time (containers/storage: "layer not
// known"): loading again writes the layer anew.
func LostLayer(msg string) bool { return strings.Contains(msg, "layer not known") }
