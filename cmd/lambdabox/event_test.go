package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awsevents "github.com/aws/aws-lambda-go/events"

	"github.com/lambdabox/lambdabox/internal/events"
)

// runEventCmd runs "lambdabox event args..." in process.
func runEventCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"event"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestEventCmdList(t *testing.T) {
	out, err := runEventCmd(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range events.Sources() {
		if !strings.Contains(out, s.Name+"  ") || !strings.Contains(out, s.Description) {
			t.Errorf("the list lacks %s:\n%s", s.Name, out)
		}
	}
}

// TestEventCmdFlags checks that each flag reaches its option: the command
// prints what events.Generate makes of the same options.
func TestEventCmdFlags(t *testing.T) {
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"from":"file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		source string
		opts   events.Options
	}{
		{[]string{"s3", "--bucket", "photos", "--key", "a b.jpg", "--region", "eu-west-1", "--account", "111122223333"},
			"s3", events.Options{Bucket: "photos", Key: "a b.jpg", Region: "eu-west-1", Account: "111122223333"}},
		{[]string{"sqs", "--message", "hello", "--queue", "q"}, "sqs", events.Options{Message: "hello", Queue: "q"}},
		{[]string{"sns", "--message", "hello", "--topic", "t"}, "sns", events.Options{Message: "hello", Topic: "t"}},
		{[]string{"dynamodb", "--message", "m", "--table", "tbl"}, "dynamodb", events.Options{Message: "m", Table: "tbl"}},
		{[]string{"kinesis", "--data", "d", "--stream", "s"}, "kinesis", events.Options{Data: "d", Stream: "s"}},
		{[]string{"eventbridge", "--event-source", "my.app", "--detail-type", "Thing", "--detail", `{"a":1}`},
			"eventbridge", events.Options{EventSource: "my.app", DetailType: "Thing", Detail: `{"a":1}`}},
		{[]string{"apigateway-v1", "--method", "POST", "--path", "/items/1?x=y", "--route", "POST /items/{id}",
			"--body", "@" + bodyFile, "--header", "X-A: 1", "--header", "X-A: 2", "--stage", "dev"},
			"apigateway-v1", events.Options{Method: "POST", Path: "/items/1?x=y", Route: "POST /items/{id}",
				Body: `{"from":"file"}`, Headers: []string{"X-A: 1", "X-A: 2"}, Stage: "dev"}},
		{[]string{"apigateway-v2", "--path", "/a/b", "--route", "/a/{b}"}, "apigateway-v2", events.Options{Path: "/a/b", Route: "/a/{b}"}},
		{[]string{"function-url", "--method", "PUT", "--body", "x", "--content-type", "text/plain", "--time", "2025-02-03T04:05:06Z"},
			"function-url", events.Options{Method: "PUT", Body: "x", ContentType: "text/plain", Time: time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			out, err := runEventCmd(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := events.Generate(tc.source, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("lambdabox event %s printed\n%s\nwant\n%s", strings.Join(tc.args, " "), out, want)
			}
		})
	}
}

func TestEventCmdErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown event source "nope"; one of: apigateway-v1,`},
		{[]string{"sqs", "--bucket", "b"}, "--bucket does not apply to sqs events"},
		{[]string{"s3", "--time", "yesterday"}, "--time"},
		{[]string{"function-url", "--body", "@/nonexistent/file"}, "reading the body"},
		{[]string{"apigateway-v1", "--path", "/x", "--route", "/items/{id}"}, "does not match the route"},
		{[]string{"s3", "sqs"}, "accepts at most 1 arg"},
	} {
		if _, err := runEventCmd(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}

// TestEventBinary runs the built binary, as a user pipes its output.
func TestEventBinary(t *testing.T) {
	out, err := exec.Command(lambdaboxBin, "event", "sqs", "--message", "piped").Output()
	if err != nil {
		t.Fatal(err)
	}
	var e awsevents.SQSEvent
	if err := json.Unmarshal(out, &e); err != nil || len(e.Records) != 1 || e.Records[0].Body != "piped" {
		t.Errorf("%v %+v", err, e)
	}
}
