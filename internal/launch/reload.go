package launch

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
	"github.com/lambdabox/lambdabox/internal/watch"
)

// Reload is hot reload: one watcher over the folders of every target
// (Launcher.Folders) and, after each change, for each function whose
// folders changed, its spec made again (a Go function is rebuilt) and
// handed to Replace, which swaps it in without failing a request
// (service.Service.Replace). The functions touched by one change reload
// at once. A spec that cannot be made (a Go build error) is logged and the
// old code keeps serving.
type Reload struct {
	Launcher *Launcher
	Targets  []Target
	// Replace swaps the new spec in. Required.
	Replace func(ctx context.Context, spec service.FunctionSpec) error
	// Debounce: see watch.Config; default watch.DefaultDebounce.
	Debounce time.Duration
	// Log receives one line per reload; nil discards.
	Log *slog.Logger
}

// Target is one function hot reload swaps.
type Target struct {
	Function template.Function
	// Env are the --env-vars overrides of the function.
	Env map[string]string
	// Adjust sets, on each new spec, what the caller owns (FunctionURL,
	// Output); nil: nothing.
	Adjust func(*service.FunctionSpec)
}

// Watchable reports whether f has local folders to watch.
func (l *Launcher) Watchable(f template.Function) bool { return len(l.Folders(f)) > 0 }

// Run watches until ctx ends. It returns an error only when the folders
// cannot be watched.
func (r Reload) Run(ctx context.Context) error {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var dirs []string
	seen := map[string]bool{}
	for _, t := range r.Targets {
		for _, d := range r.Launcher.Folders(t.Function) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	w, err := watch.New(watch.Config{
		Dirs:     dirs,
		Debounce: r.Debounce,
		OnChange: func(ctx context.Context, changed []string) {
			var wg sync.WaitGroup
			for _, t := range r.Targets {
				if n := r.touched(t.Function, changed); n > 0 {
					wg.Go(func() { r.reload(ctx, t, n, log) })
				}
			}
			wg.Wait()
		},
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// touched counts the changed paths inside f's folders.
func (r Reload) touched(f template.Function, changed []string) int {
	n := 0
	for _, p := range changed {
		for _, d := range r.Launcher.Folders(f) {
			if p == d || strings.HasPrefix(p, d+string(filepath.Separator)) {
				n++
				break
			}
		}
	}
	return n
}

func (r Reload) reload(ctx context.Context, t Target, changed int, log *slog.Logger) {
	name := t.Function.Name()
	t0 := time.Now()
	spec, err := r.Launcher.Spec(ctx, t.Function, t.Env)
	if err != nil {
		log.Error("reload failed; the previous code keeps serving", "function", name, "error", err)
		return
	}
	// Initialise the new code before the swap: invokes meanwhile run on
	// the old code, and none waits for a cold start.
	spec.InitAtStart = true
	if t.Adjust != nil {
		t.Adjust(&spec)
	}
	if err := r.Replace(ctx, spec); err != nil {
		if ctx.Err() == nil {
			log.Error("reload failed", "function", name, "error", err)
		}
		return
	}
	log.Info("reloaded", "function", name, "changed", changed, "took", time.Since(t0).Round(time.Millisecond))
}
