"""HTTP test handler for lambdabox's function URL and API Gateway fronts,
run by the official Python RIC: python3 -m awslambdaric web.handler.

It answers with the parts of the event the tests check, sets a cookie, and
echoes binary bodies back as binary."""
import base64
import json


def handler(event, context):
    if event.get("isBase64Encoded") and event.get("headers", {}).get("content-type", "").startswith("application/octet-stream"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": event["body"],
            "isBase64Encoded": True,
        }
    seen = {k: event.get(k) for k in (
        "version", "routeKey", "rawPath", "rawQueryString", "cookies", "queryStringParameters",
        "pathParameters", "body", "isBase64Encoded", "resource", "path", "httpMethod",
        "multiValueQueryStringParameters", "multiValueHeaders")}
    ctx = event.get("requestContext") or {}
    seen["method"] = (ctx.get("http") or {}).get("method") or event.get("httpMethod")
    seen["requestId"] = ctx.get("requestId")
    response = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Handler": "python"},
        "body": json.dumps(seen),
    }
    if event.get("version") == "2.0":
        response["cookies"] = ["session=abc; Path=/", "theme=dark"]
    else:
        response["multiValueHeaders"] = {"Set-Cookie": ["session=abc; Path=/", "theme=dark"]}
    return response
