package main

import (
	"context"
	"errors"

	"github.com/lambdabox/lambdabox/internal/sandbox/process"
	"github.com/lambdabox/lambdabox/internal/service"
)

// serve runs the functions of specs on the process driver until ctx ends;
// the service shuts them down in its one order (see service.Service.Run).
func serve(ctx context.Context, cfg service.Config, specs ...service.FunctionSpec) (err error) {
	contained, err := process.New(process.Config{Log: cfg.Log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, contained.Close(context.Background())) }()
	cfg.Log.Info("containing runtimes with " + contained.Mechanism())
	cfg.Driver = contained
	svc, err := service.New(cfg)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		if err := svc.Add(ctx, spec); err != nil {
			return errors.Join(err, svc.Close(ctx))
		}
	}
	return svc.Run(ctx)
}
