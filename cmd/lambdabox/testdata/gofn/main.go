// Command gofn is a test function built with aws-lambda-go. The event's
// "op" field picks what it does; see handle.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Op     string `json:"op"`
	Chunks int    `json:"chunks"`
	Ms     int    `json:"ms"`
	Size   int    `json:"size"`
	Name   string `json:"name"`
	Data   any    `json:"data"`
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
	case "info":
		// Who ran it, and when: for concurrency tests.
		start := time.Now()
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		lc, _ := lambdacontext.FromContext(ctx)
		return map[string]any{"pid": os.Getpid(), "ppid": os.Getppid(), "requestId": lc.AwsRequestID,
			"start": start.UnixNano(), "end": time.Now().UnixNano(),
			"maxConcurrency": os.Getenv("AWS_LAMBDA_MAX_CONCURRENCY")}, nil
	case "big":
		return strings.Repeat("x", ev.Size), nil
	case "env":
		v, ok := os.LookupEnv(ev.Name)
		return map[string]any{"value": v, "set": ok}, nil
	case "stream", "streamerror":
		// A response streamed as it is written: aws-lambda-go streams any
		// io.Reader a handler returns.
		pr, pw := io.Pipe()
		go func() {
			for i := range ev.Chunks {
				if i > 0 {
					time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
				}
				if _, err := fmt.Fprintf(pw, "chunk %d;", i); err != nil {
					return
				}
			}
			if ev.Op == "streamerror" {
				pw.CloseWithError(errors.New("stream broke"))
				return
			}
			pw.Close()
		}()
		return pr, nil
	case "streambig":
		// Through a pipe: aws-lambda-go streams readers that marshal to {}.
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, io.LimitReader(zeros{}, int64(ev.Size)))
			pw.CloseWithError(err)
		}()
		return pr, nil
	case "streamurl":
		return &events.LambdaFunctionURLStreamingResponse{
			StatusCode: 201,
			Headers:    map[string]string{"Content-Type": "text/plain", "X-From": "go"},
			Body:       strings.NewReader("streamed through a function URL"),
		}, nil
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

// zeros is an endless reader of 'z' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

func main() {
	lambda.Start(handle)
}
