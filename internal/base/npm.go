package base

import (
	"context"
	"errors"

	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// errNpmUnsupported is returned until npm recipes are implemented.
var errNpmUnsupported = errors.New("npm packages in recipes are not supported yet")

func (b *builder) npmResolve(ctx context.Context, n *recipe.Npm) ([]string, error) {
	return nil, errNpmUnsupported
}

func (b *builder) npmInstall(ctx context.Context, n *recipe.Npm, pins []string, t *image.Tree) error {
	return errNpmUnsupported
}
