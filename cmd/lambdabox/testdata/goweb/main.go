// Command goweb is a function URL test function built with aws-lambda-go:
// it answers a payload 2.0 event with what it saw, as JSON, and a cookie,
// and streams from /stream.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// handle answers /stream with a streamed response (five parts, 200 ms
// apart) and anything else with a buffered one.
func handle(_ context.Context, req events.LambdaFunctionURLRequest) (any, error) {
	if req.RawPath == "/stream" {
		pr, pw := io.Pipe()
		go func() {
			for i := range 5 {
				if i > 0 {
					time.Sleep(200 * time.Millisecond)
				}
				fmt.Fprintf(pw, "go part %d;", i)
			}
			pw.Close()
		}()
		return &events.LambdaFunctionURLStreamingResponse{StatusCode: 203,
			Headers: map[string]string{"Content-Type": "text/plain", "X-From": "go"}, Body: pr}, nil
	}
	if req.IsBase64Encoded {
		return events.LambdaFunctionURLResponse{StatusCode: 200, Body: req.Body, IsBase64Encoded: true,
			Headers: map[string]string{"Content-Type": "application/octet-stream"}}, nil
	}
	b, _ := json.Marshal(map[string]any{
		"rawPath": req.RawPath, "rawQueryString": req.RawQueryString, "cookies": req.Cookies,
		"query": req.QueryStringParameters, "method": req.RequestContext.HTTP.Method, "body": req.Body,
	})
	return events.LambdaFunctionURLResponse{StatusCode: 200, Body: string(b), Cookies: []string{"from=go"},
		Headers: map[string]string{"Content-Type": "application/json"}}, nil
}

func main() { lambda.Start(handle) }
