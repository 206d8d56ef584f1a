package base

import (
	"context"
	"errors"

	"github.com/lambdabox/lambdabox/internal/image"
	"github.com/lambdabox/lambdabox/internal/recipe"
)

// errNpmUnsupported is returned for recipes with [*.npm]. aws-lambda-ric
// builds a native addon (aws-lambda-cpp and curl, with cmake, autoconf,
// automake, libtool and g++) that must match the image's Node ABI: Debian
// bookworm's nodejs is 18 (ABI 108), so the host's npm and Node (20 in CI)
// cannot build it. Doing it right means running npm in a chroot of a build
// root with the image's nodejs and those tools; until then there is no
// nodejs recipe.
var errNpmUnsupported = errors.New("npm packages in recipes are not supported yet: aws-lambda-ric's native addon must be built against the image's Node (Debian's nodejs 18) in a build root, which lambdabox does not do yet")

func (b *builder) npmResolve(ctx context.Context, n *recipe.Npm) ([]string, error) {
	return nil, errNpmUnsupported
}

func (b *builder) npmInstall(ctx context.Context, n *recipe.Npm, pins []string, t *image.Tree) error {
	return errNpmUnsupported
}
