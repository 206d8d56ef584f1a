import asyncio, ctypes, decimal, json, sqlite3, ssl


def handler(event, context):
    print("hello from python")
    return {"message": "Hello, " + event.get("name", "world") + "!", "tls": ssl.OPENSSL_VERSION.split()[0]}


def together(event, context):
    """Waits, up to 20 s, until event["want"] invokes are in flight at once
    (awslambdaric's multi-concurrency mode runs them in several processes
    of one environment), and says how many it saw."""
    import os, time

    os.makedirs("/tmp/inflight", exist_ok=True)
    open("/tmp/inflight/" + context.aws_request_id, "w").close()
    seen = 0
    for _ in range(200):
        seen = len(os.listdir("/tmp/inflight"))
        if seen >= event["want"]:
            break
        time.sleep(0.1)
    return {"together": seen}
