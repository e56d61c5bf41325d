"""The functions of one Invoker: their pools, configurations and Event settings, their
life cycle (create, change, delete), their published versions and aliases, and
``functions.json`` in the state directory that brings them back on the next run.

Each version has a pool of its own (its warm workers, meters and Event lane), keyed
``name:N``; its invocations count against its function's concurrency.  Versions keep a
copy of their code under ``<state>/versions/<name>/<N>/``."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
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
from .events.queue import EventQueue, Lane
from .ledger import Ledger
from .pool.records import FunctionPool
from .registry import FunctionEntry, Registry
from .snapshots import copy_code, directory_digest
from .versions import LATEST, Lineage, Version

if TYPE_CHECKING:
    from .backend import Backend

_RECYCLE_WAIT_S = 10.0


class Functions:
    """Every function by name.  ``lock`` (the admin lock) orders changes of the set and of
    configurations; the dispatcher's lock is taken inside it to apply them to running
    pools."""

    def __init__(self, arn_prefix: str, supervisor: Backend, events: EventQueue,
                 admission: Admission, ledger: Ledger, registry: Registry,
                 state_dir: str) -> None:
        self._arn_prefix = arn_prefix
        self._versions_root = os.path.join(state_dir, "versions")
        self._supervisor = supervisor
        self._events = events
        self._admission = admission
        self._ledger = ledger
        self._registry = registry
        self.pools: dict[str, FunctionPool] = {}  # $LATEST's, by name
        self.versions: dict[str, FunctionPool] = {}  # published versions', by name:N
        self.lineages: dict[str, Lineage] = {}  # by name
        self._alias_keys: dict[str, set[str]] = {}  # name -> the aliases that have lanes
        self.unloadable: dict[str, str] = {}  # name -> why a template's could not load
        self.lock = threading.RLock()
        self.closed = False

    def arn(self, name: str) -> str:
        return self._arn_prefix + name

    # -- finding ----------------------------------------------------------------------------

    def pool(self, name: str) -> FunctionPool:
        pool = self.pools.get(name)
        if pool is None:
            raise ResourceNotFoundException(f"Function not found: {self.arn(name)}")
        return pool

    def all_pools(self) -> list[FunctionPool]:
        return [*self.pools.values(), *self.versions.values()]

    def invocable(self, name: str, qualifier: str | None) -> FunctionPool:
        """The pool an invocation of ``name`` at ``qualifier`` (None, ``$LATEST``, a
        version's number or an alias, which picks one of its versions) goes to."""
        self.check_open()
        if qualifier is None or qualifier == LATEST:
            pool = self.pools.get(name)
        else:
            lineage = self.lineages.get(name)
            alias = None if lineage is None else lineage.aliases.get(qualifier)
            version = qualifier if alias is None else alias.route()
            pool = self.pools.get(name) if version == LATEST else self.versions.get(
                f"{name}:{version}")
        if pool is None:
            why = self.unloadable.get(name)
            raise ResourceNotFoundException(
                f"Function not found: {self.arn(name)}:{qualifier or LATEST}"
                + (f" (it could not be loaded: {why})" if why else ""))
        return pool

    def at(self, name: str, qualifier: str | None) -> FunctionPool:
        """The pool of ``name`` at ``qualifier``: None or ``$LATEST``, a version's number,
        or an alias (its main version's)."""
        if qualifier is None or qualifier == LATEST:
            return self.pool(name)
        lineage = self.lineage(name)
        if not qualifier.isdigit():
            qualifier = lineage.alias(qualifier, self.arn(name)).function_version
            if qualifier == LATEST:
                return self.pool(name)
        lineage.version(qualifier, self.arn(name))
        return self.versions[f"{name}:{qualifier}"]

    def lineage(self, name: str) -> Lineage:
        self.pool(name)  # Lambda's 404 for a function that does not exist
        return self.lineages[name]

    def check_open(self) -> None:
        if self.closed:
            raise ServiceException("This Invoker is closed; create a new one.")

    # -- the life cycle ---------------------------------------------------------------------

    def create(self, config: FunctionConfig) -> FunctionConfig:
        _check_latest(config)
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
        _check_latest(config)
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
        fixed = sorted({"name", "reserved_concurrency", "version"}.intersection(changes))
        if fixed:
            raise InvalidParameterValueException(
                f"update_function cannot change {', '.join(fixed)}: a function keeps its name; "
                "use put_function_concurrency or delete_function_concurrency, and "
                "publish_version")
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
        """Delete the function with its versions and aliases."""
        with self.lock:
            pool = self.pool(name)
            for alias in self._alias_keys.pop(name, ()):
                with self._supervisor.lock:
                    self._events.remove_function(f"{name}:{alias}")
            for number in self.lineages.pop(name).versions:
                self._stop(self.versions.pop(f"{name}:{number}"))
            shutil.rmtree(os.path.join(self._versions_root, name), ignore_errors=True)
            del self.pools[name]
            self._admission.removed(pool.config)
            self._stop(pool)
            self._save()

    def _stop(self, pool: FunctionPool) -> None:
        with self._supervisor.lock:
            self._supervisor.remove(pool)
            self._events.remove_function(pool.name)
        self._ledger.retire(pool)

    # -- versions and aliases ---------------------------------------------------------------

    def publish(self, name: str, description: str, code_id: tuple[str, int] | None) -> Version:
        """Publish ``$LATEST`` as the next version, or return the last version when nothing
        changed since it.  ``code_id``: (CodeSha256, CodeSize) of the code as the caller
        reports it (None: ``directory_digest`` of its directory)."""
        with self.lock:
            pool = self.pool(name)
            lineage = self.lineages[name]
            config = pool.config
            sha, size = code_id or directory_digest(config.code)
            last = lineage.unchanged(config, sha)
            if last is not None:
                return last
            number = str(lineage.last + 1)
            code_dir = os.path.join(self._versions_root, name, number)
            shutil.rmtree(code_dir, ignore_errors=True)  # a number published, then unsaved
            copy_code(config.code, code_dir)
            version = Version(config=lineage.snapshot(config, code_dir, description),
                              code_sha256=sha, code_size=size)
            lineage.last += 1
            lineage.versions[number] = version
            self._add(version.config)
            self._save()
            return version

    def delete_version(self, name: str, number: str) -> None:
        with self.lock:
            lineage = self.lineage(name)
            lineage.version(number, self.arn(name))
            lineage.check_deletable(number)
            del lineage.versions[number]
            self._stop(self.versions.pop(f"{name}:{number}"))
            shutil.rmtree(os.path.join(self._versions_root, name, number), ignore_errors=True)
            self._save()

    @contextlib.contextmanager
    def editing(self, name: str) -> Iterator[Lineage]:
        """The function's versions and aliases, to change under the admin lock; saved
        after the block (a refused change raises before it changes anything)."""
        with self.lock:
            yield self.lineage(name)
            self._alias_lanes(name)
            self._provision(name)
            self._save()

    def _provision(self, name: str) -> None:
        """Bring each version's provisioned concurrency to what its configurations (its
        own, or an alias's on it) ask: new environments, initialised, for the new count."""
        wanted = self.lineages[name].provisioned_versions()
        for number in self.lineages[name].versions:
            pool = self.versions[f"{name}:{number}"]
            count = wanted.get(number, 0)
            if pool.config.provisioned != count:
                with self._supervisor.lock:
                    pool.config = msgspec.structs.replace(pool.config, provisioned=count)
                    self._supervisor.renew(pool)

    def provisioned_ready(self, pool: FunctionPool) -> int:
        """How many of ``pool``'s provisioned environments are initialised and ready."""
        with self._supervisor.lock:
            return sum(1 for worker in pool.workers.values()
                       if worker.provisioned and worker.state in ("idle", "ready"))

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
        """Bring back the functions saved in ``state_dir``, with their versions."""
        for entry in self._registry.load():
            try:
                entry.config.validate()
            except FastInvokeError as exc:
                warnings.warn(f"function {entry.config.name} of {state_dir} not restored: "
                              f"{exc}; create it again", RuntimeWarning, stacklevel=4)
                continue
            self._add(entry.config, entry.event_invoke_config)
            name = entry.config.name
            lineage = self.lineages[name] = entry.lineage
            provisioned = lineage.provisioned_versions()
            for number, version in lineage.versions.items():
                self._add(msgspec.structs.replace(version.config,
                                                  provisioned=provisioned.get(number, 0)),
                          entry.qualified_event_configs.get(number))
            self._alias_lanes(name, entry.qualified_event_configs)

    def _add(self, config: FunctionConfig,
             event_config: EventInvokeConfig | None = None) -> None:
        """Start the pool of a function's ``$LATEST`` or of one of its versions."""
        pool = FunctionPool(config, self._ledger.meter_for(config.qualified_name),
                            self._admission.worker_limit(config))
        if config.version == LATEST:
            self.pools[config.name] = pool
            self.lineages.setdefault(config.name, Lineage())
            self._admission.added(config)
        else:
            pool.head = self.pools[config.name]
            self.versions[pool.name] = pool
        with self._supervisor.lock:
            self._supervisor.add(pool)
            lane = self._events.add_function(pool, self.arn(pool.name))
            if event_config is not None:
                lane.config = event_config

    def _save(self) -> None:
        """Write down the functions (admin lock held)."""
        entries = []
        for name, pool in self.pools.items():
            lineage = self.lineages[name]
            entries.append(FunctionEntry(
                config=pool.config, event_invoke_config=self._saved_config(name),
                lineage=lineage, qualified_event_configs={
                    qualifier: config for qualifier in (*lineage.versions, *lineage.aliases)
                    if (config := self._saved_config(f"{name}:{qualifier}")) is not None}))
        self._registry.save(entries)

    def _alias_lanes(self, name: str,
                     event_configs: dict[str, EventInvokeConfig] | None = None) -> None:
        """Give each alias of the function an Event lane, and take those of deleted
        aliases away (admin lock held): Event invocations through an alias run with its
        settings, each on the version the alias picks when it starts."""
        aliases = self.lineages[name].aliases
        head = self.pools[name]
        with self._supervisor.lock:
            for alias in aliases.keys() - self._alias_keys.get(name, set()):
                key = f"{name}:{alias}"
                lane = self._events.add_function(
                    head, self.arn(key), key, lambda alias=alias: self._routed(name, alias))
                if event_configs and alias in event_configs:
                    lane.config = event_configs[alias]
            for alias in self._alias_keys.get(name, set()) - aliases.keys():
                self._events.remove_function(f"{name}:{alias}")
        self._alias_keys[name] = set(aliases)

    def _routed(self, name: str, alias: str) -> FunctionPool:
        """The pool an Event of the alias's lane runs on (dispatcher lock held).  Never
        raises: an alias deleted this instant runs it on $LATEST, its lane about to go."""
        head = self.pools[name]
        found = self.lineages[name].aliases.get(alias)
        version = LATEST if found is None else found.route()
        return head if version == LATEST else self.versions.get(f"{name}:{version}", head)

    def _saved_config(self, key: str) -> EventInvokeConfig | None:
        config = self._events.lane(key).config
        return config if config.last_modified else None

    # -- Event settings (Lambda's EventInvokeConfig), per version -----------------------------

    def event_config(self, name: str, qualifier: str | None = None) -> EventInvokeConfig:
        return self._lane(name, qualifier).config

    def set_event_config(self, name: str, qualifier: str | None,
                         config: EventInvokeConfig) -> EventInvokeConfig:
        if self.pools.get(name) is None:
            raise ResourceNotFoundException("The function doesn't exist.")
        if (config.maximum_retry_attempts is None and config.maximum_event_age_s is None
                and config.on_success is None and config.on_failure is None):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting.")
        config.validate(name)
        config.last_modified = time.time()
        with self.lock:
            self._lane(name, qualifier).config = config
            self._save()
        return config

    def saved_event_config(self, name: str, qualifier: str | None = None) -> EventInvokeConfig:
        """The Event settings given to the function; Lambda's error if none were."""
        config = self.event_config(name, qualifier)
        if not config.last_modified:
            raise ResourceNotFoundException(
                f"The function {self.arn(name)}:{qualifier or LATEST} doesn't have an "
                "EventInvokeConfig")
        return config

    def reset_event_config(self, name: str, qualifier: str | None = None) -> None:
        """Back to Lambda's defaults: 2 retries, 6 hours, no destinations."""
        self.saved_event_config(name, qualifier)
        with self.lock:
            self._lane(name, qualifier).config = EventInvokeConfig()
            self._save()

    def _lane(self, name: str, qualifier: str | None) -> Lane:
        """The Event lane of ``$LATEST``, of a version or of an alias."""
        if qualifier is not None and qualifier != LATEST and not qualifier.isdigit():
            self.lineage(name).alias(qualifier, self.arn(name))  # 404 for no such alias
            return self._events.lane(f"{name}:{qualifier}")
        return self._events.lane(self.at(name, qualifier).name)


def _check_latest(config: FunctionConfig) -> None:
    if config.version != LATEST:
        raise InvalidParameterValueException(
            f"A function is created as $LATEST, not as version {config.version}: create it, "
            "then publish_version")
