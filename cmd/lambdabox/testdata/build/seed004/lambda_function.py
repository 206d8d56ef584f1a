# Seed 004's layout: lambda_function.py calls the business logic of
# sample_code_1.py and sample_code_2.py, with a real PyPI package.
import six

from sample_code_1 import shout
from sample_code_2 import greet


def handler(event, context):
    return {"body": shout(greet(event.get("name", "seed"))), "six": six.__version__}
