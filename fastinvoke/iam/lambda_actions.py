"""Lambda's IAM actions: ``lambda:`` and the API operation's name, but for the few named
otherwise (Lambda Developer Guide, "Actions, resources, and condition keys for AWS
Lambda": ``Invoke`` and ``InvokeWithResponseStream`` need ``lambda:InvokeFunction``)."""

from __future__ import annotations

from ..http.lambda_model import operation_names

_RENAMED = {
    "Invoke": "InvokeFunction",
    "InvokeWithResponseStream": "InvokeFunction",
    "GetLayerVersionByArn": "GetLayerVersion",
}
_NOT_OPERATIONS = ("InvokeFunctionUrl",)  # IAM actions of Lambda that are no API operation


def action_of(operation: str) -> str:
    """The IAM action an API operation needs."""
    return f"lambda:{_RENAMED.get(operation, operation)}"


# Lower-case, as IAM compares actions.
KNOWN_ACTIONS = frozenset(action_of(name).lower()
                          for name in (*operation_names(), *_NOT_OPERATIONS))
