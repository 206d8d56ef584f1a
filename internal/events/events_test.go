package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden are the samples checked against testdata/<name>.json: every source
// with its defaults, and some with options.
var golden = []struct {
	name, source string
	opts         Options
}{
	{"apigateway-v1", "apigateway-v1", Options{}},
	{"apigateway-v2", "apigateway-v2", Options{}},
	{"function-url", "function-url", Options{}},
	{"s3", "s3", Options{}},
	{"sqs", "sqs", Options{}},
	{"sns", "sns", Options{}},
	{"dynamodb", "dynamodb", Options{}},
	{"eventbridge", "eventbridge", Options{}},
	{"kinesis", "kinesis", Options{}},
	{"apigateway-v1-post", "apigateway-v1", Options{
		Method: "post", Path: "/items/42?tag=a&tag=b", Route: "POST /items/{id}", Body: `{"name":"widget"}`,
		Headers: []string{"X-Multi: one", "X-Multi: two", "Cookie: session=abc"}, Stage: "dev",
	}},
	{"apigateway-v2-post", "apigateway-v2", Options{
		Method: "POST", Path: "/items/42?tag=a&tag=b", Route: "POST /items/{id}", Body: `{"name":"widget"}`,
		Headers: []string{"X-Multi: one", "X-Multi: two", "Cookie: session=abc; theme=dark"},
	}},
	{"function-url-binary", "function-url", Options{
		Method: "PUT", Path: "/upload", Body: "\x89PNG\r\n\x1a\n\x00", ContentType: "image/png",
		Region: "eu-west-1", Account: "111122223333", Time: time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC),
	}},
	{"s3-options", "s3", Options{Bucket: "photos", Key: "2024/my cat.jpg", Region: "eu-west-1"}},
	{"eventbridge-options", "eventbridge", Options{EventSource: "com.example.orders", DetailType: "OrderPlaced", Detail: `{"orderId":"o-1"}`}},
}

func TestEventGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			got, err := Generate(g.source, g.opts)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", g.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run go test -update to accept):\n%s", g.name, path, got)
			}
		})
	}
}

// TestEventRoundTrip checks that every sample decodes into its
// aws-lambda-go type with no field left over, and encodes back to the same
// JSON.
func TestEventRoundTrip(t *testing.T) {
	types := map[string]any{
		"apigateway-v1": &events.APIGatewayProxyRequest{},
		"apigateway-v2": &events.APIGatewayV2HTTPRequest{},
		"function-url":  &events.APIGatewayV2HTTPRequest{},
		"s3":            &events.S3Event{},
		"sqs":           &events.SQSEvent{},
		"sns":           &events.SNSEvent{},
		"dynamodb":      &events.DynamoDBEvent{},
		"eventbridge":   &events.CloudWatchEvent{},
		"kinesis":       &events.KinesisEvent{},
	}
	if len(types) != len(Sources()) {
		t.Fatalf("%d types for %d sources", len(types), len(Sources()))
	}
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			b, err := Generate(g.source, g.opts)
			if err != nil {
				t.Fatal(err)
			}
			typ := reflect.TypeOf(types[g.source]).Elem()
			v := reflect.New(typ).Interface()
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decoding into %s: %v", typ, err)
			}
			again, err := marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("%s does not round-trip:\n%s\nbecame\n%s", typ, b, again)
			}
			if g.source == "function-url" {
				// aws-lambda-go's own function URL type decodes it too.
				var e events.LambdaFunctionURLRequest
				if err := json.Unmarshal(b, &e); err != nil || e.Version != "2.0" || e.RequestContext.HTTP.Method == "" {
					t.Errorf("decoding into LambdaFunctionURLRequest: %v %+v", err, e)
				}
			}
			sample, _ := Sample(g.source, g.opts)
			if reflect.TypeOf(sample) != reflect.PointerTo(typ) {
				t.Errorf("Sample gives %T, want *%s", sample, typ)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	v, err := Sample("s3", Options{Bucket: "b", Key: "a b/c+d.txt"})
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(*events.S3Event).Records[0].S3.Object
	if obj.Key != "a+b/c%2Bd.txt" || obj.URLDecodedKey != "a b/c+d.txt" {
		t.Errorf("key %q decoded %q", obj.Key, obj.URLDecodedKey)
	}

	v, _ = Sample("sqs", Options{Message: "hi"})
	msg := v.(*events.SQSEvent).Records[0]
	if msg.Body != "hi" || msg.Md5OfBody != "49f68a5c8493ec2c0bf489821c21fc3b" {
		t.Errorf("body %q md5 %q", msg.Body, msg.Md5OfBody)
	}

	v, _ = Sample("kinesis", Options{Data: "payload"})
	if got := string(v.(*events.KinesisEvent).Records[0].Kinesis.Data); got != "payload" {
		t.Errorf("kinesis data %q", got)
	}

	v, _ = Sample("apigateway-v2", Options{Method: "DELETE", Path: "/users/7/files/a/b", Route: "/users/{id}/files/{path+}"})
	e := v.(*events.APIGatewayV2HTTPRequest)
	if e.RouteKey != "ANY /users/{id}/files/{path+}" || e.PathParameters["id"] != "7" || e.PathParameters["path"] != "a/b" ||
		e.RequestContext.HTTP.Method != "DELETE" {
		t.Errorf("routeKey %q params %v method %q", e.RouteKey, e.PathParameters, e.RequestContext.HTTP.Method)
	}
}

func TestEventErrors(t *testing.T) {
	if _, err := Generate("nope", Options{}); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("unknown source: %v", err)
	}
	for name, tc := range map[string]struct {
		source string
		opts   Options
		want   string
	}{
		"path off the route": {"apigateway-v1", Options{Path: "/a/b", Route: "GET /items/{id}"}, "does not match the route"},
		"bad route":          {"apigateway-v2", Options{Route: "items"}, "invalid route"},
		"bad header":         {"function-url", Options{Headers: []string{"no colon"}}, "is not Name: value"},
		"bad path":           {"function-url", Options{Path: "no-slash"}, "path"},
		"bad detail":         {"eventbridge", Options{Detail: "{"}, "not JSON"},
	} {
		if _, err := Generate(tc.source, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
}
