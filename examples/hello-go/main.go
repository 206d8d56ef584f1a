// Command hello-go is the bundled example function: a Go handler built with
// aws-lambda-go that greets the caller. Build it as "bootstrap" and run it
// under lambdabox rie (see the README).
package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Name string `json:"name"`
}

type response struct {
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

func handler(ctx context.Context, req request) (response, error) {
	if req.Name == "" {
		req.Name = "world"
	}
	lc, _ := lambdacontext.FromContext(ctx)
	fmt.Printf("greeting %s\n", req.Name)
	return response{Message: "Hello, " + req.Name + "!", RequestID: lc.AwsRequestID}, nil
}

func main() {
	lambda.Start(handler)
}
