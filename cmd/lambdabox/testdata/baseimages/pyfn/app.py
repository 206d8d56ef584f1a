import asyncio, ctypes, decimal, json, sqlite3, ssl


def handler(event, context):
    print("hello from python")
    return {"message": "Hello, " + event.get("name", "world") + "!", "tls": ssl.OPENSSL_VERSION.split()[0]}
