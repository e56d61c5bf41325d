"""Every operation of AWS Lambda's API, by HTTP method and request URI, as botocore's
service model declares them (``lambda_operations.json``, its source named inside): so that
a request for one fastinvoke does not implement is answered with that operation's name,
not as an unknown path.  Regenerate the file from botocore's model:
``m = botocore.session.get_session().get_service_model("lambda")``, then each of
``m.operation_names`` with its ``operation_model(name).http`` method and requestUri.
"""

from __future__ import annotations

import json
import re
from importlib import resources

from .errors import NotImplementedException

# What to use instead of an operation fastinvoke does not implement, where there is a way.
_INSTEAD = {
    "InvokeAsync": "use Invoke with InvocationType Event (InvokeAsync is deprecated)",
    "AddPermission": "resource-based policies are not enforced locally: any caller of this "
                     "server may invoke",
    "RemovePermission": "resource-based policies are not enforced locally",
    "GetPolicy": "resource-based policies are not enforced locally",
    "PutFunctionCodeSigningConfig": "code signing is not checked locally",
    "PutRuntimeManagementConfig": "the runtime is this machine's",
}


def _pattern(uri: str) -> tuple[re.Pattern[str], str]:
    """The path's regular expression (``{Name}`` a segment, ``{Name+}`` the rest, each a
    group of that name) and the query the operation requires (``find=LayerVersion``), if
    any."""
    path, _, query = uri.partition("?")
    regex = re.sub(r"\\\{([^}+]+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    regex = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(regex + "/?"), query


_OPERATIONS = json.loads(resources.files(__package__).joinpath(
    "lambda_operations.json").read_text())["operations"]
# Operations told apart by their query (ListLayers, GetLayerVersionByArn) are tried with it
# first.
_COMPILED = sorted(((name, method, *_pattern(uri)) for name, (method, uri) in _OPERATIONS.items()),
                   key=lambda compiled: -len(compiled[3]))


def not_implemented(name: str) -> NotImplementedException:
    """The answer to Lambda operation ``name``, which fastinvoke does not implement."""
    instead = _INSTEAD.get(name)
    return NotImplementedException(
        f"fastinvoke does not implement {name}" + (f": {instead}" if instead else
                                                   "; README lists the operations it does"))


def operation(method: str, path: str, query: str) -> str | None:
    """The Lambda operation that ``method`` on ``path`` (with ``query``) is, if any."""
    found = operation_of(method, path, query)
    return None if found is None else found[0]


def operation_of(method: str, path: str, query: str) -> tuple[str, dict[str, str]] | None:
    """The Lambda operation that ``method`` on ``path`` (with ``query``) is, with its
    path's members (``FunctionName``: as sent, percent-encoded), if any."""
    for name, wanted, pattern, required in _COMPILED:
        if method == wanted and required in query and (match := pattern.fullmatch(path)):
            return name, match.groupdict()
    return None


def operation_names() -> list[str]:
    """Every operation of Lambda's API."""
    return list(_OPERATIONS)
