// Package events makes sample events of the common Lambda event sources
// (API Gateway, function URLs, S3, SQS, SNS, DynamoDB Streams, EventBridge,
// Kinesis), for piping into an invoke. Each sample is a populated value of
// its aws-lambda-go events type, so its JSON has exactly that type's shape;
// the HTTP sources are built by internal/httpfront from a sample HTTP
// request, exactly as lambdabox's HTTP fronts build real ones.
//
// Samples are deterministic: the same Options give the same bytes.
package events
