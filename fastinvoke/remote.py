"""Invoke a function of a running ``fastinvoke serve``, as a client would: over its Lambda
API (``http://HOST:PORT``) or its ZeroMQ endpoint (``tcp://HOST:PORT``, ``ipc://PATH``)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import msgspec

from .client import ZmqClient
from .errors import InvalidParameterValueException, ServiceException, service_error
from .logserrors import logs_error
from .result import InvokeResult

_RETRY_S = 0.1
T = TypeVar("T")


def invoke_remote(endpoint: str, name: str, payload: bytes, *,
                  invocation_type: str = "RequestResponse", log_type: str | None = None,
                  wait_s: float = 10.0) -> InvokeResult:
    """One Invoke; a server still starting is waited for, up to ``wait_s``."""
    if endpoint.startswith(("tcp://", "ipc://")):  # ZeroMQ connects whenever the server binds
        with ZmqClient(endpoint) as client:
            return client.invoke(name, payload, invocation_type=invocation_type,
                                 log_type=log_type)
    headers = {"X-Amz-Invocation-Type": invocation_type, "Content-Type": "application/json"}
    if log_type is not None:
        headers["X-Amz-Log-Type"] = log_type
    response, body = _request(endpoint, "POST", f"/2015-03-31/functions/{quote(name, safe='')}"
                              "/invocations", payload, headers, wait_s)
    _raise_error(endpoint, response, body)
    return InvokeResult(response.status, body, response.getheader("X-Amz-Function-Error"),
                        response.getheader("X-Amz-Log-Result"),
                        response.getheader("X-Amz-Executed-Version"),
                        response.getheader("x-amzn-RequestId") or "")


def get_json(endpoint: str, path: str, kind: type[T],
             query: dict[str, str] | None = None) -> T:
    """``GET path`` of the server's HTTP API (``/billing``, ``/logs/NAME``) as a ``kind``."""
    target = path + ("?" + urlencode(query) if query else "")
    response, body = _request(endpoint, "GET", target, None, {}, 0.0)
    _raise_error(endpoint, response, body)
    return msgspec.json.decode(body, type=kind)


def call_logs(endpoint: str, operation: str, document: dict[str, Any]) -> dict[str, Any]:
    """One CloudWatch Logs operation of the server (its JSON protocol: ``X-Amz-Target:
    Logs_20140328.<operation>``); the error it answers with is raised as CloudWatch's."""
    response, body = _request(endpoint, "POST", "/", msgspec.json.encode(document), {
        "X-Amz-Target": f"Logs_20140328.{operation}",
        "Content-Type": "application/x-amz-json-1.1"}, 0.0)
    error_type = response.getheader("x-amzn-ErrorType")
    if error_type is not None:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = body.decode("utf-8", "replace")[:200]
        raise logs_error(error_type.split(":")[0], message)
    _raise_error(endpoint, response, body)  # another program's answer
    return json.loads(body or b"{}")


def _request(endpoint: str, method: str, path: str, body: bytes | None,
             headers: dict[str, str], wait_s: float) -> tuple[http.client.HTTPResponse, bytes]:
    """One request to the server's Lambda API; a server still starting is waited for, up
    to ``wait_s``."""
    url = urlsplit(endpoint)
    if url.scheme != "http" or not url.hostname:
        raise InvalidParameterValueException(
            f"--endpoint {endpoint}: give http://HOST:PORT (the Lambda API of `fastinvoke "
            "serve`), tcp://HOST:PORT or ipc://PATH (its --zmq endpoint)")
    deadline = time.monotonic() + wait_s
    while True:
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=930)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response, response.read()
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise ServiceException(
                    f"nothing answers at {endpoint}: start `fastinvoke serve` there "
                    f"(this waited {wait_s:g} s for it)") from None
            time.sleep(_RETRY_S)
        except (http.client.HTTPException, ConnectionError) as exc:
            said = " ".join(str(exc).split())[:80]  # one line, whatever was received
            raise ServiceException(
                f"{endpoint} gave no HTTP answer ({type(exc).__name__}: {said}): is it the "
                "address `fastinvoke serve` printed when it started?") from None
        finally:
            connection.close()


def _raise_error(endpoint: str, response: http.client.HTTPResponse, body: bytes) -> None:
    """Raise the Lambda error the server answered with, or refuse an answer that is not
    a Lambda API's."""
    error_type = response.getheader("x-amzn-ErrorType")
    request_id = response.getheader("x-amzn-RequestId")
    if error_type is None and request_id is None:
        raise InvalidParameterValueException(_not_lambda(endpoint, response))
    if error_type is not None:
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            document = None
        if not isinstance(document, dict):
            document = {"message": body.decode("utf-8", "replace")[:200]}
        message = document.pop("message", None) or document.pop("Message", "")
        document.pop("Type", None)
        raise service_error(error_type.split(":")[0], message, document)


def _not_lambda(endpoint: str, response: http.client.HTTPResponse) -> str:
    """Why an answer without Lambda's ``x-amzn-RequestId`` (and not one of its errors,
    ``x-amzn-ErrorType``) is refused: another program holds the port, or the URL is
    not a Lambda API's."""
    server = response.getheader("Server")
    return (f"{endpoint} is not a Lambda API: it answered {response.status} "
            f"{response.reason[:80]}".rstrip() + (f" ({server[:80]})" if server else "")
            + " without Lambda's x-amzn-RequestId header; give --endpoint the address "
            "`fastinvoke serve` prints when it starts")
