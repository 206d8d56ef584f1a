package environment

import (
	"path"
	"strings"
	"testing"
)

// cleanPath lets a path skip the mux only when path.Clean would leave it
// as it is, so that the mux's redirect of an unclean path is never skipped.
func FuzzCleanPath(f *testing.F) {
	for _, p := range []string{
		"/2018-06-01/runtime/invocation/next", "/2018-06-01/runtime/invocation/id-1/response",
		"/2018-06-01/../2020-01-01/extension/register", "/2018-06-01//runtime", "/2018-06-01/./x",
		"/2018-06-01/x/", "/2018-06-01/x/.", "/2018-06-01/x/..", "/2018-06-01/.../x", "/2018-06-01/a..b",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if strings.HasPrefix(p, "/") && cleanPath(p) && path.Clean(p) != p {
			t.Errorf("cleanPath(%q) but path.Clean gives %q", p, path.Clean(p))
		}
	})
}

func TestCleanPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/2018-06-01/runtime/invocation/next":          true,
		"/2018-06-01/runtime/invocation/id-1/response": true,
		"/2018-06-01/.../x":                            true,
		"/2018-06-01/../2020-01-01/extension/register": false,
		"/2018-06-01//runtime/invocation/next":         false,
		"/2018-06-01/./runtime":                        false,
		"/2018-06-01/runtime/":                         false,
		"/2018-06-01/runtime/..":                       false,
		"/2018-06-01/runtime/.":                        false,
	} {
		if got := cleanPath(p); got != want {
			t.Errorf("cleanPath(%q) = %v, want %v", p, got, want)
		}
	}
}
