"""A handler module whose import fails: the RIC reports Runtime.ImportModuleError."""

import lambdabox_no_such_dependency  # noqa: F401


def handler(event, context):
    return "unreachable"
