package launch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
)

// One watcher serves every function: a change in a function's folder
// reloads that function; a change in a shared layer reloads both.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "layer"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "app.py"), []byte("x"), 0o644)
	}
	l := newLauncher(t, Config{Dir: dir})
	layer := []template.Layer{{LogicalID: "L", ContentURI: "layer"}}
	fa := template.Function{LogicalID: "A", Runtime: "python3.12", Handler: "app.h", CodeURI: "a", Layers: layer}
	fb := template.Function{LogicalID: "B", Runtime: "python3.12", Handler: "app.h", CodeURI: "b", Layers: layer}
	got := make(chan string, 10)
	r := Reload{
		Launcher: l,
		Debounce: 200 * time.Millisecond, // above a loaded machine's delays between one write's events
		Targets: []Target{
			{Function: fa, Adjust: func(s *service.FunctionSpec) { s.FunctionURL = "kept" }},
			{Function: fb, Env: map[string]string{"K": "v"}},
		},
		Replace: func(_ context.Context, s service.FunctionSpec) error {
			if !s.InitAtStart || s.Function.Name == "A" && s.FunctionURL != "kept" || s.Function.Name == "B" && env(s.Function.Env, "K") != "v" {
				t.Errorf("spec %+v", s)
			}
			got <- s.Function.Name
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	collect := func(n int) []string {
		t.Helper()
		var names []string
		for range n {
			select {
			case name := <-got:
				names = append(names, name)
			case <-time.After(5 * time.Second):
				t.Fatalf("reloads: %q, want %d", names, n)
			}
		}
		sort.Strings(names)
		select {
		case name := <-got:
			t.Fatalf("an extra reload of %s", name)
		case <-time.After(500 * time.Millisecond):
		}
		return names
	}
	os.WriteFile(filepath.Join(dir, "a", "app.py"), []byte("y"), 0o644)
	if names := collect(1); !slices.Equal(names, []string{"A"}) {
		t.Errorf("a's change reloaded %q", names)
	}
	os.WriteFile(filepath.Join(dir, "layer", "app.py"), []byte("y"), 0o644)
	if names := collect(2); !slices.Equal(names, []string{"A", "B"}) {
		t.Errorf("the layer's change reloaded %q", names)
	}
}
