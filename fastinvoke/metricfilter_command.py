"""``fastinvoke logs metric-filter put|list|delete``: the CloudWatch metric filters of a
function's log group, as ``aws logs put-metric-filter``, ``describe-metric-filters`` and
``delete-metric-filter`` manage them.

They go to the server at ``--endpoint``, else to the one running on ``--state-dir`` now
(found by its ``server.json``: it applies them at once and keeps them in the state
directory), else straight into the state directory's ``metric_filters.json``, which the
next ``serve`` (or Invoker) reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import msgspec

from . import serverfile
from .logs import log_group
from .logstore import LogStore
from .metricfilters import MetricFilter, MetricFilters, MetricTransformation
from .registry import Registry
from .remote import call_logs, get_json


def parser() -> argparse.ArgumentParser:
    """The options of ``fastinvoke logs metric-filter`` (declarations, each its own)."""
    command = argparse.ArgumentParser(
        prog="fastinvoke logs metric-filter",
        description="Put, list and delete the CloudWatch metric filters of functions' log "
        "groups: each turns the log events its filter pattern matches into a metric, shown "
        "on the server's /metrics and dashboard.")
    actions = command.add_subparsers(required=True, metavar="ACTION")
    put = actions.add_parser("put", help="create or replace a metric filter",
                             description="Create or replace (by name) a metric filter.")
    _add_group(put)
    put.add_argument("--filter-name", required=True)
    put.add_argument("--filter-pattern", default="", metavar="PATTERN",
                     help='what events to count, as `logs --filter` takes it: terms (ERROR), '
                     'JSON ({ $.latency > 100 }) or space-delimited ([ip, ..., status = 5*]); '
                     "default: every event")
    put.add_argument("--metric-name", required=True)
    put.add_argument("--metric-namespace", required=True)
    put.add_argument("--metric-value", default="1", metavar="VALUE",
                     help="each match's value: a number (default 1: count them), $.field of "
                     "a JSON pattern or $name of a space-delimited one")
    put.add_argument("--default-value", type=float, metavar="NUMBER",
                     help="the value of each event the pattern does not match (not with "
                     "--dimension)")
    put.add_argument("--dimension", action="append", default=[], metavar="NAME=FIELD",
                     help="a dimension read from each match ($.field or $name); up to 3")
    put.add_argument("--unit", help="CloudWatch's unit: Count, Milliseconds, Bytes...")
    put.set_defaults(run=metric_filter_command, action=_put)
    listing = actions.add_parser("list", help="list metric filters",
                                 description="List metric filters, by group and name.")
    _add_group(listing, required=False)
    listing.add_argument("--filter-name-prefix", metavar="PREFIX")
    listing.add_argument("--json", action="store_true",
                         help="DescribeMetricFilters' JSON document instead of a table")
    listing.set_defaults(run=metric_filter_command, action=_list)
    delete = actions.add_parser("delete", help="delete a metric filter",
                                description="Delete a metric filter and what it counted.")
    _add_group(delete)
    delete.add_argument("--filter-name", required=True)
    delete.set_defaults(run=metric_filter_command, action=_delete)
    return command


def _add_group(command: argparse.ArgumentParser, required: bool = True) -> None:
    command.add_argument("name", nargs=None if required else "?",
                         help="a function (its log group: /aws/lambda/NAME, or its "
                         "LoggingConfig's) or a log group")
    command.add_argument("--state-dir", type=Path, metavar="DIR", default=Path(".fastinvoke"),
                         help="the state directory (default: .fastinvoke)")
    command.add_argument("--endpoint", metavar="URL",
                         help="the server at http://HOST:PORT (the one running on --state-dir "
                         "is found by itself)")


def _put(target: _Target, args: argparse.Namespace) -> int:
    dimensions = {}
    for text in args.dimension:
        name, sep, selector = text.partition("=")
        if not sep or not name or not selector:
            print(f"fastinvoke: --dimension {text}: give NAME=$.field or NAME=$name",
                  file=sys.stderr)
            return 2
        dimensions[name] = selector
    group = target.group(args.name)
    target.put(MetricFilter(args.filter_name, group, [MetricTransformation(
        args.metric_name, args.metric_namespace, args.metric_value, args.default_value,
        dimensions, args.unit)], args.filter_pattern))
    print(f"fastinvoke: metric filter {args.filter_name!r} put on {group} ({target.where}); "
          f"{target.applies}", file=sys.stderr)
    return 0


def _list(target: _Target, args: argparse.Namespace) -> int:
    group = None if args.name is None else target.group(args.name)
    found = target.describe(group, args.filter_name_prefix)
    if args.json:
        print(json.dumps({"metricFilters": msgspec.to_builtins(found)}, indent=2))
        return 0
    rows = [("log group", "filter", "pattern", "metric", "value", "default", "dimensions",
             "unit")]
    for one in found:
        metric = one.metric_transformations[0]
        rows.append((one.log_group_name, one.filter_name, one.filter_pattern,
                     f"{metric.metric_namespace}/{metric.metric_name}", metric.metric_value,
                     "" if metric.default_value is None else f"{metric.default_value:g}",
                     ", ".join(f"{k}={v}" for k, v in metric.dimensions.items()),
                     metric.unit or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    return 0


def _delete(target: _Target, args: argparse.Namespace) -> int:
    group = target.group(args.name)
    target.delete(group, args.filter_name)
    print(f"fastinvoke: metric filter {args.filter_name!r} deleted from {group} "
          f"({target.where})", file=sys.stderr)
    return 0


def metric_filter_command(args: argparse.Namespace) -> int:
    endpoint = args.endpoint
    if endpoint is None and (running := serverfile.running(str(args.state_dir))) is not None:
        endpoint = running.url  # it applies them at once, and keeps them in the state dir
    target: _Target = _Remote(endpoint) if endpoint else _Local(str(args.state_dir))
    return int(args.action(target, args))


class _Target(Protocol):
    """Where the filters are: a server, or a state directory."""

    where: str
    applies: str  # when a filter put there starts counting

    def group(self, name: str) -> str: ...

    def put(self, metric_filter: MetricFilter) -> None: ...

    def describe(self, group: str | None, prefix: str | None) -> list[MetricFilter]: ...

    def delete(self, group: str, name: str) -> None: ...


class _Remote:
    """A server's filters, through its CloudWatch Logs API."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.where = f"the server at {endpoint}"
        self.applies = "it counts the events stored from now on"

    def group(self, name: str) -> str:
        if name.startswith("/"):
            return name
        configuration = get_json(
            self.endpoint, f"/2015-03-31/functions/{quote(name, safe='')}/configuration",
            dict[str, Any])
        return configuration.get("LoggingConfig", {}).get("LogGroup") or log_group(name)

    def put(self, metric_filter: MetricFilter) -> None:
        call_logs(self.endpoint, "PutMetricFilter", msgspec.to_builtins(metric_filter))

    def describe(self, group: str | None, prefix: str | None) -> list[MetricFilter]:
        query = {key: value for key, value in (("logGroupName", group),
                                               ("filterNamePrefix", prefix)) if value}
        found: list[MetricFilter] = []
        while True:
            page = call_logs(self.endpoint, "DescribeMetricFilters", query)
            found += msgspec.convert(page.get("metricFilters", []), list[MetricFilter])
            if not page.get("nextToken"):
                return found
            query["nextToken"] = page["nextToken"]

    def delete(self, group: str, name: str) -> None:
        call_logs(self.endpoint, "DeleteMetricFilter",
                  {"logGroupName": group, "filterName": name})


class _Local:
    """A state directory's ``metric_filters.json``, with no server running on it."""

    def __init__(self, state_dir: str) -> None:
        self.where = state_dir
        self.applies = "the next `fastinvoke serve` there counts the events with it"
        self.functions = {entry.config.name: entry.config.log_group_name
                          for entry in Registry(state_dir).load()}
        self.logged: set[str] = set()
        if (Path(state_dir) / "logs.db").exists():
            with LogStore(Path(state_dir) / "logs.db") as store:
                self.logged = set(store.groups())
        self.filters = MetricFilters(str(Path(state_dir) / "metric_filters.json"),
                                     self._group_exists)

    def _group_exists(self, group: str) -> bool:
        return group in self.logged or group in self.functions.values()

    def group(self, name: str) -> str:
        return name if name.startswith("/") else self.functions.get(name, log_group(name))

    def put(self, metric_filter: MetricFilter) -> None:
        self.filters.put(metric_filter)

    def describe(self, group: str | None, prefix: str | None) -> list[MetricFilter]:
        return self.filters.describe(group, prefix)

    def delete(self, group: str, name: str) -> None:
        self.filters.delete(group, name)
