from greeting import greet
from sample_code_1 import shout


def handler(event, context):
    return {"body": shout(greet(event.get("name", "seed")))}
