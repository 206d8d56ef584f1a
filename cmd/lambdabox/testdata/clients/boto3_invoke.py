"""Invokes a function served by lambdabox with boto3 and prints what boto3
returned, as one JSON object, for the Go test (clients_test.go) to check.

usage: python3 boto3_invoke.py ENDPOINT_URL FUNCTION_NAME
"""

import base64
import json
import sys

import boto3
from botocore.config import Config


def invoke(client, name, payload, **kwargs):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    out = {
        "StatusCode": resp.get("StatusCode"),
        "FunctionError": resp.get("FunctionError"),
        "ExecutedVersion": resp.get("ExecutedVersion"),
        "Payload": resp["Payload"].read().decode(),
        "RequestId": resp.get("ResponseMetadata", {}).get("RequestId"),
    }
    if "LogResult" in resp:
        out["LogResult"] = base64.b64decode(resp["LogResult"]).decode()
    return out


def main():
    endpoint, name = sys.argv[1], sys.argv[2]
    client = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDLAMBDABOXTEST",
        aws_secret_access_key="lambdabox-test-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60, connect_timeout=10),
    )
    result = {
        "ok": invoke(client, name, {"data": "boto3"}, LogType="Tail"),
        "error": invoke(client, name, {"op": "error", "name": "b3"}),
    }
    try:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
        result["notFound"] = {"raised": None}
    except client.exceptions.ResourceNotFoundException as e:
        result["notFound"] = {
            "raised": "ResourceNotFoundException",
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message"),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }
    except Exception as e:  # noqa: BLE001 - report any other failure to the test
        result["notFound"] = {"raised": type(e).__name__, "message": str(e)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
