// Package httpfront puts an HTTP front in front of a function, as Lambda
// function URLs and Amazon API Gateway do: it turns an HTTP request into the
// event the function receives and the function's result back into an HTTP
// response.
//
// Three event shapes are built, each as its aws-lambda-go events type:
//
//   - function URLs: payload format 2.0 with routeKey "$default"
//     (FunctionURLEvent, events.APIGatewayV2HTTPRequest, which
//     events.LambdaFunctionURLRequest also decodes);
//   - HTTP APIs: payload format 2.0 with the matched route's key
//     (HTTPAPIEvent, events.APIGatewayV2HTTPRequest);
//   - REST APIs: payload format 1.0 (RESTEvent,
//     events.APIGatewayProxyRequest).
//
// MarshalEvent encodes them as Lambda does. Results map back with
// ResponseV2 and ResponseV1, and a response streamed with the
// HTTP-integration prelude (a JSON prelude, 8 NUL bytes, then the body)
// with ReadPrelude and WriteStream. A Router matches requests to API
// Gateway route templates ({name} parameters, a greedy {name+}, the ANY
// method and the $default route).
//
// NewFunctionURL and NewAPIGateway put it all together as http.Handlers that
// invoke a Function.
package httpfront
