// Command gofn is a provided.al2023 test function built with
// aws-lambda-go: it answers with the version that ran, its CODE variable
// and the ARN it was invoked by.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func main() {
	lambda.Start(func(ctx context.Context, ev map[string]any) (map[string]any, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		return map[string]any{
			"version": os.Getenv("AWS_LAMBDA_FUNCTION_VERSION"),
			"code":    os.Getenv("CODE"),
			"arn":     lc.InvokedFunctionArn,
			"event":   ev,
		}, nil
	})
}
