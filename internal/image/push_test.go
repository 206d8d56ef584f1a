package image

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push goes through Keychain, whose ECR helper stays out of the way of
// registries that are not ECR: no credentials, no error, no AWS calls.
func TestPushAnonymousToLocalRegistry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no docker config credentials
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/lambdabox/test:1")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := Keychain.Resolve(ref.Context())
	if err != nil || auth != authn.Anonymous {
		t.Fatalf("Keychain.Resolve(%s) = %v, %v; want Anonymous", ref, auth, err)
	}
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(context.Background(), ref, img); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); desc.Digest != want {
		t.Fatalf("pushed %s, registry has %s", want, desc.Digest)
	}
}
