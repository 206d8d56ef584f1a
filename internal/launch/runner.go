package launch

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lambdabox/lambdabox/internal/controlplane"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/invoke"
	"github.com/lambdabox/lambdabox/internal/service"
	"github.com/lambdabox/lambdabox/internal/template"
)

// Runner runs the functions of the control plane (controlplane.Runner) on
// a service, with specs a Launcher makes: a function created through the
// API runs exactly as the same function in a template would.
type Runner struct {
	launcher *Launcher
	svc      *service.Service
	adjust   func(name string, spec *service.FunctionSpec)

	mu       sync.Mutex
	deployed map[string]bool // service keys this Runner added
}

// NewRunner returns a Runner that adds to svc the specs l makes. adjust,
// when not nil, is applied to every spec before it is deployed (the
// command sets its log writer there).
func NewRunner(l *Launcher, svc *service.Service, adjust func(name string, spec *service.FunctionSpec)) *Runner {
	return &Runner{launcher: l, svc: svc, adjust: adjust, deployed: map[string]bool{}}
}

var (
	_ controlplane.Runner = (*Runner)(nil)
	_ controlplane.URLer  = (*Runner)(nil)
)

// Deploy implements controlplane.Runner.
func (r *Runner) Deploy(ctx context.Context, fn controlplane.Function) error {
	f := template.Function{
		LogicalID:           fn.Name,
		FunctionName:        fn.Name,
		Handler:             fn.Handler,
		Runtime:             fn.Runtime,
		CodeURI:             fn.CodeDir,
		ImageURI:            fn.ImageURI,
		PackageType:         fn.PackageType,
		Timeout:             int(fn.Timeout / time.Second),
		MemorySize:          fn.MemoryMB,
		Environment:         fn.Env,
		ReservedConcurrency: fn.ReservedConcurrency,
		EphemeralStorageMB:  fn.EphemeralMB,
		TenantIsolation:     fn.TenantIsolation,
	}
	if fn.URL != nil {
		f.FunctionURL = &template.FunctionURL{AuthType: fn.URL.AuthType, InvokeMode: fn.URL.InvokeMode}
	}
	spec, err := r.launcher.Spec(ctx, f, nil)
	if err != nil {
		return err
	}
	spec.Function.Version = fn.Version
	spec.Function.Region = fn.Region
	spec.Function.AccountID = fn.AccountID
	key := service.Key(spec.Function)
	r.mu.Lock()
	defer r.mu.Unlock()
	if fn.URL != nil && spec.Function.WithDefaults().Version == function.DefaultVersion {
		// The port it had before, when it has one: a replace keeps the
		// URL's listener, and a new one takes the port if it is free
		// (else any other will do).
		spec.FunctionURL = "127.0.0.1:0"
		if addr := "127.0.0.1:" + strconv.Itoa(fn.URL.Port); fn.URL.Port != 0 && (r.deployed[key] || free(addr)) {
			spec.FunctionURL = addr
		}
	}
	if r.adjust != nil {
		r.adjust(fn.Name, &spec)
	}
	if r.deployed[key] {
		return r.svc.Replace(ctx, spec)
	}
	if err := r.svc.Add(ctx, spec); err != nil {
		return err
	}
	r.deployed[key] = true
	return nil
}

// free reports whether addr can be listened on now.
func free(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Undeploy implements controlplane.Runner.
func (r *Runner) Undeploy(ctx context.Context, name, version string) error {
	key := service.Key(function.Config{Name: name, Version: version})
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.deployed[key] {
		return nil
	}
	delete(r.deployed, key)
	return r.svc.Remove(ctx, key)
}

// Route implements controlplane.Runner.
func (r *Runner) Route(name, alias string, to *controlplane.Routing) error {
	if to == nil {
		r.svc.RemoveAlias(name, alias)
		return nil
	}
	r.svc.SetAlias(name, alias, invoke.Alias{Version: to.Version, Weights: to.Weights})
	return nil
}

// FunctionURL implements controlplane.URLer.
func (r *Runner) FunctionURL(name string) string {
	if addr := r.svc.FunctionURLAddr(name); addr != "" {
		return "http://" + addr + "/"
	}
	return ""
}
