package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ErrNotFound is wrapped by Read when src is neither an image on disk nor
// a reference a registry answers for.
var ErrNotFound = errors.New("image not found")

// Read returns the image src names: an OCI layout directory, a
// docker-loadable tarball, or a registry reference pulled with Keychain.
// From a layout or a registry it picks the manifest for the platform
// linux/arch when src is an index.
func Read(ctx context.Context, src, arch string) (v1.Image, error) {
	if st, err := os.Stat(src); err == nil {
		if st.IsDir() {
			return readLayout(src, arch)
		}
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return nil, fmt.Errorf("reading image tarball %s: %w", src, err)
		}
		return img, nil
	}
	ref, err := name.ParseReference(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a file, a directory or an image reference: %v", ErrNotFound, src, err)
	}
	// public.ecr.aws serves anonymous pulls; asking the ECR helper for
	// credentials there would query the AWS credential chain (IMDS).
	keys := Keychain
	if ref.Context().RegistryStr() == "public.ecr.aws" {
		keys = authn.DefaultKeychain
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(keys),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	if err != nil {
		return nil, fmt.Errorf("%w: pulling %s: %v", ErrNotFound, ref, err)
	}
	return img, nil
}

func readLayout(dir, arch string) (v1.Image, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("%w: %s is not an OCI layout (no oci-layout file)", ErrNotFound, dir)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	var first *v1.Descriptor
	for i, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		if first == nil {
			first = &m.Manifests[i]
		}
		if d.Platform != nil && d.Platform.Architecture == arch {
			first = &m.Manifests[i]
			break
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%w: OCI layout %s holds no image", ErrNotFound, dir)
	}
	img, err := idx.Image(first.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	return img, nil
}
