"""The embedded API: create functions and invoke them, synchronously or with asyncio.

``Invoker`` owns a state directory, the dispatcher (the workers' shared-memory links) and
the supervisor (templates, workers, deadlines).  ``invoke`` follows Lambda's
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
import warnings
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import msgspec

from . import logs
from .config import FunctionConfig
from .dispatch import Batch, Dispatcher, Invocation
from .errors import (
    FastInvokeError,
    FunctionError,
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceError,
    ServiceException,
    TooManyRequestsException,
    ValidationException,
)
from .events import EventInvokeConfig
from .events.destinations import Deliverer
from .events.queue import EventQueue
from .events.store import MemoryEventStore, SqliteEventStore
from .limits import ASYNC_PAYLOAD_LIMIT, MIN_MEMORY_MB, SYNC_PAYLOAD_LIMIT
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
from .registry import FunctionEntry, Registry
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
        Where functions, queued events, meters and logs live.  None: a private
        temporary directory, removed on ``close``.
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
    durable_events:
        Keep accepted Event invocations in SQLite (``events.db`` in the state dir) until
        they are done, so that a restart with the same state dir runs every one of them.
        None (the default): durable with a state dir of your own, in memory with a
        private one (which is removed at ``close``).
    event_retry_delays_s:
        The delays before an Event invocation's 2nd and 3rd attempts after a function
        error (Lambda: about 1 and 2 minutes).
    memory_budget_mb:
        Most memory the workers' limits may add up to (default: the machine's RAM).
        Past it, invocations wait for a worker to end, and idle workers of other
        functions are stopped to make room, rather than the machine swapping.
    spare_workers:
        When an invocation takes a function's last idle worker, fork the next one at
        once, so a rise in concurrency does not wait for a fork (a spare counts against
        ``max_workers`` and the memory budget; its first invocation is a cold start).

    With a state dir of your own, functions (and their Event settings), queued Event
    invocations, counters and logs carry over to the next Invoker made with it.
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
        durable_events: bool | None = None,
        event_retry_delays_s: tuple[float, ...] = (60.0, 120.0),
        memory_budget_mb: int | None = None,
        spare_workers: bool = True,
    ) -> None:
        new_meter(billing)  # refuse an unknown preset before anything starts
        if max_workers is not None and max_workers < 1:
            raise ValidationException(f"max_workers must be at least 1, not {max_workers}")
        if memory_budget_mb is not None and memory_budget_mb < MIN_MEMORY_MB:
            raise ValidationException(f"memory_budget_mb must be at least {MIN_MEMORY_MB} (the "
                                      f"smallest function), not {memory_budget_mb}")
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
        self._dispatcher = Dispatcher()
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
                                      groups, cpu_limits, memory_limits, memory_budget_mb,
                                      spare_workers)
        if durable_events is None:
            durable_events = not self._own_state_dir
        store = (SqliteEventStore(os.path.join(self.state_dir, "events.db")) if durable_events
                 else MemoryEventStore())
        deliverer = Deliverer(self.state_dir, region, account_id, self._invoke_destination)
        self._events = EventQueue(self._dispatcher, store, self._capacity, deliverer,
                                  event_retry_delays_s)
        self._registry = Registry(None if self._own_state_dir else self.state_dir)
        self._restore_functions()

    # -- functions --------------------------------------------------------------------------

    def create_function(self, config: FunctionConfig) -> FunctionConfig:
        """Add a function and start its Init in the background."""
        config.validate()
        with self._admin:
            self._check_open()
            if config.name in self._pools:
                raise ResourceConflictException(f"Function already exist: {config.name}")
            self._add_pool(config)
            self._save_functions()
        return config

    def put_function(self, config: FunctionConfig) -> FunctionConfig:
        """Create the function, or bring it to ``config`` if it exists and differs (as a
        deployment does): its reserved concurrency with ``put_function_concurrency``, the
        rest with ``update_function``.  Counters, queued events and Event settings carry
        over."""
        config.validate()
        with self._admin:
            self._check_open()
            pool = self._pools.get(config.name)
            if pool is None:
                self._add_pool(config)
                self._save_functions()
                return config
        if config.reserved_concurrency != pool.config.reserved_concurrency:
            if config.reserved_concurrency is None:
                self.delete_function_concurrency(config.name)
            else:
                self.put_function_concurrency(config.name, config.reserved_concurrency)
        changes = {field: getattr(config, field) for field in config.__struct_fields__
                   if getattr(config, field) != getattr(pool.config, field)}
        return self.update_function(config.name, **changes) if changes else pool.config

    def _add_pool(self, config: FunctionConfig,
                  event_config: EventInvokeConfig | None = None) -> None:
        limit = self._worker_limit(config)
        meter = new_meter(self.billing)
        saved = self._usage.pop(config.name, None)
        if saved is not None:  # a persistent state dir, or a replaced function: counters go on
            meter.restore(saved.counters)
        pool = FunctionPool(config, meter, limit)
        self._pools[config.name] = pool
        self._reserved_total += config.reserved_concurrency or 0
        with self._dispatcher.lock:
            self._supervisor.add(pool)
            lane = self._events.add_function(pool, self.function_arn(config.name))
            if event_config is not None:
                lane.config = event_config

    def _remove_pool(self, pool: FunctionPool) -> None:
        del self._pools[pool.name]
        self._reserved_total -= pool.config.reserved_concurrency or 0
        self._usage[pool.name] = _usage_of(pool)  # its invocations stay on the bill
        with self._dispatcher.lock:
            self._supervisor.remove(pool)
            self._events.remove_function(pool.name)

    def _restore_functions(self) -> None:
        for entry in self._registry.load():
            try:
                entry.config.validate()
            except FastInvokeError as exc:
                warnings.warn(f"function {entry.config.name} of {self.state_dir} not restored: "
                              f"{exc}; create it again", RuntimeWarning, stacklevel=3)
                continue
            self._add_pool(entry.config, entry.event_invoke_config)

    def _save_functions(self) -> None:
        """Write down the functions (admin lock held)."""
        entries = []
        for name, pool in self._pools.items():
            event_config = self._events.lane(name).config
            entries.append(FunctionEntry(
                config=pool.config,
                event_invoke_config=event_config if event_config.last_modified else None))
        self._registry.save(entries)

    def delete_function(self, name: str) -> None:
        """Remove a function; invocations still waiting for it fail, its queued Event
        invocations are dropped (as Lambda drops them)."""
        with self._admin:
            self._remove_pool(self._pool(name))
            self._save_functions()
        self._logs.delete_group(logs.log_group(name))

    def recycle(self, name: str) -> int:
        """Stop the function's idle workers, so the next invocation is a cold start.

        The template stays initialised: the new worker is a fork of it, as after Lambda
        recycles an execution environment.  Returns, once they have ended, how many
        workers were stopped.
        """
        pool = self._pool(name)
        with self._dispatcher.lock:
            idle = [record for record in pool.workers.values()
                    if self._supervisor.is_idle(record)]
            for record in idle:
                self._supervisor.stop_worker(record)
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
            self._save_functions()
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
        self._save_functions()

    def _worker_limit(self, config: FunctionConfig) -> int:
        limit = self.account_limit if config.reserved_concurrency is None \
            else config.reserved_concurrency
        return limit if self._max_workers is None else min(limit, self._max_workers)

    # -- asynchronous invocation settings (Lambda's EventInvokeConfig) ------------------------

    def event_invoke_config(self, name: str, *, maximum_retry_attempts: int | None = None,
                            maximum_event_age_s: int | None = None,
                            on_success: str | None = None,
                            on_failure: str | None = None) -> EventInvokeConfig:
        """Set how the function's Event invocations are retried and where their records
        go, replacing earlier settings (PutFunctionEventInvokeConfig).  Destinations: a
        function's name or ARN, an SQS/SNS/EventBridge ARN (kept as JSON lines under
        ``<state dir>/destinations/``) or ``file:///path.jsonl``."""
        return self._set_event_config(name, EventInvokeConfig(
            maximum_retry_attempts=maximum_retry_attempts,
            maximum_event_age_s=maximum_event_age_s, on_success=on_success,
            on_failure=on_failure))

    def update_event_invoke_config(self, name: str, **changes: Any) -> EventInvokeConfig:
        """Change only the settings given (UpdateFunctionEventInvokeConfig)."""
        current = self._events.lane(self._pool(name).name).config
        return self._set_event_config(name, msgspec.structs.replace(current, **changes))

    def get_event_invoke_config(self, name: str) -> EventInvokeConfig:
        config = self._events.lane(self._pool(name).name).config
        if not config.last_modified:
            raise ResourceNotFoundException(
                f"The function {self.function_arn(name)}:$LATEST doesn't have an "
                "EventInvokeConfig")
        return config

    def delete_event_invoke_config(self, name: str) -> None:
        """Back to Lambda's defaults: 2 retries, 6 hours, no destinations."""
        self.get_event_invoke_config(name)
        with self._admin:
            self._events.lane(name).config = EventInvokeConfig()
            self._save_functions()

    def _set_event_config(self, name: str, config: EventInvokeConfig) -> EventInvokeConfig:
        if self._pools.get(name) is None:
            raise ResourceNotFoundException("The function doesn't exist.")
        if (config.maximum_retry_attempts is None and config.maximum_event_age_s is None
                and config.on_success is None and config.on_failure is None):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting.")
        config.validate(name)
        config.last_modified = time.time()
        with self._admin:
            self._events.lane(self._pool(name).name).config = config
            self._save_functions()
        return config

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
        HTTP error; a function error is returned in the result.  An ``Event`` invocation
        returns (202) once it is queued, durably unless ``durable_events`` is off.
        """
        pool, body, request_id = self._accept(function_name, event, invocation_type,
                                              qualifier)
        if invocation_type != "RequestResponse":
            if invocation_type == "Event":
                self._events.accept(pool, request_id, body)
                return InvokeResult(202, request_id=request_id)
            return InvokeResult(204, request_id=request_id)
        invocation = self._invocation(pool, body, request_id, client_context, qualifier)
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
        pool, body, request_id = self._accept(function_name, event, invocation_type,
                                              qualifier)
        if invocation_type != "RequestResponse":
            if invocation_type == "Event":
                await self._events.accept_async(pool, request_id, body)
                return InvokeResult(202, request_id=request_id)
            return InvokeResult(204, request_id=request_id)
        invocation = _awaitable(self._invocation(pool, body, request_id, client_context,
                                                 qualifier))
        self._dispatcher.submit(invocation)
        await self._dispatcher.wait_async(invocation)
        return self._result(invocation, log_type)

    def invoke_many(
        self,
        function_name: str,
        events: Iterable[Any],
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        concurrency: int | None = None,
    ) -> list[InvokeResult]:
        """Invoke once per event, streamed through the function's workers; results in the
        events' order.

        Each invocation is Lambda's own (its request id, duration, bill, meters, log lines
        and, for a function error, its error document in its place); each environment
        still runs one at a time.  What a batch saves is the caller's round trips: the next
        event goes to a worker as soon as it replies, and the caller is woken once.  At
        most ``concurrency`` run at once (default: one per CPU), within the function's
        concurrency.  Every event is validated before any runs; a throttle raises before
        any runs, as ``invoke``'s would.  ``Event`` queues each (202), ``DryRun`` only
        validates (204).
        """
        pool, bodies = self._accept_many(function_name, events, invocation_type)
        if invocation_type != "RequestResponse":
            return [self._accept_untimed(pool, invocation_type, body) for body in bodies]
        if not bodies:
            return []
        batch = self._batch(pool, bodies)
        self._dispatcher.submit_batch(batch, self._batch_width(pool, concurrency))
        self._dispatcher.wait(batch.sentinel)
        return [self._result(invocation, log_type) for invocation in batch.invocations]

    async def ainvoke_many(
        self,
        function_name: str,
        events: Iterable[Any],
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        concurrency: int | None = None,
    ) -> list[InvokeResult]:
        """``invoke_many`` for asyncio: awaits the batch on the running loop."""
        pool, bodies = self._accept_many(function_name, events, invocation_type)
        if invocation_type != "RequestResponse":
            if invocation_type == "DryRun":
                return [InvokeResult(204, request_id=new_request_id()) for _ in bodies]
            results = []
            for body in bodies:
                request_id = new_request_id()
                await self._events.accept_async(pool, request_id, body)
                results.append(InvokeResult(202, request_id=request_id))
            return results
        if not bodies:
            return []
        batch = self._batch(pool, bodies)
        _awaitable(batch.sentinel)
        self._dispatcher.submit_batch(batch, self._batch_width(pool, concurrency))
        await self._dispatcher.wait_async(batch.sentinel)
        return [self._result(invocation, log_type) for invocation in batch.invocations]

    def _accept_many(self, function_name: str, events: Iterable[Any],
                     invocation_type: str) -> tuple[FunctionPool, list[bytes]]:
        """Validate every event of a batch before any runs; an error names the event."""
        pool = self._target(function_name, invocation_type, None)
        limit = _limit(invocation_type)
        bodies = []
        for index, event in enumerate(events):
            try:
                bodies.append(_event_bytes(event, invocation_type, limit))
            except ServiceError as error:
                raise type(error)(f"event {index}: {error.message}", **error.fields) from None
        return pool, bodies

    def _accept_untimed(self, pool: FunctionPool, invocation_type: str,
                        body: bytes) -> InvokeResult:
        request_id = new_request_id()
        if invocation_type == "Event":
            self._events.accept(pool, request_id, body)
            return InvokeResult(202, request_id=request_id)
        return InvokeResult(204, request_id=request_id)

    def _batch(self, pool: FunctionPool, bodies: list[bytes]) -> Batch:
        arn = self.function_arn(pool.name)
        invocations = [Invocation(new_request_id(), pool, body, arn) for body in bodies]
        return Batch(invocations, Invocation("", pool, b"", arn))

    def _batch_width(self, pool: FunctionPool, concurrency: int | None) -> Callable[[], int]:
        if concurrency is not None and concurrency < 1:
            raise ValidationException(f"concurrency must be at least 1, not {concurrency}")
        wanted = concurrency or os.cpu_count() or 1
        return lambda: max(1, min(wanted, self._capacity(pool)))

    def watch_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let ``loop`` (from its own thread) keep reading the workers' replies between
        ``ainvoke`` calls, until ``unwatch_from``: a server whose requests come and go
        saves registering the replies' eventfd with the loop for every call."""
        self._dispatcher.watch(loop)

    def unwatch_from(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dispatcher.unwatch(loop)

    def call(self, function_name: str, event: Any = None) -> Any:
        """Invoke synchronously and return the decoded result; raise ``FunctionError``."""
        result = self.invoke(function_name, event)
        if result.function_error is not None:
            raise FunctionError(_validate_json(result.payload), result.payload, result.request_id)
        return _validate_json(result.payload) if result.payload else None

    def _accept(self, function_name: str, event: Any, invocation_type: str,
                qualifier: str | None) -> tuple[FunctionPool, bytes, str]:
        """Validate an invocation as Lambda does before accepting it."""
        pool = self._target(function_name, invocation_type, qualifier)
        body = _event_bytes(event, invocation_type, _limit(invocation_type))
        return pool, body, new_request_id()

    def _target(self, function_name: str, invocation_type: str,
                qualifier: str | None) -> FunctionPool:
        """The pool an invocation of this type goes to, once both are checked."""
        if invocation_type not in _INVOCATION_TYPES:
            raise ValidationException(
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]"
            )
        return self._invocable(function_name, qualifier)

    def _invocation(self, pool: FunctionPool, body: bytes, request_id: str,
                    client_context: dict[str, Any] | str | None,
                    qualifier: str | None) -> Invocation:
        arn = self.function_arn(pool.name)
        if qualifier is not None:  # the context shows the ARN the caller used
            arn += ":" + qualifier
        return Invocation(request_id, pool, body, arn, _client_context(client_context))

    def _invoke_destination(self, name: str, record: bytes) -> None:
        """A destination function gets the record as an Event invocation (also while
        closing: the record is queued for the next run)."""
        self._events.accept(self._pool(name), new_request_id(), record)

    def _result(self, invocation: Invocation, log_type: str | None) -> InvokeResult:
        return InvokeResult(
            200,
            invocation.payload,
            None if invocation.error_type is None else "Unhandled",
            logs.tail(invocation.log_entry.text()) if log_type == "Tail" else None,
            "$LATEST",
            invocation.request_id,
        )

    def _capacity(self, pool: FunctionPool) -> int:
        """How many more invocations ``pool`` may run now (dispatcher lock held)."""
        room = pool.max_workers - pool.active
        if pool.config.reserved_concurrency is None:
            room = min(room, self.account_limit - self._reserved_total
                       - self._dispatcher.active_unreserved)
        return room

    def _admit(self, invocation: Invocation) -> None:
        """Lambda's throttling of a synchronous call (dispatcher lock held): past the
        function's reserved concurrency, or past what the account leaves unreserved.
        (Event invocations never get here: they wait in their queue for capacity.)"""
        pool = invocation.pool
        if pool.config.memory_mb > self._supervisor.budget.limit_mb:
            raise TooManyRequestsException("ConcurrentInvocationLimitExceeded",
                                           self._supervisor.budget.too_big(pool))
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

    def event_stats(self, name: str | None = None) -> dict[str, int]:
        """Event invocations queued, delayed (before a retry) and running, for one function
        or all; and since this Invoker started: how many were recovered from the state
        dir, how many of those had started an attempt before the previous run ended
        (``redelivered``: they may run twice; 0 after a clean ``close``) and how many
        records could not be delivered."""
        if name is not None:
            self._pool(name)
        return self._events.stats(name)

    def wait_for_events(self, name: str | None = None, timeout_s: float | None = None) -> bool:
        """Block until no Event invocation of ``name`` (None: of any function) is queued
        or running; retries waiting for their delay do not count.  Returns False if
        ``timeout_s`` passed first."""
        if name is not None:
            self._pool(name)
        return self._events.wait_settled(name, timeout_s)

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

    def close(self, grace_s: float = 30.0) -> None:
        """Stop every worker and template; remove a private state directory.  Idempotent.

        Running Event invocations get ``grace_s`` to finish; queued ones (and those cut
        short) stay in a durable queue for the next Invoker with this state dir."""
        with self._admin:
            if self._closed:
                return
            self._closed = True
        self._events.close(grace_s)
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


def _limit(invocation_type: str) -> int:
    """Lambda's payload limit for the invocation type."""
    return ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT


def _awaitable(invocation: Invocation) -> Invocation:
    """``invocation``, to be awaited on the running loop (its thread)."""
    loop = asyncio.get_running_loop()
    invocation.loop = loop
    invocation.loop_thread = threading.get_ident()
    invocation.future = loop.create_future()
    return invocation


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

