package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lambdabox/lambdabox/internal/events"
)

// addEventFlags binds the events.Options to flags named as
// events.Source.Options names them.
func addEventFlags(fs *pflag.FlagSet, o *events.Options, eventTime *string) {
	fs.StringVar(&o.Method, "method", "", "HTTP method (default GET)")
	fs.StringVar(&o.Path, "path", "", "request path, with an optional ?query (default /path/to/resource)")
	fs.StringVar(&o.Body, "body", "", "request body; @file reads it from a file")
	fs.StringVar(&o.ContentType, "content-type", "", "request content type (default application/json when there is a body)")
	fs.StringArrayVar(&o.Headers, "header", nil, `extra request header "Name: value" (repeatable)`)
	fs.StringVar(&o.Route, "route", "", `API Gateway route the path matches, e.g. "GET /items/{id}" (default "ANY /{proxy+}")`)
	fs.StringVar(&o.Stage, "stage", "", "API Gateway stage (default prod for REST, $default for HTTP APIs)")
	fs.StringVar(&o.Bucket, "bucket", "", "S3 bucket (default example-bucket)")
	fs.StringVar(&o.Key, "key", "", "S3 object key (default test/key)")
	fs.StringVar(&o.Message, "message", "", "SQS message body, SNS message or DynamoDB item Message attribute")
	fs.StringVar(&o.Queue, "queue", "", "SQS queue name (default example-queue)")
	fs.StringVar(&o.Topic, "topic", "", "SNS topic name (default example-topic)")
	fs.StringVar(&o.Table, "table", "", "DynamoDB table name (default example-table)")
	fs.StringVar(&o.Stream, "stream", "", "Kinesis stream name (default example-stream)")
	fs.StringVar(&o.Data, "data", "", "Kinesis record data, before base64 (default a greeting)")
	fs.StringVar(&o.EventSource, "event-source", "", "EventBridge source (default aws.events)")
	fs.StringVar(&o.DetailType, "detail-type", "", "EventBridge detail-type (default Scheduled Event)")
	fs.StringVar(&o.Detail, "detail", "", "EventBridge detail, JSON (default {})")
	fs.StringVar(&o.Region, "region", "", "AWS region (default us-east-1)")
	fs.StringVar(&o.Account, "account", "", "AWS account id (default 123456789012)")
	fs.StringVar(eventTime, "time", "", `event time, RFC 3339 or "now" (default `+events.DefaultTime.Format(time.RFC3339)+")")
}

func newEventCmd() *cobra.Command {
	var o events.Options
	var eventTime string
	cmd := &cobra.Command{
		Use:   "event [<source>] [flags]",
		Short: "Print a sample event of an event source",
		Long: `event prints a sample event of an event source as JSON, to pipe into an invoke.
Without a source it lists the sources. The events have the shapes of
aws-lambda-go's events types; flags change the commonly tweaked fields.`,
		Example: `  lambdabox event s3 --bucket photos --key "2024/cat.jpg"
  lambdabox event apigateway-v2 --method POST --path "/items/42?draft=1" --route "POST /items/{id}" --body '{"name":"x"}'
  lambdabox event sqs --message hello | curl -d @- http://127.0.0.1:9000/2015-03-31/functions/function/invocations`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, s := range events.Sources() {
					fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Description)
				}
				return tw.Flush()
			}
			src, ok := events.Lookup(args[0])
			if !ok {
				var names []string
				for _, s := range events.Sources() {
					names = append(names, s.Name)
				}
				return fmt.Errorf("unknown event source %q; one of: %s", args[0], strings.Join(names, ", "))
			}
			var bad []string
			cmd.Flags().Visit(func(f *pflag.Flag) {
				if !slices.Contains(src.Options, f.Name) {
					bad = append(bad, "--"+f.Name)
				}
			})
			if len(bad) > 0 {
				return fmt.Errorf("%s does not apply to %s events; they take --%s", strings.Join(bad, ", "), src.Name, strings.Join(src.Options, ", --"))
			}
			if file, ok := strings.CutPrefix(o.Body, "@"); ok {
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading the body: %w", err)
				}
				o.Body = string(b)
			}
			switch eventTime {
			case "":
			case "now":
				o.Time = time.Now()
			default:
				t, err := time.Parse(time.RFC3339, eventTime)
				if err != nil {
					return fmt.Errorf("--time: %w", err)
				}
				o.Time = t
			}
			b, err := events.Generate(src.Name, o)
			if err != nil {
				return err
			}
			_, err = out.Write(b)
			return err
		},
	}
	addEventFlags(cmd.Flags(), &o, &eventTime)
	return cmd
}
