// Command dotnetstandin stands in for the .NET runtime's dotnet in the
// dotnet8 function image tests: installed as /var/lang/bin/dotnet, it serves
// the Runtime API with aws-lambda-go and answers each invoke with the
// command line the bootstrap gave it, so the test sees which assembly of
// /var/task would have run.
package main

import (
	"context"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(_ context.Context, ev map[string]any) (map[string]any, error) {
		_, err := os.Stat("/var/task/Newtonsoft.Json.dll")
		return map[string]any{
			"dotnet":  strings.Join(os.Args[1:], " "),
			"handler": os.Getenv("_HANDLER"),
			"name":    ev["name"],
			"deps":    err == nil,
		}, nil
	})
}
