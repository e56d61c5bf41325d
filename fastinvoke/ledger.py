"""Every function's meters, bill and logs: what an invocation leaves behind once it ends.

Counters carry over a function's replacement and, with a state directory of the user's
own, to the next run (``meters.json``); deleted functions stay on the bill.  Each
invocation's START, output, END and REPORT lines go to the log store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from . import logs, logstore
from ._core import Meter
from .emf import EmfMetrics
from .errors import InvalidParameterValueException
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
from .metricfilters import MetricFilters
from .pool.records import FunctionPool, Invocation


class Ledger:
    """Meters and logs of one Invoker's functions, in ``state_dir``."""

    def __init__(self, state_dir: str, billing: str,
                 group_exists: Callable[[str], bool] = lambda group: True) -> None:
        new_meter(billing)  # refuse an unknown preset before anything starts
        self.billing = billing
        self.emf = EmfMetrics()  # what the functions log in the Embedded Metric Format
        self.metric_filters = MetricFilters(os.path.join(state_dir, "metric_filters.json"),
                                            group_exists)
        self.store = LogStore(os.path.join(state_dir, "logs.db"), self.emf,
                              self.metric_filters)
        self._usage_path = os.path.join(state_dir, "meters.json")
        self._usage = load_usage(self._usage_path)

    def meter_for(self, name: str) -> Meter:
        """A new meter for the function ``name``, going on from its saved counters."""
        meter = new_meter(self.billing)
        saved = self._usage.pop(name, None)
        if saved is not None:  # a persistent state dir, or a replaced function
            meter.restore(saved.counters)
        return meter

    def retire(self, pool: FunctionPool) -> None:
        """``pool``'s function (or version) is deleted: its invocations stay on the bill;
        the function's logs go with the function, not with a version (nor a log group of
        its own choosing, which other functions may share)."""
        self._usage[pool.name] = _usage_of(pool)
        if pool.head is pool and pool.config.log_group is None:
            self.store.delete_group(pool.config.log_group_name)

    def account(self, invocation: Invocation) -> None:
        """Meter a finished invocation and write its log lines (dispatcher lock held)."""
        pool = invocation.pool
        config = pool.config
        memory_mb = config.memory_mb
        if invocation.max_rss_kb > pool.peak_rss_kb:
            pool.peak_rss_kb = invocation.max_rss_kb
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
            config.version, logs.platform_format(config.log_format, config.system_log_level),
        )
        # Every version logs to its function's group, as on Lambda; an environment's stream
        # begins with what Init printed.
        group = config.log_group_name
        if invocation.cold and pool.init_output:
            self.store.append(group, invocation.log_stream, (logstore.LogEntry(
                entry.timestamp_ms, "", pool.init_output.decode("utf-8", "replace")),))
        self.store.append(group, invocation.log_stream, (entry,))

    def meter(self, pool: FunctionPool) -> dict[str, Any]:
        figures = snapshot(pool.meter)
        figures["function"] = pool.name
        figures["billing"] = self.billing
        return figures

    def usage(self, pools: list[FunctionPool]) -> dict[str, Usage]:
        """The counters of ``pools`` (live) and of the functions deleted before."""
        usage = dict(self._usage)
        usage.update((pool.name, _usage_of(pool)) for pool in pools)
        return usage

    def bill(self, pools: list[FunctionPool], prices: dict[str, Prices] | None) -> Bill:
        return bill_usage(self.usage(pools), prices)

    def records(self, group: str, since_ms: int | None,
                pattern: str | None) -> list[logs.LogRecord]:
        self.store.flush()
        return logstore.records(self.store.events(group, since_ms=since_ms, pattern=pattern))

    def events(self, group: str, **query: Any) -> list[LogEvent]:
        self.store.flush()
        return self.store.events(group, **query)

    def set_retention(self, group: str, days: int | None) -> None:
        try:
            self.store.set_retention(group, days)
        except ValueError as exc:
            raise InvalidParameterValueException(str(exc)) from None

    def close(self, pools: list[FunctionPool], *, keep: bool) -> None:
        """Close the log store; with ``keep``, save the counters for the next run."""
        self.store.close()
        if keep:
            self._usage.update((pool.name, _usage_of(pool)) for pool in pools)
            save_usage(self._usage_path, self._usage)


def _usage_of(pool: FunctionPool) -> Usage:
    return Usage(pool.config.architecture, pool.config.memory_mb, pool.meter.snapshot())
