package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func sdkClient(e *emulator) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	})
}

type chunk struct {
	data string
	at   time.Time
}

// streamInvoke calls InvokeWithResponseStream and collects the chunks with
// their arrival times, and the InvokeComplete event.
func streamInvoke(t *testing.T, e *emulator, payload string, tail bool) ([]chunk, *types.InvokeWithResponseStreamCompleteEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := &lambda.InvokeWithResponseStreamInput{FunctionName: aws.String("function"), Payload: []byte(payload)}
	if tail {
		in.LogType = types.LogTypeTail
	}
	out, err := sdkClient(e).InvokeWithResponseStream(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var chunks []chunk
	var complete *types.InvokeWithResponseStreamCompleteEvent
	for ev := range stream.Events() {
		switch v := ev.(type) {
		case *types.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
			chunks = append(chunks, chunk{string(v.Value.Payload), time.Now()})
		case *types.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
			complete = &v.Value
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	if complete == nil {
		t.Fatal("no InvokeComplete event")
	}
	return chunks, complete
}

// wantSpaced checks that the chunks, written gap apart, arrived one by
// one: each before the next was written (within (i+1) gaps of the first),
// and spread over the writing time rather than all at the end.
func wantSpaced(t *testing.T, chunks []chunk, n int, gap time.Duration) {
	t.Helper()
	if len(chunks) != n {
		t.Fatalf("%d chunks, want %d: %v", len(chunks), n, chunks)
	}
	for i := 1; i < n; i++ {
		if d := chunks[i].at.Sub(chunks[0].at); d >= time.Duration(i+1)*gap {
			t.Errorf("chunk %d came %v after chunk 0, after chunk %d was written", i, d, i+1)
		}
	}
	if spread := chunks[n-1].at.Sub(chunks[0].at); spread < time.Duration(n-1)*gap/2 {
		t.Errorf("%d chunks written %v apart arrived within %v: buffered, not streamed", n, gap, spread)
	}
}

func TestStreamGoFunction(t *testing.T) {
	e := goRIE(t)
	chunks, complete := streamInvoke(t, e, `{"op":"stream","chunks":5,"ms":200}`, true)
	wantSpaced(t, chunks, 5, 200*time.Millisecond)
	for i, c := range chunks {
		if c.data != fmt.Sprintf("chunk %d;", i) {
			t.Errorf("chunk %d = %q", i, c.data)
		}
	}
	if complete.ErrorCode != nil {
		t.Errorf("ErrorCode %q", aws.ToString(complete.ErrorCode))
	}
	if log, _ := base64.StdEncoding.DecodeString(aws.ToString(complete.LogResult)); !strings.Contains(string(log), "REPORT RequestId:") {
		t.Errorf("LogResult %q", log)
	}
	// The environment is reused for a plain invoke.
	if resp, body := e.invoke(t, "function", `{"data":"after"}`); body != `"after"` {
		t.Errorf("after streaming: %d %s", resp.StatusCode, body)
	}
}

func TestStreamMidStreamError(t *testing.T) {
	e := goRIE(t)
	chunks, complete := streamInvoke(t, e, `{"op":"streamerror","chunks":2,"ms":50}`, false)
	if len(chunks) == 0 || !strings.HasPrefix(chunks[0].data, "chunk 0;") {
		t.Errorf("chunks before the error: %v", chunks)
	}
	if aws.ToString(complete.ErrorCode) == "" || !strings.Contains(aws.ToString(complete.ErrorDetails), "stream broke") {
		t.Errorf("InvokeComplete %q %q", aws.ToString(complete.ErrorCode), aws.ToString(complete.ErrorDetails))
	}
}

func TestStreamBufferedFunctionAndPlainInvokeOfStreamer(t *testing.T) {
	e := goRIE(t)
	// A buffered answer arrives as one chunk.
	chunks, complete := streamInvoke(t, e, `{"data":"whole"}`, false)
	if len(chunks) != 1 || chunks[0].data != `"whole"` || complete.ErrorCode != nil {
		t.Errorf("buffered through a stream: %v %+v", chunks, complete)
	}
	// A function error, too, ends in InvokeComplete.
	_, complete = streamInvoke(t, e, `{"op":"error","name":"s"}`, false)
	if aws.ToString(complete.ErrorCode) != "errorString" || !strings.Contains(aws.ToString(complete.ErrorDetails), "boom: s") {
		t.Errorf("error through a stream: %q %q", aws.ToString(complete.ErrorCode), aws.ToString(complete.ErrorDetails))
	}
}

func TestStreamNodeFunction(t *testing.T) {
	e := nodeRIE(t, "stream.handler")
	chunks, complete := streamInvoke(t, e, `{"chunks":5,"ms":200}`, false)
	wantSpaced(t, chunks, 5, 200*time.Millisecond)
	if complete.ErrorCode != nil {
		t.Errorf("ErrorCode %q", aws.ToString(complete.ErrorCode))
	}
	// Invoked without streaming, the same function's answer is buffered.
	resp, body := e.invoke(t, "function", `{"chunks":3,"ms":10}`)
	if resp.StatusCode != 200 || strings.Count(body, "chunk") != 3 {
		t.Errorf("buffered invoke of a streaming function: %d %q", resp.StatusCode, body)
	}
}

func TestStreamLimitsAndDisconnect(t *testing.T) {
	e := goRIE(t, "--stream-shaping=false")
	// 210 MiB is past the 200 MiB cap: the stream ends with an error.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := sdkClient(e).InvokeWithResponseStream(ctx, &lambda.InvokeWithResponseStreamInput{
		FunctionName: aws.String("function"), Payload: []byte(`{"op":"streambig","size":220200960}`)})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var code string
	for ev := range out.GetStream().Events() {
		switch v := ev.(type) {
		case *types.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
			n += len(v.Value.Payload)
		case *types.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
			code = aws.ToString(v.Value.ErrorCode)
		}
	}
	out.GetStream().Close()
	if n > 200<<20 || code != "Function.ResponseSizeTooLarge" {
		t.Errorf("%d bytes streamed, ErrorCode %q", n, code)
	}

	// A client that leaves mid-stream: the runtime's POST still ends
	// cleanly and the environment serves the next invoke.
	ctx2, cancel2 := context.WithCancel(context.Background())
	out, err = sdkClient(e).InvokeWithResponseStream(ctx2, &lambda.InvokeWithResponseStreamInput{
		FunctionName: aws.String("function"), Payload: []byte(`{"op":"stream","chunks":10,"ms":100}`)})
	if err != nil {
		t.Fatal(err)
	}
	<-out.GetStream().Events()
	cancel2()
	out.GetStream().Close()
	resp, body := e.invoke(t, "function", `{"data":"still here"}`)
	if resp.StatusCode != 200 || body != `"still here"` {
		t.Errorf("after a disconnect: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(e.Stdout.String(), "Runtime.ExitError") {
		t.Errorf("the runtime died")
	}
}
