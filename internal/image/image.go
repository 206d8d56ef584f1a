package image

import (
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer is a gzip-compressed tar layer on disk. Build remembers its digests
// in a file beside it (Path + ".digests.json"), so that later builds from
// the same layer need not read it again.
type Layer struct {
	// Path is the .tar.gz file.
	Path string
	// Comment is the layer's history entry, e.g. "lambdabox os: 42 Debian packages".
	Comment string
}

// Config is the image configuration. Zero values are the defaults noted.
type Config struct {
	// Env is the environment, as KEY=VALUE.
	Env []string
	// Entrypoint is the image ENTRYPOINT.
	Entrypoint []string
	// Cmd is the image CMD; base images leave it empty.
	Cmd []string
	// WorkingDir is the image WORKDIR.
	WorkingDir string
	// Labels are image labels.
	Labels map[string]string
	// OS and Architecture default to linux and amd64.
	OS, Architecture string
	// Variant is the CPU variant (e.g. "v8" for arm64); empty by default.
	Variant string
	// Created is the creation time of the config and every history entry
	// (SOURCE_DATE_EPOCH); the zero value means the Unix epoch.
	Created time.Time
}

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Entrypoint) == 0 && len(c.Cmd) == 0 {
		return errors.New("image config needs an entrypoint or a cmd")
	}
	switch c.Architecture {
	case "", "amd64", "arm64":
	default:
		return fmt.Errorf("architecture %q: want amd64 or arm64", c.Architecture)
	}
	return nil
}

// Build assembles a single-platform OCI image from layers, bottom first.
func Build(layers []Layer, cfg Config) (v1.Image, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		layer, err := openLayer(l.Path)
		if err != nil {
			return nil, fmt.Errorf("opening layer %s: %w", l.Path, err)
		}
		adds = append(adds, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History: v1.History{
				Created:   v1.Time{Time: created},
				CreatedBy: "lambdabox",
				Comment:   l.Comment,
			},
		})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS = "linux"
	if cfg.OS != "" {
		cf.OS = cfg.OS
	}
	cf.Architecture = "amd64"
	if cfg.Architecture != "" {
		cf.Architecture = cfg.Architecture
	}
	cf.Variant = cfg.Variant
	cf.Config.Env = cfg.Env
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.Labels = cfg.Labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	return img, nil
}
