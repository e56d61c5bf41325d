"""The embedded API: create functions and invoke them, synchronously or with asyncio.

``Invoker`` puts together the parts of one local Lambda: the functions (``deployment``),
their concurrency (``admission``), the dispatcher (the workers' shared-memory links), the
supervisor (templates, workers, deadlines), the Event queue and the meters and logs
(``ledger``).  ``invoke`` follows Lambda's semantics: a function error is a result
(``function_error="Unhandled"``), never an exception; only caller errors (unknown
function, bad payload, throttling) raise, as the ``ServiceError`` Lambda would answer
with.  ``call`` is the convenience that decodes the result and raises ``FunctionError``
instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import msgspec

from . import logs, payloads
from .admission import ACCOUNT_LIMIT, Admission, check_reserved
from .backend import Backend
from .config import ACCOUNT_ID, FunctionConfig
from .deployment import Functions
from .dispatch import Dispatcher
from .emf import Series
from .errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ServiceError,
    ValidationException,
)
from .events import EventInvokeConfig
from .events.destinations import Deliverer
from .events.queue import EventQueue
from .events.store import MemoryEventStore, SqliteEventStore
from .iam.credentials import LIFETIME_S, Credentials
from .iam.lambda_actions import KNOWN_ACTIONS
from .iam.roles import Role, Roles
from .ledger import Ledger
from .limits import MIN_MEMORY_MB
from .logstore import LogEvent
from .metering import Bill, Prices, Usage
from .metricfilters import MetricFilters
from .metricfilters import Series as MetricSeries
from .pool.budget import MemoryBudget
from .pool.cgroups import CPU_MODES, detect
from .pool.records import Batch, FunctionPool, Invocation
from .pool.supervisor import Supervisor
from .registry import Registry
from .requests import new_request_id
from .result import InvokeResult, answer
from .streaming import AsyncResponseStream, ResponseStream
from .versions import LATEST, MAX_DESCRIPTION, Alias, Version

__all__ = ["InvokeResult", "Invoker"]

_log = logging.getLogger("fastinvoke")
_INSTANCES = itertools.count(1)  # several Invokers in one process get their own groups


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
    sandbox:
        Each function in an environment of its own (needs root; README, "Sandbox"): its
        own uid, its code read-only at ``/var/task``, a private ``/tmp`` per worker,
        nothing else of the machine.  False: functions run as this process's user.
    ray_address:
        Run every function's workers on a Ray cluster (``"auto"``, ``"HOST:PORT"``; needs
        ``pip install 'fastinvoke[ray]'``; README, "Scale-out on Ray") instead of on this
        machine.  Each worker reserves ``memory_mb / 1769`` CPUs and its memory size on
        the node that holds it; this process keeps dispatching, metering and logging.
    overcommit:
        With ``ray_address``: divide each worker's reservation by this factor (load
        tests on a small cluster); its cgroup limits stay whole.
    sqs_endpoint:
        Send Event invocations' records for SQS destinations and dead-letter queues to
        those queues at this endpoint (AWS's, or an SQS-compatible server's; needs
        ``pip install 'fastinvoke[sqs]'``) instead of to their JSON-lines files.
    iam:
        Hand each function's environments credentials for its role
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, as
        Lambda does), valid for ``credentials_lifetime_s`` and renewed before they
        expire; a server (``fastinvoke serve --iam``) checks what they sign against the
        role's policies (``put_role``).  False (the default): functions keep the caller's
        AWS credentials, as SAM local gives them, so they can reach AWS itself.

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
        account_id: str = ACCOUNT_ID,
        cpu_limits: str = "proportional",
        memory_limits: bool = True,
        account_limit: int = ACCOUNT_LIMIT,
        durable_events: bool | None = None,
        event_retry_delays_s: tuple[float, ...] = (60.0, 120.0),
        memory_budget_mb: int | None = None,
        spare_workers: bool = True,
        sandbox: bool = True,
        ray_address: str | None = None,
        overcommit: float = 1.0,
        sqs_endpoint: str | None = None,
        iam: bool = False,
        credentials_lifetime_s: float = LIFETIME_S,
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValidationException(f"max_workers must be at least 1, not {max_workers}")
        if memory_budget_mb is not None and memory_budget_mb < MIN_MEMORY_MB:
            raise ValidationException(f"memory_budget_mb must be at least {MIN_MEMORY_MB} (the "
                                      f"smallest function), not {memory_budget_mb}")
        if cpu_limits not in CPU_MODES:
            raise ValidationException(
                f"cpu_limits must be one of {', '.join(CPU_MODES)}, not '{cpu_limits}'")
        self._own_state_dir = state_dir is None
        self.state_dir = (tempfile.mkdtemp(prefix="fastinvoke-") if state_dir is None
                          else os.fspath(state_dir))
        os.makedirs(self.state_dir, exist_ok=True)
        os.chmod(self.state_dir, 0o700)  # functions, their settings and logs: ours alone
        self.region = region
        self.account_id = account_id
        self.billing = billing
        self.roles = Roles(account_id, KNOWN_ACTIONS)
        self.credentials = Credentials(credentials_lifetime_s) if iam else None
        self.endpoint_url: str | None = None  # a server's, given to its functions
        self._unknown_roles: set[str] = set()
        self._ledger = Ledger(self.state_dir, billing, self._log_group_exists)
        # On a cluster, Ray places workers by memory (``ClusterSupervisor.check``).
        budget = MemoryBudget(memory_budget_mb if ray_address is None else sys.maxsize)
        self._admission = Admission(account_limit, max_workers, budget)
        self._dispatcher = Dispatcher(self._admission, self._ledger.account)
        self._supervisor: Backend
        if ray_address is None:
            groups = None
            if memory_limits or cpu_limits != "off":
                groups = detect().instance(f"{os.getpid()}.{next(_INSTANCES)}")
            self._supervisor = Supervisor(self._dispatcher, self.state_dir, region,
                                          keep_warm_s, budget, groups, cpu_limits,
                                          memory_limits, spare_workers, sandbox,
                                          environment=self._served_environment)
        else:
            from .cluster.backend import ClusterSupervisor  # imports Ray: only when asked

            if not overcommit >= 1.0:
                raise ValidationException(f"overcommit must be at least 1, not {overcommit}")
            self._supervisor = ClusterSupervisor(self._dispatcher, self.state_dir,
                                                 ray_address, region, keep_warm_s,
                                                 overcommit, cpu_limits, memory_limits,
                                                 sandbox)
        self._dispatcher.attach(self._supervisor.workers, self._supervisor.alarm)
        self._supervisor.start()
        if durable_events is None:
            durable_events = not self._own_state_dir
        store = (SqliteEventStore(os.path.join(self.state_dir, "events.db")) if durable_events
                 else MemoryEventStore())
        send_sqs = None
        if sqs_endpoint is not None:
            from .sources.sqs import QueueSender  # imports boto3: only when asked

            send_sqs = QueueSender(sqs_endpoint)
        deliverer = Deliverer(self.state_dir, region, account_id, self._invoke_destination,
                              send_sqs)
        self._events = EventQueue(self._dispatcher, store, self._admission.capacity, deliverer,
                                  event_retry_delays_s)
        self._functions = Functions(
            f"arn:aws:lambda:{region}:{account_id}:function:", self._supervisor, self._events,
            self._admission, self._ledger,
            Registry(None if self._own_state_dir else self.state_dir), self.state_dir)
        self._functions.restore(self.state_dir)

    @property
    def account_limit(self) -> int:
        return self._admission.account_limit

    # -- roles ------------------------------------------------------------------------------

    def put_role(self, role: str, policies: dict[str, Any] | list[Any],
                 managed: Iterable[str] = ()) -> Role:
        """Know ``role`` (a name in this account, or an ARN) with these identity-based
        ``policies`` (IAM policy documents: a list, or policy name -> document) and AWS
        ``managed`` policies, which decide from now on what the credentials of the
        functions whose ``role`` it is may do (put again: replaced).  A document IAM would
        refuse raises ``MalformedPolicyDocumentException``, saying where."""
        return self.roles.put(role, policies, tuple(managed))

    def role_arn(self, config: FunctionConfig) -> str:
        """The ARN of the function's role (one named ``fastinvoke`` when it has none)."""
        return config.role or f"arn:aws:iam::{self.account_id}:role/fastinvoke"

    def _served_environment(self, config: FunctionConfig) -> tuple[dict[str, str], float | None]:
        """The server's variables for a new environment of ``config`` (supervisor
        thread): its endpoint, and with ``iam`` its role's credentials."""
        served = {} if self.endpoint_url is None else {"AWS_ENDPOINT_URL_LAMBDA":
                                                       self.endpoint_url}
        if self.credentials is None:
            return served, None
        role = self.role_arn(config)
        if role not in self.roles and role not in self._unknown_roles:
            self._unknown_roles.add(role)
            _log.warning("fastinvoke: %s's role %s is not known here, so it may do nothing "
                         "on this server's API; give its policies (a template's role or "
                         "Policies, serve --roles FILE, or Invoker.put_role)", config.name, role)
        credentials, expires = self.credentials.issue(role, config.name)
        return {**served, **credentials}, expires

    # -- functions --------------------------------------------------------------------------

    def create_function(self, config: FunctionConfig) -> FunctionConfig:
        """Add a function and start its Init in the background."""
        return self._functions.create(config)

    def put_function(self, config: FunctionConfig) -> FunctionConfig:
        """Create the function, or bring it to ``config`` if it exists and differs (as a
        deployment does): its reserved concurrency with ``put_function_concurrency``, the
        rest with ``update_function``.  Counters, queued events and Event settings carry
        over."""
        return self._functions.put(config)

    def tag_function(self, name: str, tags: dict[str, str]) -> dict[str, str]:
        """Add (or change) the function's ``tags``; all its tags now."""
        return self._functions.change_tags(name, tags, set()).tags

    def untag_function(self, name: str, keys: Iterable[str]) -> dict[str, str]:
        """Remove the function's tags of ``keys`` (absent ones are no error); what is left."""
        return self._functions.change_tags(name, {}, set(keys)).tags

    def mark_unloadable(self, name: str, reason: str) -> None:
        """Invocations of ``name``, which does not exist, say ``reason`` (a template's
        function that could not be loaded) in their ResourceNotFoundException."""
        self._functions.unloadable[name] = reason

    def update_function(self, name: str, **changes: Any) -> FunctionConfig:
        """Change a function's configuration or code (its ``code`` directory), as Lambda's
        UpdateFunctionConfiguration and UpdateFunctionCode do.

        ``changes`` are ``FunctionConfig`` fields.  Invocations from now on run in new
        execution environments (Init runs again); the current workers finish what they
        run, then stop.  Meters and logs go on.  Returns the new configuration.
        """
        return self._functions.update(name, **changes)

    def delete_function(self, name: str, qualifier: str | None = None) -> None:
        """Remove a function with its versions and aliases, or only its version
        ``qualifier``; invocations still waiting for it fail, its queued Event invocations
        are dropped (as Lambda drops them).  A version an alias points to stays."""
        if qualifier is None:
            self._functions.delete(name)
        elif qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function.")
        elif not qualifier.isdigit():
            raise InvalidParameterValueException(
                f"Deletion of aliases is not supported by delete_function ({qualifier}); use "
                "delete_alias")
        else:
            self._functions.delete_version(name, qualifier)

    def recycle(self, name: str) -> int:
        """Stop the function's idle workers, so the next invocation is a cold start.

        The template stays initialised: the new worker is a fork of it, as after Lambda
        recycles an execution environment.  Returns, once they have ended, how many
        workers were stopped.
        """
        return self._functions.recycle(name)

    def init_state(self, name: str) -> tuple[str, int, dict[str, Any] | None]:
        """Where the function's Init is (``booting``, ``ready``, ``failed`` or ``dead``),
        how many of its Inits have ended, and the last one's error document (None: it
        succeeded)."""
        pool = self._functions.pool(name)
        with self._dispatcher.lock:
            return pool.state, pool.inits, pool.init_error

    def get_function(self, name: str, qualifier: str | None = None) -> FunctionConfig:
        """The configuration of ``$LATEST``, of version ``qualifier`` or of the version
        the alias ``qualifier`` points to."""
        return self._functions.at(name, qualifier).config

    def list_functions(self, all_versions: bool = False) -> list[FunctionConfig]:
        """The functions' configurations (``$LATEST``'s), and with ``all_versions`` their
        published versions' too."""
        pools = self._functions.all_pools() if all_versions else self._functions.pools.values()
        return [pool.config for pool in pools]

    def memory_peak_kb(self, name: str, qualifier: str | None = None) -> int:
        """The most memory one invocation of the function (or version) used so far, in
        KB: REPORT's Max Memory Used at its highest."""
        return self._functions.at(name, qualifier).peak_rss_kb

    def placement(self, name: str, qualifier: str | None = None) -> dict[str, int]:
        """Where the workers of the function (or of its version ``qualifier``) are: Ray
        node id -> workers placed there (with ``ray_address``), or ``{"local": workers}``."""
        pool = self._functions.at(name, qualifier)
        with self._dispatcher.lock:
            return self._supervisor.placement(pool)

    def function_arn(self, name: str) -> str:
        return self._functions.arn(name)

    def put_function_concurrency(self, name: str, reserved: int) -> None:
        """Reserve ``reserved`` concurrent executions for the function, which also caps
        it (0 stops it from running).  The account keeps at least 100 unreserved."""
        check_reserved(reserved)
        self._functions.set_reserved(name, reserved)

    def delete_function_concurrency(self, name: str) -> None:
        """Remove the function's reservation: it shares the unreserved pool again."""
        self._functions.set_reserved(name, None)

    # -- versions and aliases ---------------------------------------------------------------

    def publish_version(self, name: str, description: str = "", *,
                        code_id: tuple[str, int] | None = None) -> Version:
        """Publish ``$LATEST`` as an immutable version (its configuration, a copy of its
        code), with a warm pool and meters of its own; when nothing changed since the
        last version, that version.  ``code_id`` is (CodeSha256, CodeSize) of the code as
        you report it, e.g. of the zip it came from (default: of its directory's files)."""
        if len(description) > MAX_DESCRIPTION:
            raise ValidationException(
                "1 validation error detected: Value at 'description' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_DESCRIPTION}")
        return self._functions.publish(name, description, code_id)

    def get_version(self, name: str, number: str) -> Version:
        return self._functions.lineage(name).version(number, self.function_arn(name))

    def list_versions(self, name: str) -> list[Version]:
        """The function's published versions, oldest first."""
        return list(self._functions.lineage(name).versions.values())

    def create_alias(self, name: str, alias: str, function_version: str, *,
                     description: str = "",
                     weights: dict[str, float] | None = None) -> Alias:
        """Name version ``function_version`` (or ``$LATEST``) ``alias``; ``weights`` sends
        a share of its invocations (0 to 1) to one other version."""
        with self._functions.editing(name) as lineage:
            return lineage.create_alias(Alias(
                name=alias, function_version=function_version, description=description,
                weights=weights or {}), self.function_arn(name))

    def update_alias(self, name: str, alias: str, *, function_version: str | None = None,
                     description: str | None = None, weights: dict[str, float] | None = None,
                     revision_id: str | None = None) -> Alias:
        """Change what is given of the alias (``weights={}`` removes its routing), if its
        ``revision_id`` is still the one given."""
        changes = {key: value for key, value in (
            ("function_version", function_version), ("description", description),
            ("weights", weights)) if value is not None}
        with self._functions.editing(name) as lineage:
            return lineage.update_alias(alias, self.function_arn(name), revision_id, **changes)

    def get_alias(self, name: str, alias: str) -> Alias:
        return self._functions.lineage(name).alias(alias, self.function_arn(name))

    def list_aliases(self, name: str, function_version: str | None = None) -> list[Alias]:
        """The function's aliases by name (those of ``function_version`` only, if given)."""
        aliases = self._functions.lineage(name).aliases
        return [aliases[key] for key in sorted(aliases)
                if function_version in (None, aliases[key].function_version)]

    def delete_alias(self, name: str, alias: str) -> None:
        with self._functions.editing(name) as lineage:
            lineage.delete_alias(alias, self.function_arn(name))

    def put_provisioned_concurrency(self, name: str, qualifier: str, count: int) -> None:
        """Keep ``count`` environments of version (or alias) ``qualifier`` initialised and
        ready, as Lambda's provisioned concurrency: they are made at once (Init runs in
        them before any invocation) and never stopped for idleness."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationException(
                f"1 validation error detected: Value '{count}' at "
                "'provisionedConcurrentExecutions' failed to satisfy constraint: Member must "
                "have value greater than or equal to 1")
        reserved = self.get_function(name).reserved_concurrency
        if reserved is not None and count > reserved:
            raise InvalidParameterValueException(
                "Requested Provisioned Concurrency should not be greater than the "
                "reservedConcurrentExecution for function")
        with self._functions.editing(name) as lineage:
            lineage.set_provisioned(qualifier, count, self.function_arn(name))

    def delete_provisioned_concurrency(self, name: str, qualifier: str) -> None:
        with self._functions.editing(name) as lineage:
            self._check_provisioned(lineage.provisioned, name, qualifier)
            del lineage.provisioned[qualifier]

    def provisioned_concurrency(self, name: str) -> dict[str, tuple[int, int]]:
        """Version or alias -> (provisioned concurrency asked for, environments ready)."""
        configured = dict(self._functions.lineage(name).provisioned)
        return {qualifier: (count, self._functions.provisioned_ready(
            self._functions.at(name, qualifier))) for qualifier, count in configured.items()}

    def get_provisioned_concurrency(self, name: str, qualifier: str) -> tuple[int, int]:
        """(provisioned concurrency asked for, environments ready) of ``qualifier``."""
        found = self.provisioned_concurrency(name)
        self._check_provisioned(found, name, qualifier)
        return found[qualifier]

    def _check_provisioned(self, found: dict[str, Any], name: str, qualifier: str) -> None:
        if qualifier not in found:
            raise ProvisionedConcurrencyConfigNotFoundException(
                f"No Provisioned Concurrency Config found for this function "
                f"({self.function_arn(name)}:{qualifier})")

    # -- asynchronous invocation settings (Lambda's EventInvokeConfig) ------------------------

    def event_invoke_config(self, name: str, *, maximum_retry_attempts: int | None = None,
                            maximum_event_age_s: int | None = None,
                            on_success: str | None = None, on_failure: str | None = None,
                            qualifier: str | None = None) -> EventInvokeConfig:
        """Set how the Event invocations of the function (or of its version or alias
        ``qualifier``) are retried and where their records go, replacing earlier settings
        (PutFunctionEventInvokeConfig).  Destinations: a function's name or ARN, an
        SQS/SNS/EventBridge ARN (kept as JSON lines under ``<state dir>/destinations/``)
        or ``file:///path.jsonl``."""
        return self._functions.set_event_config(name, qualifier, EventInvokeConfig(
            maximum_retry_attempts=maximum_retry_attempts,
            maximum_event_age_s=maximum_event_age_s, on_success=on_success,
            on_failure=on_failure))

    def update_event_invoke_config(self, name: str, qualifier: str | None = None,
                                   **changes: Any) -> EventInvokeConfig:
        """Change only the settings given (UpdateFunctionEventInvokeConfig)."""
        current = self._functions.event_config(name, qualifier)
        return self._functions.set_event_config(name, qualifier,
                                                msgspec.structs.replace(current, **changes))

    def get_event_invoke_config(self, name: str,
                                qualifier: str | None = None) -> EventInvokeConfig:
        return self._functions.saved_event_config(name, qualifier)

    def delete_event_invoke_config(self, name: str, qualifier: str | None = None) -> None:
        """Back to Lambda's defaults: 2 retries, 6 hours, no destinations."""
        self._functions.reset_event_config(name, qualifier)

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
        trace_header: str | None = None,
    ) -> InvokeResult:
        """Invoke a function as Lambda's Invoke API does (thread-safe).

        ``function_name`` may carry the qualifier (``name:3``, ``name:alias``), or
        ``qualifier`` gives it: a version's number, an alias or ``$LATEST`` (the default).
        ``event`` is any JSON-serialisable value, or ``bytes`` holding JSON as it came
        off the wire (validated).  ``client_context`` is a dict, or Lambda's base64 of a
        JSON object.  Raises ``ServiceError`` subclasses for what Lambda answers with an
        HTTP error; a function error is returned in the result.  An ``Event`` invocation
        returns (202) once it is queued, durably unless ``durable_events`` is off.
        ``trace_header`` is the caller's ``X-Amzn-Trace-Id``: the function's
        ``_X_AMZN_TRACE_ID`` continues its trace (else each invocation starts one).
        """
        pool, qualifier = self._target(function_name, invocation_type, qualifier)
        body = payloads.event_bytes(event, invocation_type)
        if invocation_type != "RequestResponse":
            return self._untimed(_lane_key(pool, qualifier), invocation_type, body)
        invocation = self._invocation(pool, body, client_context, qualifier)
        invocation.trace_id = trace_header
        self._dispatcher.submit(invocation)
        self._dispatcher.wait(invocation)
        return answer(invocation, log_type)

    async def ainvoke(
        self,
        function_name: str,
        event: Any = None,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        client_context: dict[str, Any] | str | None = None,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> InvokeResult:
        """``invoke`` for asyncio: awaits the result on the running loop (uvloop too).
        Its parameters are ``invoke``'s, as its docstring says them."""
        pool, qualifier = self._target(function_name, invocation_type, qualifier)
        body = payloads.event_bytes(event, invocation_type)
        if invocation_type != "RequestResponse":
            return await self._untimed_async(_lane_key(pool, qualifier), invocation_type, body)
        invocation = self._invocation(pool, body, client_context, qualifier).awaitable()
        invocation.trace_id = trace_header
        self._dispatcher.submit(invocation)
        await self._dispatcher.wait_async(invocation)
        return answer(invocation, log_type)

    def invoke_stream(self, function_name: str, event: Any = None, *,
                      log_type: str | None = None,
                      client_context: dict[str, Any] | str | None = None,
                      qualifier: str | None = None) -> ResponseStream:
        """Invoke as Lambda's InvokeWithResponseStream does: iterate the result for the
        response's parts as the function writes them (a function that does not stream
        gives its whole response as one part); its ``result`` then says how it ended.
        A throttle or another service error raises here, before any part."""
        invocation = self._stream_invocation(function_name, event, client_context, qualifier)
        stream = ResponseStream(invocation, log_type)
        self._dispatcher.submit(invocation)
        return stream

    async def ainvoke_stream(self, function_name: str, event: Any = None, *,
                             log_type: str | None = None,
                             client_context: dict[str, Any] | str | None = None,
                             qualifier: str | None = None) -> AsyncResponseStream:
        """``invoke_stream`` for asyncio: ``async for`` the parts."""
        invocation = self._stream_invocation(function_name, event, client_context, qualifier)
        stream = AsyncResponseStream(invocation, log_type)
        self._dispatcher.submit(invocation)
        return stream

    def _stream_invocation(self, function_name: str, event: Any,
                           client_context: dict[str, Any] | str | None,
                           qualifier: str | None) -> Invocation:
        pool, qualifier = self._target(function_name, "RequestResponse", qualifier)
        body = payloads.event_bytes(event, "RequestResponse")
        return self._invocation(pool, body, client_context, qualifier)

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
        pool, qualifier, bodies = self._accept_many(function_name, events, invocation_type)
        if invocation_type != "RequestResponse":
            key = _lane_key(pool, qualifier)
            return [self._untimed(key, invocation_type, body) for body in bodies]
        if not bodies:
            return []
        batch = Batch.of(pool, bodies, self._invoked_arn(pool, qualifier))
        self._dispatcher.submit_batch(batch, self._admission.batch_width(pool, concurrency))
        self._dispatcher.wait(batch.sentinel)
        return [answer(invocation, log_type, in_batch=True) for invocation in batch.invocations]

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
        pool, qualifier, bodies = self._accept_many(function_name, events, invocation_type)
        if invocation_type != "RequestResponse":
            key = _lane_key(pool, qualifier)
            return [await self._untimed_async(key, invocation_type, body) for body in bodies]
        if not bodies:
            return []
        batch = Batch.of(pool, bodies, self._invoked_arn(pool, qualifier))
        batch.sentinel.awaitable()
        self._dispatcher.submit_batch(batch, self._admission.batch_width(pool, concurrency))
        await self._dispatcher.wait_async(batch.sentinel)
        return [answer(invocation, log_type, in_batch=True) for invocation in batch.invocations]

    def call(self, function_name: str, event: Any = None) -> Any:
        """Invoke synchronously and return the decoded result; raise ``FunctionError``."""
        return self.invoke(function_name, event).value()

    def watch_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let ``loop`` (from its own thread) keep reading the workers' replies between
        ``ainvoke`` calls, until ``unwatch_from``: a server whose requests come and go
        saves registering the replies' eventfd with the loop for every call."""
        self._dispatcher.watch(loop)

    def unwatch_from(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dispatcher.unwatch(loop)

    def _target(self, function_name: str, invocation_type: str,
                qualifier: str | None) -> tuple[FunctionPool, str | None]:
        """The pool an invocation of this type goes to, once both are checked, and the
        qualifier it was invoked with."""
        payloads.check_invocation_type(invocation_type)
        if ":" in function_name:
            function_name, _, named = function_name.partition(":")
            if qualifier not in (None, named):
                raise InvalidParameterValueException(
                    "The derived qualifier from the function name does not match the "
                    "specified qualifier.")
            qualifier = named
        return self._functions.invocable(function_name, qualifier), qualifier

    def _accept_many(self, function_name: str, events: Iterable[Any],
                     invocation_type: str) -> tuple[FunctionPool, str | None, list[bytes]]:
        """Validate every event of a batch before any runs; an error names the event."""
        pool, qualifier = self._target(function_name, invocation_type, None)
        bodies = []
        for index, event in enumerate(events):
            try:
                bodies.append(payloads.event_bytes(event, invocation_type))
            except ServiceError as error:
                raise type(error)(f"event {index}: {error.message}", **error.fields) from None
        return pool, qualifier, bodies

    def _untimed(self, lane: str, invocation_type: str, body: bytes) -> InvokeResult:
        """An ``Event`` invocation queued (202) in ``lane``, or a ``DryRun`` that only
        validated (204)."""
        request_id = new_request_id()
        if invocation_type == "Event":
            self._events.accept(lane, request_id, body)
        return InvokeResult(202 if invocation_type == "Event" else 204, request_id=request_id)

    async def _untimed_async(self, lane: str, invocation_type: str,
                             body: bytes) -> InvokeResult:
        request_id = new_request_id()
        if invocation_type == "Event":
            await self._events.accept_async(lane, request_id, body)
        return InvokeResult(202 if invocation_type == "Event" else 204, request_id=request_id)

    def _invocation(self, pool: FunctionPool, body: bytes,
                    client_context: dict[str, Any] | str | None,
                    qualifier: str | None) -> Invocation:
        return Invocation(new_request_id(), pool, body, self._invoked_arn(pool, qualifier),
                          payloads.client_context(client_context))

    def _invoked_arn(self, pool: FunctionPool, qualifier: str | None) -> str:
        """The ARN the caller used, as the context shows it."""
        arn = self._functions.arn(pool.config.name)
        return arn if qualifier is None else f"{arn}:{qualifier}"

    def _invoke_destination(self, name: str, record: bytes) -> None:
        """A destination function gets the record as an Event invocation (also while
        closing: the record is queued for the next run)."""
        self._events.accept(self._functions.pool(name).name, new_request_id(), record)

    # -- observing --------------------------------------------------------------------------

    def event_stats(self, name: str | None = None) -> dict[str, int]:
        """Event invocations queued, delayed (before a retry) and running, for one function
        or all; and since this Invoker started: how many were recovered from the state
        dir, how many had started an attempt that may have run and runs again
        (``redelivered``: before the previous run ended, 0 after a clean ``close``; or on
        a Ray node that was lost), how many of
        those may run (``resumable``: their function exists with concurrency above 0 and
        they are within its maximum event age) and how many records could not be
        delivered."""
        if name is not None:
            self._functions.pool(name)
        return self._events.stats(name)

    def wait_for_events(self, name: str | None = None, timeout_s: float | None = None) -> bool:
        """Block until no Event invocation of ``name`` (None: of any function) is queued
        or running; retries waiting for their delay do not count.  Returns False if
        ``timeout_s`` passed first."""
        if name is not None:
            self._functions.pool(name)
        return self._events.wait_settled(name, timeout_s)

    def meter(self, name: str, qualifier: str | None = None) -> dict[str, Any]:
        """The exact counters and GB-seconds of the function's ``$LATEST``, or of its
        version ``qualifier`` (each version is metered on its own)."""
        return self._ledger.meter(self._functions.at(name, qualifier))

    def usage(self) -> dict[str, Usage]:
        """Every function's and version's counters (``NAME``, ``NAME:N``), deleted ones'
        too: what ``meters.json`` keeps, and what ``bill`` prices."""
        return self._ledger.usage(self._functions.all_pools())

    def emf_metrics(self) -> tuple[list[tuple[Series, int, float, float, float]],
                                   dict[str, int]]:
        """The metrics the functions logged in CloudWatch's Embedded Metric Format:
        (series, count, sum, min, max) each, and the EMF lines refused by log group."""
        self._ledger.store.flush()
        return self._ledger.emf.snapshot()

    @property
    def metric_filters(self) -> MetricFilters:
        """The log groups' CloudWatch metric filters: ``put``, ``describe``, ``delete``
        (kept in the state dir's ``metric_filters.json``)."""
        return self._ledger.metric_filters

    def metric_filter_metrics(self) -> list[tuple[MetricSeries, int, float, float, float]]:
        """What the metric filters have published: (series, count, sum, min, max) each."""
        self._ledger.store.flush()
        return self._ledger.metric_filters.snapshot()

    def bill(self, prices: dict[str, Prices] | None = None) -> Bill:
        """What the invocations so far would cost on Lambda, free tier applied, exact
        (with a persistent state dir: every run's, deleted functions' included).

        ``prices`` maps an architecture to its ``Prices`` (AWS's us-east-1 defaults)."""
        return self._ledger.bill(self._functions.all_pools(), prices)

    def logs(self, name: str, *, since_ms: int | None = None,
             pattern: str | None = None) -> list[logs.LogRecord]:
        """The function's log records, newest last: one per invocation, START to REPORT.

        ``since_ms`` (Unix ms) and ``pattern`` (a CloudWatch Logs filter pattern: terms,
        JSON or space-delimited) select lines as ``fastinvoke logs`` does."""
        return self._ledger.records(self._log_group(name), since_ms, pattern)

    def set_log_retention(self, name: str, days: int | None) -> None:
        """Keep the function's logs ``days`` (CloudWatch's allowed values), then purge them;
        None keeps them for ever (the default)."""
        self._ledger.set_retention(self._log_group(name), days)

    def log_events(self, name: str, **query: Any) -> list[LogEvent]:
        """The function's log lines as the store keeps them (see ``LogStore.events``)."""
        return self._ledger.events(self._log_group(name), **query)

    def _log_group_exists(self, group: str) -> bool:
        """A group with events, or a function's (whose first invocation will make it)."""
        return group in self._ledger.store.groups() or any(
            pool.config.log_group_name == group for pool in self._functions.all_pools())

    def _log_group(self, name: str) -> str:
        """The function's log group (its LoggingConfig's, else ``/aws/lambda/<name>``)."""
        return self._functions.pool(name).config.log_group_name

    # -- lifetime ---------------------------------------------------------------------------

    def close(self, grace_s: float = 30.0) -> None:
        """Stop every worker and template; remove a private state directory.  Idempotent.

        Running Event invocations get ``grace_s`` to finish; queued ones (and those cut
        short) stay in a durable queue for the next Invoker with this state dir."""
        with self._functions.lock:
            if self._functions.closed:
                return
            self._functions.closed = True
        self._events.close(grace_s)
        self._supervisor.stop()
        self._dispatcher.close()
        # Counters continue in the next run with a state dir of the user's own.
        self._ledger.close(self._functions.all_pools(), keep=not self._own_state_dir)
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Invoker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _lane_key(pool: FunctionPool, qualifier: str | None) -> str:
    """The Event lane of an invocation at ``qualifier``: an alias's own (its settings),
    else its version's."""
    if qualifier is None or qualifier == LATEST or qualifier.isdigit():
        return pool.name
    return f"{pool.config.name}:{qualifier}"
