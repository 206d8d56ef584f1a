"""The control-plane flow through boto3: python3 boto3_flow.py URL DIR STEP.

STEP "flow" creates, updates, publishes, aliases and invokes; STEP
"after-restart" checks that a restarted service still runs it all, then
deletes it. Prints OK at the end; any failure raises."""
import json
import sys

import boto3
from botocore.config import Config

url, workdir, step = sys.argv[1:4]
c = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test",
                 config=Config(retries={"max_attempts": 1}))
fast = {"Delay": 1, "MaxAttempts": 30}


def code(name):
    with open(f"{workdir}/{name}", "rb") as f:
        return f.read()


def invoke(**kw):
    r = c.invoke(Payload=b'{"x": 1}', **kw)
    assert "FunctionError" not in r, r
    return json.loads(r["Payload"].read()), r["ExecutedVersion"]


def expect_error(code_name, fn, **kw):
    try:
        fn(**kw)
    except c.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code_name, e.response
        return
    raise AssertionError(f"{fn.__name__} succeeded, want {code_name}")


if step == "flow":
    r = c.create_function(FunctionName="b3", Runtime="python3.12", Handler="app.handler",
                          Role="arn:aws:iam::123456789012:role/lambda", Code={"ZipFile": code("v1.zip")})
    assert r["State"] == "Pending" and r["FunctionArn"].endswith(":function:b3"), r
    c.get_waiter("function_active_v2").wait(FunctionName="b3", WaiterConfig=fast)
    a, v = invoke(FunctionName="b3")
    assert a["code"] == "v1" and v == "$LATEST", (a, v)
    c.update_function_code(FunctionName="b3", ZipFile=code("v2.zip"))
    c.get_waiter("function_updated_v2").wait(FunctionName="b3", WaiterConfig=fast)
    a, _ = invoke(FunctionName="b3")
    assert a["code"] == "v2", a
    assert c.publish_version(FunctionName="b3")["Version"] == "1"
    c.update_function_code(FunctionName="b3", ZipFile=code("v1.zip"))
    c.get_waiter("function_updated_v2").wait(FunctionName="b3", WaiterConfig=fast)
    c.create_alias(FunctionName="b3", Name="live", FunctionVersion="1")
    a, v = invoke(FunctionName="b3", Qualifier="live")
    assert a["code"] == "v2" and v == "1" and a["arn"].endswith(":b3:live"), (a, v)
    expect_error("ResourceConflictException", c.create_function, FunctionName="b3", Runtime="python3.12",
                 Handler="app.handler", Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": code("v1.zip")})
    expect_error("InvalidParameterValueException", c.create_function, FunctionName="b4", Runtime="perl5",
                 Handler="app.handler", Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": code("v1.zip")})
    expect_error("ResourceNotFoundException", c.invoke, FunctionName="nope")
elif step == "after-restart":
    a, v = invoke(FunctionName="b3", Qualifier="live")
    assert a["code"] == "v2" and v == "1", (a, v)
    a, v = invoke(FunctionName="b3")
    assert a["code"] == "v1" and v == "$LATEST", (a, v)
    c.delete_function(FunctionName="b3")
    expect_error("ResourceNotFoundException", c.get_function, FunctionName="b3")
    expect_error("ResourceNotFoundException", c.invoke, FunctionName="b3")
print("OK")
