"""The embedded API: create functions and invoke them, synchronously or with asyncio.

``Invoker`` owns a state directory, the dispatcher (the ZeroMQ ROUTER the workers talk
to) and the supervisor (templates, workers, deadlines).  ``invoke`` follows Lambda's
semantics: a function error is a result (``function_error="Unhandled"``), never an
exception; only caller errors (unknown function, bad payload, throttling) raise, as the
``ServiceError`` Lambda would answer with.  ``call`` is the convenience that decodes the
result and raises ``FunctionError`` instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import os
import shutil
import tempfile
import threading
import time
from types import TracebackType
from typing import Any

import msgspec

from . import logs
from .config import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT, FunctionConfig
from .dispatch import Dispatcher, Invocation
from .errors import (
    FunctionError,
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceException,
    TooManyRequestsException,
    ValidationException,
)
from .logstore import LogEvent, LogStore
from .metering import (
    OUT_OF_MEMORY,
    TIMEOUT,
    Bill,
    Prices,
    Usage,
    bill_usage,
    load_usage,
    new_meter,
    save_usage,
    snapshot,
)
from .pool.cgroups import CPU_MODES, detect
from .pool.supervisor import Supervisor
from .pool.workers import FunctionPool
from .requests import new_request_id

ACCOUNT_LIMIT = 1000
UNRESERVED_MINIMUM = 100  # concurrency Lambda keeps for functions without a reservation
_INSTANCES = itertools.count(1)  # several Invokers in one process get their own groups
_RECYCLE_WAIT_S = 10.0
_INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
_validate_json = msgspec.json.decode
_encode_json = msgspec.json.encode


class InvokeResult(msgspec.Struct, frozen=True):
    """What Lambda's Invoke answers (botocore's field names in snake case).

    ``payload`` holds the result bytes exactly as the function produced them, or the
    error document when ``function_error`` is set.
    """

    status_code: int
    payload: bytes = b""
    function_error: str | None = None
    log_result: str | None = None
    executed_version: str | None = None
    request_id: str = ""


class Invoker:
    """Run Lambda-style functions in warm pools of isolated worker processes.

    Parameters
    ----------
    state_dir:
        Where sockets and logs live.  None: a private temporary directory, removed on
        ``close``.
    keep_warm_s:
        How long an idle worker is kept before it is stopped (Lambda keeps environments
        for minutes; default 10 minutes).
    max_workers:
        Most workers one function may have; invocations beyond it wait for a free
        worker.  None: the function's concurrency limit.
    billing:
        ``classic`` (100 ms units, Init not billed) or ``current`` (1 ms, Init billed).
    region, account_id:
        Used in ARNs and in the functions' environment.
    cpu_limits:
        ``proportional`` (a hard CPU quota of 1 vCPU per 1,769 MB, as Lambda gives),
        ``weighted`` (shares in that proportion, idle CPU usable) or ``off``.
    account_limit:
        Concurrent executions for all functions together (Lambda's default 1,000); a
        function's reserved concurrency is taken out of it for the others.  Past either,
        a synchronous call is throttled (``TooManyRequestsException``).
    memory_limits:
        Each worker's memory limit is its function's memory size (an out-of-memory kill
        is reported as Lambda reports it); False measures memory without limiting it.
        With ``cpu_limits="off"`` and ``memory_limits=False`` no cgroup is made at all.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        keep_warm_s: float = 600.0,
        max_workers: int | None = None,
        billing: str = "classic",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        cpu_limits: str = "proportional",
        memory_limits: bool = True,
        account_limit: int = ACCOUNT_LIMIT,
    ) -> None:
        new_meter(billing)  # refuse an unknown preset before anything starts
        self._own_state_dir = state_dir is None
        self.state_dir = (tempfile.mkdtemp(prefix="fastinvoke-") if state_dir is None
                          else os.fspath(state_dir))
        os.makedirs(self.state_dir, exist_ok=True)
        self.region = region
        self.account_id = account_id
        self.billing = billing
        self._max_workers = max_workers
        self._pools: dict[str, FunctionPool] = {}
        self._logs = LogStore(os.path.join(self.state_dir, "logs.db"))
        self._usage_path = os.path.join(self.state_dir, "meters.json")
        self._usage = load_usage(self._usage_path)
        self._closed = False
        self._admin = threading.Lock()
        self._dispatcher = Dispatcher(f"ipc://{self.state_dir}/workers")
        self._dispatcher.account = self._account
        self._dispatcher.admit = self._admit
        self.account_limit = account_limit
        self._reserved_total = 0  # concurrency reserved by functions, out of account_limit
        if cpu_limits not in CPU_MODES:
            raise ValidationException(
                f"cpu_limits must be one of {', '.join(CPU_MODES)}, not '{cpu_limits}'")
        groups = None
        if memory_limits or cpu_limits != "off":
            groups = detect().instance(f"{os.getpid()}.{next(_INSTANCES)}")
        self._supervisor = Supervisor(self._dispatcher, self.state_dir, region, keep_warm_s,
                                      groups, cpu_limits, memory_limits)

    # -- functions --------------------------------------------------------------------------

    def create_function(self, config: FunctionConfig) -> FunctionConfig:
        """Add a function and start its Init in the background."""
        config.validate()
        with self._admin:
            self._check_open()
            if config.name in self._pools:
                raise ResourceConflictException(f"Function already exist: {config.name}")
            limit = self._worker_limit(config)
            meter = new_meter(self.billing)
            saved = self._usage.get(config.name)
            if saved is not None:  # a persistent state dir: the counters go on
                meter.restore(saved.counters)
            pool = FunctionPool(config, meter, limit)
            self._pools[config.name] = pool
            self._reserved_total += config.reserved_concurrency or 0
            with self._dispatcher.lock:
                self._supervisor.add(pool)
        return config

    def delete_function(self, name: str) -> None:
        """Remove a function; invocations still waiting for it fail."""
        with self._admin:
            pool = self._pool(name)
            del self._pools[name]
            self._reserved_total -= pool.config.reserved_concurrency or 0
            self._usage[name] = _usage_of(pool)  # its invocations stay on the bill
            with self._dispatcher.lock:
                self._supervisor.remove(pool)
        self._logs.delete_group(logs.log_group(name))

    def recycle(self, name: str) -> int:
        """Stop the function's idle workers, so the next invocation is a cold start.

        The template stays initialised: the new worker is a fork of it, as after Lambda
        recycles an execution environment.  Returns, once they have ended, how many
        workers were stopped.
        """
        pool = self._pool(name)
        with self._dispatcher.lock:
            idle = [record for record in pool.workers.values() if record.state == "idle"]
            for record in idle:
                self._supervisor.stop_worker(record)
            self._dispatcher._drain()
            self._supervisor.ended.wait_for(
                lambda: not any(record.id in pool.workers for record in idle),
                timeout=_RECYCLE_WAIT_S)
        return len(idle)

    def get_function(self, name: str) -> FunctionConfig:
        return self._pool(name).config

    def list_functions(self) -> list[FunctionConfig]:
        return [pool.config for pool in self._pools.values()]

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    # -- changing functions: configuration, code, reserved concurrency ------------------------

    def update_function(self, name: str, **changes: Any) -> FunctionConfig:
        """Change a function's configuration or code (its ``code`` directory), as Lambda's
        UpdateFunctionConfiguration and UpdateFunctionCode do.

        ``changes`` are ``FunctionConfig`` fields.  Invocations from now on run in new
        execution environments (Init runs again); the current workers finish what they
        run, then stop.  Meters and logs go on.  Returns the new configuration.
        """
        fixed = sorted({"name", "reserved_concurrency"}.intersection(changes))
        if fixed:
            raise InvalidParameterValueException(
                f"update_function cannot change {', '.join(fixed)}: a function keeps its name; "
                "use put_function_concurrency or delete_function_concurrency")
        with self._admin:
            pool = self._pool(name)
            try:
                config = msgspec.structs.replace(pool.config, **changes).validate()
            except TypeError as exc:  # a keyword that is not a FunctionConfig field
                raise InvalidParameterValueException(
                    f"update_function: {exc}; give FunctionConfig fields") from None
            with self._dispatcher.lock:
                pool.config = config
                self._supervisor.renew(pool)
        return config

    def put_function_concurrency(self, name: str, reserved: int) -> None:
        """Reserve ``reserved`` concurrent executions for the function, which also caps
        it (0 stops it from running).  The account keeps at least 100 unreserved."""
        _check_reserved(reserved)
        with self._admin:
            pool = self._pool(name)
            others = self._reserved_total - (pool.config.reserved_concurrency or 0)
            if self.account_limit - others - reserved < UNRESERVED_MINIMUM:
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of "
                    f"[{UNRESERVED_MINIMUM}].")
            self._set_reserved(pool, reserved)

    def delete_function_concurrency(self, name: str) -> None:
        """Remove the function's reservation: it shares the unreserved pool again."""
        with self._admin:
            self._set_reserved(self._pool(name), None)

    def _set_reserved(self, pool: FunctionPool, reserved: int | None) -> None:
        config = msgspec.structs.replace(pool.config, reserved_concurrency=reserved)
        with self._dispatcher.lock:
            if (pool.config.reserved_concurrency is None) != (reserved is None):
                # ``complete`` counts an invocation by its function's configuration then:
                # move the ones in flight to the count they will leave.
                self._dispatcher.active_unreserved += \
                    pool.active if reserved is None else -pool.active
            self._reserved_total += (reserved or 0) - (pool.config.reserved_concurrency or 0)
            pool.config = config
            pool.max_workers = self._worker_limit(config)

    def _worker_limit(self, config: FunctionConfig) -> int:
        limit = self.account_limit if config.reserved_concurrency is None \
            else config.reserved_concurrency
        return limit if self._max_workers is None else min(limit, self._max_workers)

    # -- invoking ---------------------------------------------------------------------------

    def invoke(
        self,
        function_name: str,
        event: Any = None,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        client_context: dict[str, Any] | str | None = None,
        qualifier: str | None = None,
    ) -> InvokeResult:
        """Invoke a function as Lambda's Invoke API does (thread-safe).

        ``event`` is any JSON-serialisable value, or ``bytes`` holding JSON as it came
        off the wire (validated).  ``client_context`` is a dict, or Lambda's base64 of a
        JSON object.  Raises ``ServiceError`` subclasses for what Lambda answers with an
        HTTP error; a function error is returned in the result.
        """
        invocation = self._prepare(function_name, event, invocation_type, client_context,
                                   qualifier)
        if type(invocation) is InvokeResult:
            return invocation
        self._dispatcher.submit(invocation)
        self._dispatcher.wait(invocation)
        return self._result(invocation, log_type)

    async def ainvoke(
        self,
        function_name: str,
        event: Any = None,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        client_context: dict[str, Any] | str | None = None,
        qualifier: str | None = None,
    ) -> InvokeResult:
        """``invoke`` for asyncio: awaits the result on the running loop (uvloop too)."""
        invocation = self._prepare(function_name, event, invocation_type, client_context,
                                   qualifier)
        if type(invocation) is InvokeResult:
            return invocation
        loop = asyncio.get_running_loop()
        invocation.loop = loop
        invocation.loop_thread = threading.get_ident()
        invocation.future = loop.create_future()
        self._dispatcher.submit(invocation)
        await self._dispatcher.wait_async(invocation)
        return self._result(invocation, log_type)

    def call(self, function_name: str, event: Any = None) -> Any:
        """Invoke synchronously and return the decoded result; raise ``FunctionError``."""
        result = self.invoke(function_name, event)
        if result.function_error is not None:
            raise FunctionError(_validate_json(result.payload), result.payload, result.request_id)
        return _validate_json(result.payload) if result.payload else None

    def _prepare(self, function_name: str, event: Any, invocation_type: str,
                 client_context: dict[str, Any] | str | None,
                 qualifier: str | None) -> Invocation | InvokeResult:
        if invocation_type not in _INVOCATION_TYPES:
            raise ValidationException(
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]"
            )
        pool = self._invocable(function_name, qualifier)
        limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
        body = _event_bytes(event, invocation_type, limit)
        request_id = new_request_id()
        if invocation_type == "DryRun":
            return InvokeResult(204, request_id=request_id)
        context = _client_context(client_context) if invocation_type != "Event" else None
        arn = self.function_arn(pool.name)
        if qualifier is not None:  # the context shows the ARN the caller used
            arn += ":" + qualifier
        invocation = Invocation(request_id, pool, body, arn, context)
        if invocation_type == "Event":
            invocation.callback = _ignore_result
            self._dispatcher.submit(invocation)
            return InvokeResult(202, request_id=request_id)
        return invocation

    def _result(self, invocation: Invocation, log_type: str | None) -> InvokeResult:
        return InvokeResult(
            200,
            invocation.payload,
            None if invocation.error_type is None else "Unhandled",
            logs.tail(invocation.log_entry.text()) if log_type == "Tail" else None,
            "$LATEST",
            invocation.request_id,
        )

    def _admit(self, invocation: Invocation) -> None:
        """Lambda's throttling of a synchronous call (dispatcher lock held): past the
        function's reserved concurrency, or past what the account leaves unreserved."""
        if invocation.callback is not None:
            return  # an Event invocation waits for capacity instead
        pool = invocation.pool
        reserved = pool.config.reserved_concurrency
        if reserved is not None:
            if pool.active >= reserved:
                pool.meter.throttled()
                raise TooManyRequestsException(
                    "ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        if self._dispatcher.active_unreserved >= self.account_limit - self._reserved_total:
            pool.meter.throttled()
            raise TooManyRequestsException("ConcurrentInvocationLimitExceeded")

    def _account(self, invocation: Invocation) -> None:
        """Meter a finished invocation and write its log lines (dispatcher lock held)."""
        pool = invocation.pool
        memory_mb = pool.config.memory_mb
        invocation.billed_ms = pool.meter.record(invocation.duration_ns, invocation.init_ns,
                                                 memory_mb, invocation.outcome, invocation.cold,
                                                 invocation.started_ns != 0)
        status = error_type = None
        if invocation.outcome == TIMEOUT:
            status = "timeout"
        elif invocation.outcome >= OUT_OF_MEMORY:
            status = "error"
            error_type = ("Runtime.OutOfMemory" if invocation.outcome == OUT_OF_MEMORY
                          else invocation.error_type)
        invocation.log_entry = entry = logs.InvocationLog(
            time.time_ns() // 1_000_000, invocation.request_id, invocation.log,
            invocation.duration_ns, invocation.billed_ms, memory_mb, invocation.max_rss_kb,
            invocation.init_ns if invocation.cold else None, status, error_type,
        )
        self._logs.append(logs.log_group(pool.name), invocation.log_stream, (entry,))

    # -- observing --------------------------------------------------------------------------

    def meter(self, name: str) -> dict[str, Any]:
        """The function's exact counters and GB-seconds."""
        figures = snapshot(self._pool(name).meter)
        figures["function"] = name
        figures["billing"] = self.billing
        return figures

    def bill(self, prices: dict[str, Prices] | None = None) -> Bill:
        """What the invocations so far would cost on Lambda, free tier applied, exact
        (with a persistent state dir: every run's, deleted functions' included).

        ``prices`` maps an architecture to its ``Prices`` (AWS's us-east-1 defaults)."""
        usage = dict(self._usage)
        usage.update((name, _usage_of(pool)) for name, pool in list(self._pools.items()))
        return bill_usage(usage, prices)

    def logs(self, name: str, *, since_ms: int | None = None,
             pattern: str | None = None) -> list[logs.LogRecord]:
        """The function's log records, newest last: one per invocation, START to REPORT.

        ``since_ms`` (Unix ms) and ``pattern`` (CloudWatch Logs filter syntax: terms,
        "phrases", ?any, -exclude) select lines as ``fastinvoke logs`` does."""
        self._pool(name)
        self._logs.flush()
        return logs.records(self._logs.events(logs.log_group(name), since_ms=since_ms,
                                              pattern=pattern))

    def set_log_retention(self, name: str, days: int | None) -> None:
        """Keep the function's logs ``days`` (CloudWatch's allowed values), then purge them;
        None keeps them for ever (the default)."""
        self._pool(name)
        try:
            self._logs.set_retention(logs.log_group(name), days)
        except ValueError as exc:
            raise InvalidParameterValueException(str(exc)) from None

    def log_events(self, name: str, **query: Any) -> list[LogEvent]:
        """The function's log lines as the store keeps them (see ``LogStore.events``)."""
        self._pool(name)
        self._logs.flush()
        return self._logs.events(logs.log_group(name), **query)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker and template; remove a private state directory.  Idempotent."""
        with self._admin:
            if self._closed:
                return
            self._closed = True
        self._supervisor.stop()
        self._dispatcher.close()
        self._logs.close()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        else:  # counters continue in the next run with this state dir
            self._usage.update((name, _usage_of(pool)) for name, pool in self._pools.items())
            save_usage(self._usage_path, self._usage)

    def __enter__(self) -> Invoker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceException("This Invoker is closed; create a new one.")

    def _pool(self, name: str) -> FunctionPool:
        pool = self._pools.get(name)
        if pool is None:
            raise ResourceNotFoundException(f"Function not found: {self.function_arn(name)}")
        return pool

    def _invocable(self, name: str, qualifier: str | None) -> FunctionPool:
        self._check_open()
        pool = self._pools.get(name)
        if pool is None or qualifier not in (None, "$LATEST"):
            raise ResourceNotFoundException(
                f"Function not found: {self.function_arn(name)}:{qualifier or '$LATEST'}")
        return pool


def _event_bytes(event: Any, invocation_type: str, limit: int) -> bytes:
    """The event as JSON bytes, validated once here; the worker decodes it."""
    if isinstance(event, (bytes, bytearray, memoryview)):
        body = bytes(event)
        if not body:
            body = b"{}"  # Lambda runs an empty payload as {}
        else:
            try:
                _validate_json(body)
            except msgspec.DecodeError as exc:
                raise InvalidRequestContentException(
                    f"Could not parse request body into json: Could not parse payload into "
                    f"json: {exc}") from None
    elif event is None:
        body = b"{}"
    else:
        try:
            body = _encode_json(event)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: {exc}") from None
    if len(body) > limit:
        raise RequestEntityTooLargeException(
            f"{len(body)} byte payload is too large for the {invocation_type} invocation type "
            f"(limit {limit} bytes)")
    return body


def _client_context(value: dict[str, Any] | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return _encode_json(value).decode()
    try:
        text = base64.b64decode(value, validate=True).decode()
        _validate_json(text)
    except (binascii.Error, UnicodeDecodeError, msgspec.DecodeError):
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object.") from None
    return text


def _check_reserved(reserved: int) -> None:
    if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
        raise ValidationException(
            f"1 validation error detected: Value '{reserved}' at 'reservedConcurrentExecutions' "
            "failed to satisfy constraint: Member must have value greater than or equal to 0")


def _usage_of(pool: FunctionPool) -> Usage:
    return Usage(pool.config.architecture, pool.config.memory_mb, pool.meter.snapshot())


def _ignore_result(invocation: Invocation) -> None:
    """Event invocations: the result is metered and logged; nobody waits for it."""
