package httpfront

import (
	"errors"
	"maps"
	"testing"
)

func TestRouterMatch(t *testing.T) {
	routes := []Route{
		{Method: "GET", Path: "/"},
		{Method: "GET", Path: "/items"},
		{Method: "GET", Path: "/items/{id}"},
		{Method: "ANY", Path: "/items/{id}"},
		{Method: "GET", Path: "/items/special"},
		{Method: "GET", Path: "/items/{id}/parts/{part}"},
		{Method: "ANY", Path: "/items/{proxy+}"},
		{Method: "POST", Path: "/files/{path+}"},
		{Path: "/{proxy+}"}, // ANY by default
	}
	rt, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		key          string // "" for no match
		params       map[string]string
	}{
		{"GET", "/", "GET /", nil},
		{"POST", "/", "", nil}, // {proxy+} needs at least one segment
		{"GET", "/items", "GET /items", nil},
		{"GET", "/items/42", "GET /items/{id}", map[string]string{"id": "42"}},
		{"DELETE", "/items/42", "ANY /items/{id}", map[string]string{"id": "42"}},
		{"GET", "/items/special", "GET /items/special", nil},
		{"PUT", "/items/special", "ANY /items/{id}", map[string]string{"id": "special"}},
		{"GET", "/items/a%20b", "GET /items/{id}", map[string]string{"id": "a b"}},
		{"GET", "/items/a%2Fb", "GET /items/{id}", map[string]string{"id": "a/b"}},
		{"GET", "/items/7/parts/9", "GET /items/{id}/parts/{part}", map[string]string{"id": "7", "part": "9"}},
		{"GET", "/items/7/parts", "ANY /items/{proxy+}", map[string]string{"proxy": "7/parts"}},
		{"GET", "/items/7/parts/9/x", "ANY /items/{proxy+}", map[string]string{"proxy": "7/parts/9/x"}},
		{"GET", "/items/", "ANY /{proxy+}", map[string]string{"proxy": "items/"}},
		{"POST", "/files/a/b/c.txt", "POST /files/{path+}", map[string]string{"path": "a/b/c.txt"}},
		{"GET", "/files/a/b/c.txt", "ANY /{proxy+}", map[string]string{"proxy": "files/a/b/c.txt"}},
		{"PATCH", "/anything/at/all", "ANY /{proxy+}", map[string]string{"proxy": "anything/at/all"}},
		{"GET", "/bad%zzescape", "", nil},
	} {
		m, ok := rt.Match(tc.method, tc.path)
		if tc.key == "" {
			if ok {
				t.Errorf("%s %s matched %s, want no match", tc.method, tc.path, m.Route.Key())
			}
			continue
		}
		if !ok {
			t.Errorf("%s %s: no match, want %s", tc.method, tc.path, tc.key)
			continue
		}
		if got := m.Route.Key(); got != tc.key || !maps.Equal(m.Params, tc.params) {
			t.Errorf("%s %s: %s %v, want %s %v", tc.method, tc.path, got, m.Params, tc.key, tc.params)
		}
	}
}

func TestRouterDefault(t *testing.T) {
	rt, err := NewRouter([]Route{{Method: "GET", Path: "/a"}, {Path: DefaultRoute}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/a": "GET /a", "/b": "$default", "/": "$default"} {
		m, ok := rt.Match("GET", path)
		if !ok || m.Route.Key() != want {
			t.Errorf("%s: %v %v, want %s", path, m, ok, want)
		}
	}
	if m, _ := rt.Match("POST", "/a"); m.Route.Key() != "$default" {
		t.Errorf("POST /a: %s, want $default", m.Route.Key())
	}
}

func TestNewRouterErrors(t *testing.T) {
	for _, routes := range [][]Route{
		{{Method: "GET", Path: "items"}},
		{{Method: "GET", Path: "/items/"}},
		{{Method: "GET", Path: "/a//b"}},
		{{Method: "GET", Path: "/{proxy+}/x"}},
		{{Method: "GET", Path: "/{}"}},
		{{Method: "GET", Path: "/x{id}"}},
		{{Method: "GET", Path: "/{id}y"}},
		{{Method: "GET", Path: "/{a}/{a}"}},
		{{Method: "FETCH", Path: "/a"}},
		{{Method: "get", Path: "/a"}},
		{{Method: "GET", Path: "/a", Version: "3.0"}},
		{{Method: "GET", Path: "/{id}"}, {Method: "GET", Path: "/{name}"}},
		{{Path: DefaultRoute}, {Path: DefaultRoute}},
	} {
		if _, err := NewRouter(routes); !errors.Is(err, ErrRoute) {
			t.Errorf("%+v: err = %v, want ErrRoute", routes, err)
		}
	}
}

// FuzzRouterMatch checks that no path makes the router panic, and that
// every match's parameters are non-empty.
func FuzzRouterMatch(f *testing.F) {
	rt, err := NewRouter([]Route{
		{Method: "GET", Path: "/items/{id}"},
		{Path: "/items/{id}/{rest+}"},
		{Path: "/static/x"},
		{Path: "/{proxy+}"},
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/", "/items/1", "/items/1/2/3", "//", "/%", "/static/x", "x"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		m, ok := rt.Match(method, path)
		if !ok {
			return
		}
		for k, v := range m.Params {
			if v == "" {
				t.Errorf("%s %q: empty parameter %s", method, path, k)
			}
		}
	})
}
