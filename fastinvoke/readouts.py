"""``fastinvoke logs`` and ``fastinvoke billing``: what functions logged and what their
invocations would cost, read from a state directory or from a running server
(``--endpoint``, or the server that runs on the state directory now: its meters are live
only in it, and reach ``meters.json`` when it stops)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from urllib.parse import quote

import msgspec

from . import serverfile
from .logs import log_group
from .logstore import LogEvent, LogStore, parse_duration
from .metering import Bill, Usage, bill_usage, load_usage
from .registry import Registry
from .remote import get_json

_PAGE = 1000
_POLL_S = 0.5


class Billing(msgspec.Struct):
    """``GET /billing`` of a server."""

    usage: dict[str, Usage]  # every function's and version's counters, as meters.json
    live: list[str]  # those not deleted (NAME, NAME:N)


class LogPage(msgspec.Struct):
    """``GET /logs/NAME`` of a server: events oldest first; ask again with ``after`` the
    last one's seq."""

    events: list[LogEvent]


# -- logs -------------------------------------------------------------------------------------

def logs_command(args: argparse.Namespace) -> int:
    try:
        since_ms = (time.time_ns() // 1_000_000 - parse_duration(args.since)
                    if args.since else None)
    except ValueError as exc:
        print(f"fastinvoke: --since: {exc}", file=sys.stderr)
        return 2
    if args.endpoint is not None:
        return _remote_logs(args, since_ms)
    database = args.state_dir / "logs.db"
    if not database.exists():
        print(f"fastinvoke: no log store in {args.state_dir}: run functions with "
              f"--state-dir {args.state_dir} first", file=sys.stderr)
        return 2
    group = args.name if args.name.startswith("/") else next(
        (entry.config.log_group_name for entry in Registry(str(args.state_dir)).load()
         if entry.config.name == args.name), log_group(args.name))
    with LogStore(database) as store:
        if group not in store.groups():
            print(f"fastinvoke: no logs for '{args.name}' in {args.state_dir} (log groups: "
                  f"{', '.join(store.groups()) or 'none'})", file=sys.stderr)
            return 2
        try:
            if args.follow:
                events = store.follow(group, since_ms=since_ms, pattern=args.filter)
            else:
                events = iter(store.events(group, since_ms=since_ms, pattern=args.filter))
            for event in events:
                sys.stdout.write(event.message)
                sys.stdout.flush()
        except ValueError as exc:
            print(f"fastinvoke: --filter: {exc}", file=sys.stderr)
            return 2
    return 0


def _remote_logs(args: argparse.Namespace, since_ms: int | None) -> int:
    """The function's log lines from the server at ``--endpoint``, page by page (and
    polling for new ones with ``--follow``)."""
    query = {key: str(value) for key, value in (("filter", args.filter),
                                                ("since_ms", since_ms)) if value is not None}
    path = f"/logs/{quote(args.name, safe='')}"
    while True:
        events = get_json(args.endpoint, path, LogPage, query).events
        for event in events:
            sys.stdout.write(event.message)
        sys.stdout.flush()
        if events:
            query["after"] = str(events[-1].seq)
        if len(events) < _PAGE:
            if not args.follow:
                return 0
            time.sleep(_POLL_S)


# -- billing ----------------------------------------------------------------------------------

def billing_command(args: argparse.Namespace) -> int:
    endpoint = args.endpoint
    state_dir = str(args.state_dir)
    if endpoint is None and (running := serverfile.running(state_dir)) is not None:
        print(f"note: `fastinvoke serve` runs on {state_dir} (pid {running.pid}): these are "
              f"its live meters, which `fastinvoke billing --endpoint {running.url}` reads "
              "from anywhere", file=sys.stderr)
        endpoint = running.url
    if endpoint is not None:
        billing = get_json(endpoint, "/billing", Billing)
        usage, live, where = billing.usage, set(billing.live), endpoint
    else:
        usage = load_usage(f"{state_dir}/meters.json")
        live = {name for entry in Registry(state_dir).load() for name in (
            entry.config.name, *(f"{entry.config.name}:{n}" for n in entry.lineage.versions))}
        where = state_dir
    if args.name is not None:
        if args.name not in usage:
            print(f"fastinvoke: no meters for '{args.name}' in {where} (functions: "
                  f"{', '.join(usage) or 'none'})", file=sys.stderr)
            return 2
        usage = {args.name: usage[args.name]}
    if not usage:
        print(f"fastinvoke: no meters in {where}: run functions with --state-dir "
              f"{state_dir} first", file=sys.stderr)
        return 2
    deleted = sorted(set(usage) - live)
    bill = bill_usage(usage)
    if args.json:
        # Amounts as exact decimal text ("0.0000008166675"), never floats.
        document = msgspec.to_builtins(bill, builtin_types=(Decimal,))
        document["deleted"] = deleted
        print(json.dumps(document, default=lambda amount: format(amount, "f")))
        return 0
    _print_bill(bill, set(deleted))
    return 0


def _print_bill(bill: Bill, deleted: set[str]) -> None:
    """The bill as a table: a row per function (deleted ones together, in one row that
    says how many), the total, the free tier and what is left to pay."""
    lines = bill.functions
    rows = [(line.function, line.architecture, f"{line.requests:,}", f"{line.gb_seconds:.4f}",
             f"{line.cost:.8f}") for line in lines if line.function not in deleted]
    gone = [line for line in lines if line.function in deleted]
    if gone:
        rows.append((f"({len(gone)} deleted)", "", f"{sum(line.requests for line in gone):,}",
                     f"{sum(line.gb_seconds for line in gone):.4f}",
                     f"{sum(line.cost for line in gone):.8f}"))
    rows.append(("total", "", f"{bill.requests:,}", f"{bill.gb_seconds:.4f}",
                 f"{bill.gross_cost:.8f}"))
    rows.append(("free tier", "", f"-{bill.free_requests:,}", f"-{bill.free_gb_seconds:.4f}",
                 f"{bill.cost - bill.gross_cost:.8f}"))
    rows.append(("to pay", "", "", "", f"{bill.cost:.8f}"))
    header = ("function", "arch", "requests", "GB-seconds", "USD")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
