package launch

import (
	"context"
	"log/slog"
	"time"

	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
	"github.com/lambdabox/lambdabox/internal/watch"
)

// Reload is hot reload of one function: it watches the function's folders
// (Launcher.Folders) and, after each change, makes the function's spec
// again (a Go function is rebuilt) and hands it to Replace, which swaps it
// in without failing a request (service.Service.Replace). A spec that
// cannot be made (a Go build error) is logged and the old code keeps
// serving.
type Reload struct {
	Launcher *Launcher
	Function template.Function
	// Env are the --env-vars overrides of the function.
	Env map[string]string
	// Adjust sets, on each new spec, what the caller owns (FunctionURL,
	// Output); nil: nothing.
	Adjust func(*service.FunctionSpec)
	// Replace swaps the new spec in. Required.
	Replace func(ctx context.Context, spec service.FunctionSpec) error
	// Debounce: see watch.Config; default watch.DefaultDebounce.
	Debounce time.Duration
	// Log receives one line per reload; nil discards.
	Log *slog.Logger
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
	name := r.Function.Name()
	w, err := watch.New(watch.Config{
		Dirs:     r.Launcher.Folders(r.Function),
		Debounce: r.Debounce,
		OnChange: func(ctx context.Context, changed []string) {
			t0 := time.Now()
			spec, err := r.Launcher.Spec(ctx, r.Function, r.Env)
			if err != nil {
				log.Error("reload failed; the previous code keeps serving", "function", name, "error", err)
				return
			}
			// Initialise the new code before the swap: invokes meanwhile
			// run on the old code, and none waits for a cold start.
			spec.InitAtStart = true
			if r.Adjust != nil {
				r.Adjust(&spec)
			}
			if err := r.Replace(ctx, spec); err != nil {
				if ctx.Err() == nil {
					log.Error("reload failed", "function", name, "error", err)
				}
				return
			}
			log.Info("reloaded", "function", name, "changed", len(changed), "took", time.Since(t0).Round(time.Millisecond))
		},
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}
