"""Function names as the Lambda API accepts them: a name, ``name:qualifier``, a partial
ARN (``123456789012:function:name``) or a full ARN, checked against botocore's model
(shapes ``FunctionName`` and ``NamespacedFunctionName``; docs/lambda-behaviour.md,
"Function names and ARNs")."""

from __future__ import annotations

import re

from ..errors import InvalidParameterValueException, ResourceNotFoundException, ValidationException

MAX_NAME = 64
_PATTERN = (r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
            r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?")
_NAME = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9-_\.]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$")


def parse_function_name(text: str, qualifier: str | None, *, region: str, account: str,
                        max_length: int = 256) -> tuple[str, str | None]:
    """``(name, qualifier)`` of the function ``text`` names.

    ``qualifier`` is the ``Qualifier`` query parameter; it must agree with one in the name.
    An ARN of another region or account names no function here (404).
    """
    if len(text) > max_length:
        raise ValidationException(
            f"1 validation error detected: Value '{text}' at 'functionName' failed to satisfy "
            f"constraint: Member must have length less than or equal to {max_length}")
    match = _NAME.match(text)
    if match is None:
        raise ValidationException(
            f"1 validation error detected: Value '{text}' at 'functionName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {_PATTERN}")
    name = match["name"]
    if len(name) > MAX_NAME:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_NAME}")
    derived = match["qualifier"]
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified "
            "qualifier.")
    if match["region"] not in (None, region) or match["account"] not in (None, account):
        raise ResourceNotFoundException(f"Function not found: {text}")
    return name, derived if derived is not None else qualifier
