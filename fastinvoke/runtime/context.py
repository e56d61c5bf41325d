"""The context object a Python handler receives, as awslambdaric builds it."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import msgspec

from .faults import Fault


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id


class Client:
    __slots__ = (
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    )

    def __init__(self, fields: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, document: dict[str, Any]) -> None:
        client = document.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = document.get("custom")
        self.env = document.get("env")


class LambdaContext:
    """What a handler knows about its invocation and its function.

    ``memory_limit_in_mb`` is a string, as on Lambda.  ``get_remaining_time_in_millis``
    counts down to the invocation's real deadline, the one the supervisor enforces.
    """

    # The function's own fields: read from the environment once per worker (configure).
    function_name: str | None = None
    function_version: str | None = None
    memory_limit_in_mb: str | None = None
    log_group_name: str | None = None
    log_stream_name: str | None = None

    @classmethod
    def configure(cls) -> None:
        """Read the function's fields from the environment (at worker start)."""
        env = os.environ
        cls.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        cls.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        cls.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        cls.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        cls.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: str | None = None,
        identity: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms
        self.identity = _identity(identity)
        self.client_context = _client_context(client_context)

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - time.time_ns() // 1_000_000, 0)

    def log(self, message: Any) -> None:
        sys.stdout.write(str(message))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"function_name={self.function_name},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


def _identity(text: str | None) -> CognitoIdentity:
    if not text:
        return CognitoIdentity()
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return CognitoIdentity()
    return CognitoIdentity(document.get("cognitoIdentityId"), document.get("cognitoIdentityPoolId"))


def _client_context(text: str | None) -> ClientContext | None:
    if not text:
        return None
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise Fault(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse Client Context JSON: {exc}"
        ) from None
    return ClientContext(document if isinstance(document, dict) else {})
