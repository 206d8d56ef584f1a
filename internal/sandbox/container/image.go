package container

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/lambdabox/lambdabox/internal/image"
)

// HasImage reports whether the engine has the image ref.
func (e *Engine) HasImage(ctx context.Context, ref string) bool {
	_, err := e.cli.ImageInspect(ctx, ref)
	return err == nil
}

// LoadImage loads img into the engine, tagged ref, through the engine's
// API (as docker load does), so that drivers can run it.
func (e *Engine) LoadImage(ctx context.Context, img v1.Image, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	for attempt := 1; ; attempt++ {
		err := e.load(ctx, img, tag, ref)
		// A layer lost to a concurrent removal (image.LostLayer) fails
		// the load, or ends it without the image.
		if err == nil || attempt == image.LoadAttempts || ctx.Err() != nil ||
			!errors.Is(err, errNotListed) && !image.LostLayer(err.Error()) {
			return err
		}
		e.log.Info("loading the image again: the engine lost a layer", "image", ref, "error", err)
	}
}

var errNotListed = errors.New("the engine does not list it after the load")

// load loads img as tag (ref) once.
func (e *Engine) load(ctx context.Context, img v1.Image, tag name.Tag, ref string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	res, err := e.cli.ImageLoad(ctx, pr)
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("loading image %s: %w", ref, err)
	}
	defer res.Close()
	// The engine answers with its progress; reading it to the end waits
	// for the load to finish.
	if _, err := io.Copy(io.Discard, res); err != nil {
		return fmt.Errorf("loading image %s: %w", ref, err)
	}
	pr.Close()
	if !e.HasImage(ctx, ref) {
		return fmt.Errorf("loading image %s: %w", ref, errNotListed)
	}
	return nil
}
