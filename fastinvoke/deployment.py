"""The functions of one Invoker: their pools, configurations and Event settings, their
life cycle (create, change, delete), and ``functions.json`` in the state directory that
brings them back on the next run."""

from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import msgspec

from .admission import Admission
from .config import FunctionConfig, check_tags
from .errors import (
    FastInvokeError,
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceException,
)
from .events import EventInvokeConfig
from .events.queue import EventQueue
from .ledger import Ledger
from .pool.records import FunctionPool
from .registry import FunctionEntry, Registry

if TYPE_CHECKING:
    from .backend import Backend

_RECYCLE_WAIT_S = 10.0


class Functions:
    """Every function by name.  ``lock`` (the admin lock) orders changes of the set and of
    configurations; the dispatcher's lock is taken inside it to apply them to running
    pools."""

    def __init__(self, arn_prefix: str, supervisor: Backend, events: EventQueue,
                 admission: Admission, ledger: Ledger, registry: Registry) -> None:
        self._arn_prefix = arn_prefix
        self._supervisor = supervisor
        self._events = events
        self._admission = admission
        self._ledger = ledger
        self._registry = registry
        self.pools: dict[str, FunctionPool] = {}
        self.unloadable: dict[str, str] = {}  # name -> why a template's could not load
        self.lock = threading.Lock()
        self.closed = False

    def arn(self, name: str) -> str:
        return self._arn_prefix + name

    # -- finding ----------------------------------------------------------------------------

    def pool(self, name: str) -> FunctionPool:
        pool = self.pools.get(name)
        if pool is None:
            raise ResourceNotFoundException(f"Function not found: {self.arn(name)}")
        return pool

    def invocable(self, name: str, qualifier: str | None) -> FunctionPool:
        """The pool an invocation of ``name`` (at ``qualifier``) goes to."""
        self.check_open()
        pool = self.pools.get(name)
        if pool is None or qualifier not in (None, "$LATEST"):
            why = self.unloadable.get(name) if pool is None else None
            raise ResourceNotFoundException(
                f"Function not found: {self.arn(name)}:{qualifier or '$LATEST'}"
                + (f" (it could not be loaded: {why})" if why else ""))
        return pool

    def check_open(self) -> None:
        if self.closed:
            raise ServiceException("This Invoker is closed; create a new one.")

    # -- the life cycle ---------------------------------------------------------------------

    def create(self, config: FunctionConfig) -> FunctionConfig:
        config.validate()
        self._supervisor.check(config)
        with self.lock:
            self.check_open()
            if config.name in self.pools:
                raise ResourceConflictException(f"Function already exist: {config.name}")
            self._add(config)
            self._save()
        return config

    def put(self, config: FunctionConfig) -> FunctionConfig:
        config.validate()
        self._supervisor.check(config)
        with self.lock:
            self.check_open()
            pool = self.pools.get(config.name)
            if pool is None:
                self._add(config)
                self._save()
                return config
        if config.reserved_concurrency != pool.config.reserved_concurrency:
            self.set_reserved(config.name, config.reserved_concurrency)
        changes = {field: getattr(config, field) for field in config.__struct_fields__
                   if getattr(config, field) != getattr(pool.config, field)}
        return self.update(config.name, **changes) if changes else pool.config

    def update(self, name: str, **changes: Any) -> FunctionConfig:
        fixed = sorted({"name", "reserved_concurrency"}.intersection(changes))
        if fixed:
            raise InvalidParameterValueException(
                f"update_function cannot change {', '.join(fixed)}: a function keeps its name; "
                "use put_function_concurrency or delete_function_concurrency")
        with self.lock:
            pool = self.pool(name)
            try:
                config = msgspec.structs.replace(pool.config, **changes).validate()
            except TypeError as exc:  # a keyword that is not a FunctionConfig field
                raise InvalidParameterValueException(
                    f"update_function: {exc}; give FunctionConfig fields") from None
            self._supervisor.check(config)
            with self._supervisor.lock:
                pool.config = config
                self._supervisor.renew(pool)
            self._save()
        return config

    def change_tags(self, name: str, add: dict[str, str], remove: set[str]) -> FunctionConfig:
        """Add the ``add`` tags to the function's and remove those of keys ``remove`` (its
        workers keep running: tags change nothing)."""
        with self.lock:
            pool = self.pool(name)
            tags = {key: value for key, value in {**pool.config.tags, **add}.items()
                    if key not in remove}
            check_tags(tags)
            with self._supervisor.lock:
                pool.config = msgspec.structs.replace(pool.config, tags=tags)
            self._save()
            return pool.config

    def delete(self, name: str) -> None:
        with self.lock:
            pool = self.pool(name)
            del self.pools[name]
            self._admission.removed(pool.config)
            with self._supervisor.lock:
                self._supervisor.remove(pool)
                self._events.remove_function(pool.name)
            self._ledger.retire(pool)
            self._save()

    def recycle(self, name: str) -> int:
        pool = self.pool(name)
        with self._supervisor.lock:
            return self._supervisor.workers.recycle(pool, _RECYCLE_WAIT_S)

    def set_reserved(self, name: str, reserved: int | None) -> None:
        """Reserve ``reserved`` concurrent executions for the function (None: remove its
        reservation)."""
        with self.lock:
            pool = self.pool(name)
            if reserved is not None:
                self._admission.check_reservation(pool, reserved)
            config = msgspec.structs.replace(pool.config, reserved_concurrency=reserved)
            with self._supervisor.lock:
                self._admission.reserve(pool, reserved)
                pool.config = config
                pool.max_workers = self._admission.worker_limit(config)
                self._events.concurrency_changed(pool)
            self._save()

    def restore(self, state_dir: str) -> None:
        """Bring back the functions saved in ``state_dir``."""
        for entry in self._registry.load():
            try:
                entry.config.validate()
            except FastInvokeError as exc:
                warnings.warn(f"function {entry.config.name} of {state_dir} not restored: "
                              f"{exc}; create it again", RuntimeWarning, stacklevel=4)
                continue
            self._add(entry.config, entry.event_invoke_config)

    def _add(self, config: FunctionConfig,
             event_config: EventInvokeConfig | None = None) -> None:
        pool = FunctionPool(config, self._ledger.meter_for(config.name),
                            self._admission.worker_limit(config))
        self.pools[config.name] = pool
        self._admission.added(config)
        with self._supervisor.lock:
            self._supervisor.add(pool)
            lane = self._events.add_function(pool, self.arn(config.name))
            if event_config is not None:
                lane.config = event_config

    def _save(self) -> None:
        """Write down the functions (admin lock held)."""
        entries = []
        for name, pool in self.pools.items():
            event_config = self._events.lane(name).config
            entries.append(FunctionEntry(
                config=pool.config,
                event_invoke_config=event_config if event_config.last_modified else None))
        self._registry.save(entries)

    # -- Event settings (Lambda's EventInvokeConfig) ------------------------------------------

    def event_config(self, name: str) -> EventInvokeConfig:
        return self._events.lane(self.pool(name).name).config

    def set_event_config(self, name: str, config: EventInvokeConfig) -> EventInvokeConfig:
        if self.pools.get(name) is None:
            raise ResourceNotFoundException("The function doesn't exist.")
        if (config.maximum_retry_attempts is None and config.maximum_event_age_s is None
                and config.on_success is None and config.on_failure is None):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting.")
        config.validate(name)
        config.last_modified = time.time()
        with self.lock:
            self._events.lane(self.pool(name).name).config = config
            self._save()
        return config

    def saved_event_config(self, name: str) -> EventInvokeConfig:
        """The Event settings given to the function; Lambda's error if none were."""
        config = self.event_config(name)
        if not config.last_modified:
            raise ResourceNotFoundException(
                f"The function {self.arn(name)}:$LATEST doesn't have an EventInvokeConfig")
        return config

    def reset_event_config(self, name: str) -> None:
        """Back to Lambda's defaults: 2 retries, 6 hours, no destinations."""
        self.saved_event_config(name)
        with self.lock:
            self._events.lane(name).config = EventInvokeConfig()
            self._save()
