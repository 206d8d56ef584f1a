"""Test function for lambdabox, run by the official Python Runtime Interface
Client: python3 -m awslambdaric app.handler. The event's "op" picks what it
does (see handler)."""

import os
import time


class HandlerFailure(Exception):
    pass


def handler(event, context):
    op = event.get("op", "echo") if isinstance(event, dict) else "echo"
    if op == "echo":
        return event.get("data") if isinstance(event, dict) else event
    if op == "error":
        raise HandlerFailure("boom: " + str(event.get("name")))
    if op == "print":
        print("python says " + str(event.get("text")))
        return "printed"
    if op == "sleep":
        time.sleep(event.get("ms", 0) / 1000.0)
        return "slept"
    if op == "env":
        name = event["name"]
        return {"value": os.environ.get(name), "set": name in os.environ}
    if op == "context":
        cc = context.client_context
        return {
            "requestId": context.aws_request_id,
            "functionArn": context.invoked_function_arn,
            "functionName": context.function_name,
            "remainingMs": context.get_remaining_time_in_millis(),
            "custom": cc.custom if cc is not None else None,
            "installationId": cc.client.installation_id if cc is not None and cc.client is not None else None,
            "xrayEnv": os.environ.get("_X_AMZN_TRACE_ID"),
        }
    raise ValueError("unknown op %r" % (op,))
