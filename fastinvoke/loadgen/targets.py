"""What a load run calls: a function embedded in this process, or a running server
through its HTTP Invoke API or its ZeroMQ endpoint.

Each target turns an answer into ``None`` (success) or a ``Failure`` of one of three
kinds: a function error (Lambda's X-Amz-Function-Error / ``InvokeResult.function_error``),
a throttle (HTTP 429, by its Reason) or another service error (by its exception name).
With a ``batch`` of N, the embedded and ZeroMQ targets' ``call_batch`` is one
``invoke_many`` of N copies of the payload, answered with one outcome per invocation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import msgspec

from ..errors import FastInvokeError, ServiceError, TooManyRequestsException
from .httpclient import Connection, Response
from .recorder import FUNCTION, SERVICE, THROTTLE, Failure

if TYPE_CHECKING:
    from ..result import InvokeResult

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"


class BenchError(FastInvokeError):
    """The run cannot start or go on; the message says what to change."""


class Target(Protocol):
    description: str

    async def start(self, concurrency: int) -> None:
        """Be ready for ``concurrency`` callers at once (connect, create the function)."""

    async def call(self) -> Failure | None:
        """One invocation of the payload; never raises for an answer, only for a bug."""

    async def call_batch(self) -> list[Failure | None]:
        """One ``invoke_many`` of the target's batch of payloads: each one's outcome."""

    async def close(self) -> None: ...


def classify_service_error(exc: ServiceError) -> Failure:
    if isinstance(exc, TooManyRequestsException):
        return Failure(THROTTLE, str(exc.fields.get("Reason", "unknown reason")))
    return Failure(SERVICE, exc.code)


class ClientTarget:
    """A client with ``ainvoke(name, payload) -> InvokeResult``, ``ainvoke_many(name,
    payloads, **many_options)`` and ``close()``: the embedded ``Invoker`` or the ZeroMQ
    client, made by ``connect`` when the run starts."""

    def __init__(self, name: str, payload: bytes, description: str,
                 connect: Callable[[], Any], batch: int = 1,
                 many_options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.payload = payload
        self.description = description
        self.payloads = [payload] * batch
        self._connect = connect
        self._many_options = many_options or {}
        self._client: Any = None

    async def start(self, concurrency: int) -> None:
        self._client = self._connect()

    async def call(self) -> Failure | None:
        try:
            result = await self._client.ainvoke(self.name, self.payload)
        except ServiceError as exc:
            return classify_service_error(exc)
        return None if result.function_error is None else Failure(FUNCTION, result.function_error)

    async def call_batch(self) -> list[Failure | None]:
        try:
            results = await self._client.ainvoke_many(self.name, self.payloads,
                                                      **self._many_options)
        except ServiceError as exc:  # none of the batch ran: each invocation failed so
            return [classify_service_error(exc)] * len(self.payloads)
        return [classify_result(result) for result in results]

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()


def classify_result(result: InvokeResult | ServiceError) -> Failure | None:
    """One invocation of a batch: a result, or a service error in its place."""
    if isinstance(result, ServiceError):
        return classify_service_error(result)
    return None if result.function_error is None else Failure(FUNCTION, result.function_error)


def embedded(template: str | os.PathLike[str], name: str, payload: bytes,
             batch: int = 1, parameters: dict[str, str] | None = None,
             layers: dict[str, str] | None = None) -> ClientTarget:
    """A function from a SAM template (``load_template``'s ``parameters`` and ``layers``),
    run in this process's own warm pool (a batch through ``Invoker.ainvoke_many``)."""

    def connect() -> Any:
        from ..invoker import Invoker
        from ..sam import load_template

        loaded = load_template(template, parameters=parameters, layers=layers)
        config = next((c for c in loaded.functions if c.name == name), None)
        if config is None:
            reason = loaded.unloadable.get(name)
            known = ", ".join(c.name for c in loaded.functions) or "none"
            raise BenchError(f"function '{name}' cannot run here: {reason}" if reason else
                             f"function '{name}' is not in {template} (functions: {known})")
        invoker = Invoker()
        invoker.create_function(config)
        return invoker

    return ClientTarget(name, payload, f"embedded, {template}", connect, batch)


def zeromq(endpoint: str, name: str, payload: bytes, batch: int = 1) -> ClientTarget:
    """fastinvoke's ZeroMQ endpoint (``tcp://`` or ``ipc://``), through its client (a
    batch as one batch request: ``ZmqClient.ainvoke_many(..., batch=N)``)."""

    def connect() -> Any:
        from ..client import ZmqClient

        return ZmqClient(endpoint)

    return ClientTarget(name, payload, f"ZeroMQ, {endpoint}", connect, batch,
                        {"batch": batch})


class HttpTarget:
    """Lambda's Invoke API (``fastinvoke serve``): one keep-alive connection per caller."""

    def __init__(self, url: str, name: str, payload: bytes, batch: int = 1) -> None:
        if batch != 1:
            raise BenchError("--batch: Lambda's HTTP Invoke API takes one event per request; "
                             "drop --batch, or give --endpoint tcp://HOST:PORT (the ZeroMQ "
                             "endpoint) or --template")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise BenchError(f"--endpoint {url}: give http://HOST:PORT (plain HTTP, as "
                             "`fastinvoke serve` speaks it)")
        self.host, self.port = parts.hostname, parts.port or 80
        self.description = f"HTTP, {url}"
        path = INVOKE_PATH.format(name=quote(name, safe=""))
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nX-Amz-Invocation-Type: RequestResponse\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode("latin-1") + payload
        self._idle: list[Connection] = []
        self._open: list[Connection] = []

    async def start(self, concurrency: int) -> None:
        for _ in range(concurrency):
            self._idle.append(await self._connect())

    async def _connect(self) -> Connection:
        try:
            connection = await Connection.open(self.host, self.port)
        except OSError as exc:
            raise BenchError(f"cannot connect to http://{self.host}:{self.port} ({exc}): start "
                             "the server (`fastinvoke serve`) or fix --endpoint") from None
        self._open.append(connection)
        return connection

    async def call(self) -> Failure | None:
        connection = self._idle.pop() if self._idle else await self._connect()
        if not connection.usable:
            connection = await self._connect()
        try:
            response = await connection.request(self.request)
        except ConnectionError as exc:
            return Failure(SERVICE, f"ConnectionError: {exc}")
        finally:
            self._idle.append(connection)
        return http_failure(response)

    async def call_batch(self) -> list[Failure | None]:
        """A batch of one: the only size this target takes (the Invoke API has no batch)."""
        return [await self.call()]

    async def close(self) -> None:
        for connection in self._open:
            connection.close()


def http_failure(response: Response) -> Failure | None:
    """An Invoke API answer as a failure, or None (botocore's rules: the error type is
    ``x-amzn-ErrorType`` up to a colon; a 429's body holds its Reason)."""
    if response.status < 300:
        error = response.headers.get("x-amz-function-error")
        return None if error is None else Failure(FUNCTION, error)
    if response.status == 429:
        try:
            reason = msgspec.json.decode(response.body).get("Reason")
        except (msgspec.DecodeError, AttributeError):
            reason = None
        return Failure(THROTTLE, reason or "unknown reason")
    error_type = response.headers.get("x-amzn-errortype", "").split(":")[0]
    return Failure(SERVICE, f"{error_type or 'HTTP'} ({response.status})")


def make_target(name: str, payload: bytes, *, template: str | os.PathLike[str] | None = None,
                endpoint: str | None = None, batch: int = 1,
                parameters: dict[str, str] | None = None,
                layers: dict[str, str] | None = None) -> Target:
    """The target for ``--template`` or ``--endpoint`` (exactly one of them); ``batch``
    N > 1 makes ``call_batch`` invoke N copies of ``payload`` at once (not over HTTP)."""
    if (template is None) == (endpoint is None):
        raise BenchError("give either --template FILE (run the function here) or --endpoint "
                         "URL (a running `fastinvoke serve`)")
    if template is not None:
        return embedded(template, name, payload, batch, parameters, layers)
    assert endpoint is not None
    scheme = endpoint.split("://", 1)[0] if "://" in endpoint else ""
    kinds: dict[str, Callable[[str, str, bytes, int], Target]] = {
        "http": HttpTarget, "tcp": zeromq, "ipc": zeromq}
    if scheme not in kinds:
        raise BenchError(f"--endpoint {endpoint}: give http://HOST:PORT (the Invoke API) or "
                         "tcp://HOST:PORT / ipc://PATH (the ZeroMQ endpoint)")
    return kinds[scheme](endpoint, name, payload, batch)
