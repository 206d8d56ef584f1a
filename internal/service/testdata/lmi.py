"""A Python function for the Managed Instances tests, run by awslambdaric."""
import os
import signal
import time


def handler(event, context):
    op = event.get("op", "")
    if op == "error":
        raise ValueError("boom")
    if op == "exit":
        # Workers are processes forked by the runtime: end the runtime.
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(3)
    start = time.time_ns()
    time.sleep(event.get("ms", 0) / 1000)
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "requestId": context.aws_request_id,
        "start": start,
        "end": time.time_ns(),
        "maxConcurrency": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", ""),
    }
