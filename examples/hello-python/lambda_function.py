"""A Python function for lambdabox build: lambdabox build examples/hello-python."""
import json

import six


def handler(event, context):
    name = event.get("name", "world")
    print("hello from python")
    return {"message": "Hello, %s!" % name, "six": six.__version__, "requestId": bool(context.aws_request_id)}


if __name__ == "__main__":
    print(json.dumps({"ok": True}))
