package launch

import (
	"context"
	"fmt"
	"runtime"

	"github.com/lambdabox/lambdabox/internal/build"
)

// baseImage is the image that Zip functions of rt run in on the container
// driver: Config.BaseImage's answer when it is set; else lambdabox's base
// for the runtime's recipe (python3.12 runs on python3.13's, as lambdabox
// build does), made by Config.Bases (from the layer cache once built) and
// loaded into the engine once, under a tag that names its digest.
func (l *Launcher) baseImage(ctx context.Context, rt string) (string, error) {
	if l.cfg.BaseImage != nil {
		return l.cfg.BaseImage(rt)
	}
	if l.cfg.Bases == nil || l.cfg.LoadImage == nil {
		return "", fmt.Errorf("no base images wired for Zip functions on the container driver")
	}
	r, err := build.LookupRuntime(rt)
	if err != nil {
		return "", err
	}
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	if ref, ok := l.bases[r.Recipe]; ok {
		return ref, nil
	}
	img, err := l.cfg.Bases.Base(ctx, r.Recipe, runtime.GOARCH)
	if err != nil {
		return "", fmt.Errorf("lambdabox's %s base image: %w", r.Recipe, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("lambdabox's %s base image: %w", r.Recipe, err)
	}
	ref := "localhost/lambdabox-serve/" + r.Recipe + ":" + d.Hex[:12]
	if l.cfg.HasImage == nil || !l.cfg.HasImage(ctx, ref) {
		if err := l.cfg.LoadImage(ctx, img, ref); err != nil {
			return "", fmt.Errorf("loading lambdabox's %s base image: %w", r.Recipe, err)
		}
	}
	if l.bases == nil {
		l.bases = map[string]string{}
	}
	l.bases[r.Recipe] = ref
	return ref, nil
}
