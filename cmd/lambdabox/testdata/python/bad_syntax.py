"""A handler module that does not compile: the RIC reports Runtime.UserCodeSyntaxError."""


def handler(event, context)
    return "unreachable"
