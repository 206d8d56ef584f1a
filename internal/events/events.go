package events

import (
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/lambdabox/lambdabox/internal/httpfront"
)

// Options are the commonly tweaked fields of a sample; the zero value of
// each gives the sample's default. Source.Options lists the ones a source
// uses.
type Options struct {
	// Method is the HTTP method; default GET.
	Method string
	// Path is the request path, with an optional query string; default
	// "/path/to/resource".
	Path string
	// Body is the request body; default none.
	Body string
	// ContentType is the request's content type; default
	// application/json when there is a body.
	ContentType string
	// Headers are extra request headers, each "Name: value".
	Headers []string
	// Route is the API Gateway route: a resource path template, optionally
	// after a method ("GET /items/{id}"); default "ANY /{proxy+}". Path
	// must match it.
	Route string
	// Stage is the API Gateway stage; default "prod" (REST) or "$default"
	// (HTTP API).
	Stage string

	// Bucket and Key name the S3 object; defaults "example-bucket" and
	// "test/key".
	Bucket, Key string
	// Message is the SQS message body, the SNS message or the DynamoDB
	// item's Message attribute; default a greeting.
	Message string
	// Queue, Topic, Table and Stream name the SQS queue, SNS topic,
	// DynamoDB table and Kinesis stream; defaults "example-queue",
	// "example-topic", "example-table", "example-stream".
	Queue, Topic, Table, Stream string
	// Data is the Kinesis record's data (base64-encoded in the event);
	// default a greeting.
	Data string
	// EventSource, DetailType and Detail are the EventBridge event's
	// source, detail-type and detail (JSON); defaults "aws.events",
	// "Scheduled Event" and {}.
	EventSource, DetailType, Detail string

	// Region and Account are where the sample comes from; defaults
	// us-east-1 and 123456789012.
	Region, Account string
	// Time is when the sample happened; default 2024-01-15T12:00:00Z.
	Time time.Time
}

// DefaultTime is the time of samples whose Options give none.
var DefaultTime = time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Method, "GET")
	def(&o.Path, "/path/to/resource")
	if o.Body != "" {
		def(&o.ContentType, "application/json")
	}
	def(&o.Route, "/{proxy+}")
	def(&o.Bucket, "example-bucket")
	def(&o.Key, "test/key")
	def(&o.Queue, "example-queue")
	def(&o.Topic, "example-topic")
	def(&o.Table, "example-table")
	def(&o.Stream, "example-stream")
	def(&o.Data, "Hello, this is a test.")
	def(&o.EventSource, "aws.events")
	def(&o.DetailType, "Scheduled Event")
	def(&o.Detail, "{}")
	def(&o.Region, "us-east-1")
	def(&o.Account, httpfront.DefaultAccountID)
	if o.Time.IsZero() {
		o.Time = DefaultTime
	}
	o.Time = o.Time.UTC()
	return o
}

// Source is one event source lambdabox makes samples of.
type Source struct {
	// Name is how the source is asked for, e.g. "s3".
	Name string
	// Description says what the sample is.
	Description string
	// Options are the Options the sample uses, named as the lambdabox
	// event command's flags (lower case, hyphenated).
	Options []string
	// sample makes the sample.
	sample func(Options) (any, error)
}

var httpOptions = []string{"method", "path", "body", "content-type", "header"}

var sources = []Source{
	{"apigateway-v1", "API Gateway REST API proxy event (payload format 1.0)",
		slices.Concat(httpOptions, []string{"route", "stage", "region", "account", "time"}), apiGatewayV1},
	{"apigateway-v2", "API Gateway HTTP API event (payload format 2.0)",
		slices.Concat(httpOptions, []string{"route", "stage", "region", "account", "time"}), apiGatewayV2},
	{"function-url", "Lambda function URL event (payload format 2.0)",
		slices.Concat(httpOptions, []string{"region", "account", "time"}), functionURL},
	{"s3", "S3 ObjectCreated:Put notification",
		[]string{"bucket", "key", "region", "account", "time"}, s3},
	{"sqs", "SQS message batch of one message",
		[]string{"message", "queue", "region", "account", "time"}, sqs},
	{"sns", "SNS notification",
		[]string{"message", "topic", "region", "account", "time"}, sns},
	{"dynamodb", "DynamoDB Streams INSERT record",
		[]string{"message", "table", "region", "account", "time"}, dynamodb},
	{"eventbridge", "EventBridge (CloudWatch Events) event",
		[]string{"event-source", "detail-type", "detail", "region", "account", "time"}, eventbridge},
	{"kinesis", "Kinesis Data Streams record",
		[]string{"data", "stream", "region", "account", "time"}, kinesis},
}

// Sources lists the sources, in a stable order.
func Sources() []Source {
	return append([]Source(nil), sources...)
}

// Lookup finds a source by name.
func Lookup(name string) (Source, bool) {
	for _, s := range sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// ErrUnknownSource is returned for a source name Sources does not list.
var ErrUnknownSource = errors.New("unknown event source")

// Sample makes the sample of a source as its aws-lambda-go events type,
// e.g. *events.S3Event for "s3"; function URL events are
// *events.APIGatewayV2HTTPRequest (see httpfront.FunctionURLEvent).
func Sample(name string, o Options) (any, error) {
	src, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownSource, name)
	}
	v, err := src.sample(o.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("%s event: %w", name, err)
	}
	return v, nil
}

// Generate makes the sample of a source as indented JSON, ending in a
// newline, encoded as httpfront.MarshalEvent encodes events.
func Generate(name string, o Options) ([]byte, error) {
	v, err := Sample(name, o)
	if err != nil {
		return nil, err
	}
	return marshal(v)
}

// marshal encodes an event as Lambda sends it, indented.
func marshal(v any) ([]byte, error) {
	b, err := httpfront.MarshalEvent(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Sample identifiers: fixed, so samples are reproducible.
const (
	sampleRequestID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
	sampleURLID     = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
	sampleAPIID     = "1234567890"
	sampleSourceIP  = "203.0.113.10"
	sampleTraceID   = "Root=1-65a51e40-0123456789abcdef01234567"
)

// httpRequest is the sample HTTP request the HTTP sources are made from.
func httpRequest(o Options, host string) (*http.Request, []byte, error) {
	u, err := url.Parse("https://" + host + o.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("path %q: %w", o.Path, err)
	}
	if !strings.HasPrefix(u.Path, "/") {
		return nil, nil, fmt.Errorf("path %q does not start with /", o.Path)
	}
	r := &http.Request{
		Method:     strings.ToUpper(o.Method),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Accept":     {"*/*"},
			"User-Agent": {"curl/8.5.0"},
		},
		Host:       host,
		RemoteAddr: sampleSourceIP + ":49152",
		TLS:        &tls.ConnectionState{},
	}
	if o.ContentType != "" {
		r.Header.Set("Content-Type", o.ContentType)
	}
	for _, h := range o.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, nil, fmt.Errorf("header %q is not Name: value", h)
		}
		r.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return r, []byte(o.Body), nil
}

func meta(o Options, apiID, domain, stage string) httpfront.Meta {
	return httpfront.Meta{
		RequestID:  sampleRequestID,
		Time:       o.Time,
		AccountID:  o.Account,
		APIID:      apiID,
		DomainName: domain,
		Stage:      stage,
		TraceID:    sampleTraceID,
	}
}

func functionURL(o Options) (any, error) {
	domain := sampleURLID + ".lambda-url." + o.Region + ".on.aws"
	r, body, err := httpRequest(o, domain)
	if err != nil {
		return nil, err
	}
	return httpfront.FunctionURLEvent(r, body, meta(o, sampleURLID, domain, "")), nil
}

// match routes the sample request with a router of the one route.
func match(o Options, r *http.Request, version string) (*httpfront.Match, error) {
	route := httpfront.Route{Method: "ANY", Path: o.Route, Version: version}
	if m, p, ok := strings.Cut(o.Route, " "); ok {
		route.Method, route.Path = strings.ToUpper(m), strings.TrimSpace(p)
	}
	rt, err := httpfront.NewRouter([]httpfront.Route{route})
	if err != nil {
		return nil, err
	}
	m, ok := rt.Match(r.Method, r.URL.EscapedPath())
	if !ok {
		return nil, fmt.Errorf("%s %s does not match the route %q", r.Method, r.URL.Path, o.Route)
	}
	return m, nil
}

func apiGatewayV1(o Options) (any, error) {
	domain := sampleAPIID + ".execute-api." + o.Region + ".amazonaws.com"
	r, body, err := httpRequest(o, domain)
	if err != nil {
		return nil, err
	}
	m, err := match(o, r, "1.0")
	if err != nil {
		return nil, err
	}
	stage := o.Stage
	if stage == "" {
		stage = "prod"
	}
	return httpfront.RESTEvent(r, body, m, meta(o, sampleAPIID, domain, stage)), nil
}

func apiGatewayV2(o Options) (any, error) {
	domain := sampleAPIID + ".execute-api." + o.Region + ".amazonaws.com"
	r, body, err := httpRequest(o, domain)
	if err != nil {
		return nil, err
	}
	m, err := match(o, r, "2.0")
	if err != nil {
		return nil, err
	}
	return httpfront.HTTPAPIEvent(r, body, m, meta(o, sampleAPIID, domain, o.Stage)), nil
}

func s3(o Options) (any, error) {
	// Keys arrive URL-encoded, spaces as '+'.
	key := url.QueryEscape(o.Key)
	key = strings.ReplaceAll(key, "%2F", "/")
	return &events.S3Event{Records: []events.S3EventRecord{{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         o.Region,
		EventTime:         o.Time,
		EventName:         "ObjectCreated:Put",
		PrincipalID:       events.S3UserIdentity{PrincipalID: "EXAMPLE"},
		RequestParameters: events.S3RequestParameters{SourceIPAddress: sampleSourceIP},
		ResponseElements: map[string]string{
			"x-amz-request-id": "EXAMPLE123456789",
			"x-amz-id-2":       "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
		},
		S3: events.S3Entity{
			SchemaVersion:   "1.0",
			ConfigurationID: "testConfigRule",
			Bucket: events.S3Bucket{
				Name:          o.Bucket,
				OwnerIdentity: events.S3UserIdentity{PrincipalID: "EXAMPLE"},
				Arn:           "arn:aws:s3:::" + o.Bucket,
			},
			Object: events.S3Object{
				Key:           key,
				Size:          1024,
				URLDecodedKey: o.Key,
				ETag:          "0123456789abcdef0123456789abcdef",
				Sequencer:     "0A1B2C3D4E5F678901",
			},
		},
	}}}, nil
}

func sqs(o Options) (any, error) {
	msg := o.Message
	if msg == "" {
		msg = "Hello from SQS!"
	}
	ms := fmt.Sprint(o.Time.UnixMilli())
	sum := md5.Sum([]byte(msg))
	return &events.SQSEvent{Records: []events.SQSMessage{{
		MessageId:     "059f36b4-87a3-44ab-83d2-661975830a7d",
		ReceiptHandle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
		Body:          msg,
		Md5OfBody:     hex.EncodeToString(sum[:]),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          "1",
			"SentTimestamp":                    ms,
			"SenderId":                         "AIDAIENQZJOLO23YVJ4VO",
			"ApproximateFirstReceiveTimestamp": ms,
		},
		MessageAttributes: map[string]events.SQSMessageAttribute{},
		EventSourceARN:    "arn:aws:sqs:" + o.Region + ":" + o.Account + ":" + o.Queue,
		EventSource:       "aws:sqs",
		AWSRegion:         o.Region,
	}}}, nil
}

func sns(o Options) (any, error) {
	msg := o.Message
	if msg == "" {
		msg = "Hello from SNS!"
	}
	topic := "arn:aws:sns:" + o.Region + ":" + o.Account + ":" + o.Topic
	sub := topic + ":2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
	endpoint := "https://sns." + o.Region + ".amazonaws.com/"
	return &events.SNSEvent{Records: []events.SNSEventRecord{{
		EventVersion:         "1.0",
		EventSubscriptionArn: sub,
		EventSource:          "aws:sns",
		SNS: events.SNSEntity{
			Signature:         "EXAMPLE",
			MessageID:         "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
			Type:              "Notification",
			TopicArn:          topic,
			MessageAttributes: map[string]any{},
			SignatureVersion:  "1",
			Timestamp:         o.Time,
			SigningCertURL:    endpoint + "SimpleNotificationService-0000000000000000000000.pem",
			Message:           msg,
			UnsubscribeURL:    endpoint + "?Action=Unsubscribe&SubscriptionArn=" + sub,
			Subject:           "example subject",
		},
	}}}, nil
}

func dynamodb(o Options) (any, error) {
	msg := o.Message
	if msg == "" {
		msg = "New item!"
	}
	return &events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		AWSRegion: o.Region,
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: o.Time},
			Keys: map[string]events.DynamoDBAttributeValue{
				"Id": events.NewNumberAttribute("101"),
			},
			NewImage: map[string]events.DynamoDBAttributeValue{
				"Id":      events.NewNumberAttribute("101"),
				"Message": events.NewStringAttribute(msg),
			},
			SequenceNumber: "111",
			SizeBytes:      int64(26 + len(msg)),
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
		EventID:        "c4ca4238a0b923820dcc509a6f75849b",
		EventName:      string(events.DynamoDBOperationTypeInsert),
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		EventSourceArn: "arn:aws:dynamodb:" + o.Region + ":" + o.Account + ":table/" + o.Table + "/stream/2024-01-01T00:00:00.000",
	}}}, nil
}

func eventbridge(o Options) (any, error) {
	if !json.Valid([]byte(o.Detail)) {
		return nil, fmt.Errorf("detail %q is not JSON", o.Detail)
	}
	return &events.CloudWatchEvent{
		Version:    "0",
		ID:         "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
		DetailType: o.DetailType,
		Source:     o.EventSource,
		AccountID:  o.Account,
		Time:       o.Time,
		Region:     o.Region,
		Resources:  []string{"arn:aws:events:" + o.Region + ":" + o.Account + ":rule/example-rule"},
		Detail:     json.RawMessage(o.Detail),
	}, nil
}

func kinesis(o Options) (any, error) {
	const seq = "49590338271490256608559692538361571095921575989136588898"
	return &events.KinesisEvent{Records: []events.KinesisEventRecord{{
		AwsRegion:         o.Region,
		EventID:           "shardId-000000000006:" + seq,
		EventName:         "aws:kinesis:record",
		EventSource:       "aws:kinesis",
		EventSourceArn:    "arn:aws:kinesis:" + o.Region + ":" + o.Account + ":stream/" + o.Stream,
		EventVersion:      "1.0",
		InvokeIdentityArn: "arn:aws:iam::" + o.Account + ":role/lambda-role",
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: o.Time},
			Data:                        []byte(o.Data),
			PartitionKey:                "1",
			SequenceNumber:              seq,
			KinesisSchemaVersion:        "1.0",
		},
	}}}, nil
}
