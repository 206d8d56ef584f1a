// Command gofn is a test function built with aws-lambda-go. The event's
// "op" field picks what it does; see handle.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Op   string `json:"op"`
	Ms   int    `json:"ms"`
	Size int    `json:"size"`
	Name string `json:"name"`
	Data any    `json:"data"`
}

func handle(ctx context.Context, ev event) (any, error) {
	switch ev.Op {
	case "", "echo":
		fmt.Println("echo:", ev.Data)
		return ev.Data, nil
	case "error":
		return nil, errors.New("boom: " + ev.Name)
	case "panic":
		panic("panic: " + ev.Name)
	case "exit":
		os.Exit(3)
	case "sleep":
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		return "slept", nil
	case "big":
		return strings.Repeat("x", ev.Size), nil
	case "env":
		v, ok := os.LookupEnv(ev.Name)
		return map[string]any{"value": v, "set": ok}, nil
	case "context":
		lc, _ := lambdacontext.FromContext(ctx)
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"requestId":     lc.AwsRequestID,
			"functionArn":   lc.InvokedFunctionArn,
			"remainingMs":   time.Until(deadline).Milliseconds(),
			"clientContext": lc.ClientContext,
			"identity":      lc.Identity,
			"traceId":       ctx.Value("x-amzn-trace-id"),
			"xrayEnv":       os.Getenv("_X_AMZN_TRACE_ID"),
		}, nil
	}
	return nil, fmt.Errorf("unknown op %q", ev.Op)
}

func main() {
	lambda.Start(handle)
}
