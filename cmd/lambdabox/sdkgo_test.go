package main

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestAWSSDKGoV2 drives lambdabox with aws-sdk-go-v2's Lambda client, with
// dummy credentials, as a developer's code would.
func TestAWSSDKGoV2(t *testing.T) {
	e := goRIE(t, "--function-name", "sdkfn")
	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String("sdkfn"),
		Payload:      []byte(`{"data":{"hello":"sdk"}}`),
		LogType:      types.LogTypeTail,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || string(out.Payload) != `{"hello":"sdk"}` || out.FunctionError != nil {
		t.Errorf("invoke: status %d payload %s error %v", out.StatusCode, out.Payload, aws.ToString(out.FunctionError))
	}
	if aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Errorf("ExecutedVersion = %q", aws.ToString(out.ExecutedVersion))
	}
	if log, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult)); !strings.Contains(string(log), "REPORT RequestId:") {
		t.Errorf("LogResult = %q", log)
	}

	out, err = client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String("arn:aws:lambda:us-east-1:012345678912:function:sdkfn"),
		Payload:      []byte(`{"op":"error","name":"sdk"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "boom: sdk") {
		t.Errorf("error invoke: FunctionError %q payload %s", aws.ToString(out.FunctionError), out.Payload)
	}

	_, err = client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("missing"), Payload: []byte(`{}`)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "Function not found") {
		t.Errorf("unknown function: %v", err)
	}

	_, err = client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("sdkfn"), Payload: []byte(`{"x":`)})
	var bad *types.InvalidRequestContentException
	if !errors.As(err, &bad) {
		t.Errorf("invalid JSON: %v", err)
	}

	out, err = client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String("sdkfn"),
		InvocationType: types.InvocationTypeEvent,
		Payload:        []byte(`{"data":"sdk-async"}`),
	})
	if err != nil || out.StatusCode != 202 {
		t.Errorf("Event invoke: %v %+v", err, out)
	}
	waitFor(t, "the async invoke to run", func() bool { return strings.Contains(e.Stdout.String(), "echo: sdk-async") })
}
