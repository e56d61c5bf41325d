"""What a request to fastinvoke's Lambda API asks IAM for: the action
(``iam.lambda_actions``) and the resource.

The resource is the function's ARN, qualified when the request names a version or alias (so
``function:NAME`` does not cover ``NAME:live``: ``function:NAME*`` covers both), a layer's,
an event source mapping's, or ``*`` for operations on none.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

from ..iam.lambda_actions import action_of
from .lambda_model import operation_of
from .messages import Request
from .names import parse_function_name


def action_and_resource(request: Request, *, region: str, account: str) -> tuple[str, str]:
    """``(lambda:Action, resource ARN or "*")`` of a request; ``("lambda:Unknown", "*")``
    when it is no Lambda operation (the request is then answered 404 anyway)."""
    query = request.query
    found = operation_of(request.method, request.path, query)
    if found is None:
        return "lambda:Unknown", "*"
    name, members = found
    action = action_of(name)
    prefix = f"arn:aws:lambda:{region}:{account}"
    if "FunctionName" in members:
        text = unquote(members["FunctionName"])
        qualifier = members.get("Name") or _query(query, "Qualifier")
        try:
            function, qualifier = parse_function_name(text, qualifier, region=region,
                                                      account=account)
        except Exception:  # noqa: BLE001 - the operation itself answers the bad name
            return action, f"{prefix}:function:{text}"
        qualified = f":{qualifier}" if qualifier else ""
        return action, f"{prefix}:function:{function}{qualified}"
    if "LayerName" in members:
        layer = unquote(members["LayerName"])
        if not layer.startswith("arn:"):
            layer = f"{prefix}:layer:{layer}"
        version = members.get("VersionNumber")
        return action, f"{layer}:{version}" if version else layer
    if "UUID" in members:
        return action, f"{prefix}:event-source-mapping:{members['UUID']}"
    if name == "GetLayerVersionByArn":
        return action, _query(query, "Arn") or "*"
    return action, "*"


def _query(query: str, key: str) -> str | None:
    values = parse_qs(query).get(key)
    return values[0] if values else None
