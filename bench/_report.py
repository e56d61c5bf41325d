"""The only renderer of benchmark results: a ratio table, or JSON lines.

Every ratio is against the baseline row of the same group from the same run, and is
paired: each round's value is divided by the baseline's value *from that round* (they
ran seconds apart), and the median of those ratios is shown.  On a machine whose speed
drifts between runs, that cancels the drift a ratio of overall medians would keep.  A
value is the median over rounds; ``min..max`` shows how much the rounds disagreed.
"""

from __future__ import annotations

import math
import operator
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

import msgspec

UNITS = {
    "p50_us": "p50 µs",
    "p99_us": "p99 µs",
    "cpu_us": "caller CPU µs",
    "cpu_us_per_call": "CPU µs/call, all processes",
    "cpu_pct": "CPU % of 1 core, all",
    "cpu_pct_front": "CPU %, front-end process",
    "cpu_pct_templates": "CPU %, templates",
    "cpu_pct_workers": "CPU %, workers",
    "inv_per_s": "inv/s",
    "req_per_s": "requests/s",
    "accepted_per_s": "accepted/s",
    "inv_per_s_stored": "inv/s, logs committed",
    "p50_ms": "p50 ms",
    "min_ms": "min ms",
    "first_ms": "first byte ms, p50",
    "last_ms": "last byte ms, p50",
    "mb_per_s": "MB/s, p50",
}


@dataclass(frozen=True)
class Row:
    group: str
    name: str
    label: str
    metric: str
    value: float  # median over rounds
    vs_baseline: float  # median over rounds of (this round's value / baseline's)
    per_round: list[float]
    samples: int
    baseline: bool


@dataclass(frozen=True)
class Check:
    """A median of per-round ratios (``unit`` "x") or, where a ratio hides a small cost
    on a base that moves, of per-round differences (``unit`` e.g. "ms"), and its target.
    No ``op``: shown for context, with no target."""

    title: str
    value: float
    op: str | None  # "<=", "<", ">=" or None
    target: float | None
    unit: str = "x"

    @property
    def ok(self) -> bool | None:
        return None if self.op is None else _OPS[self.op](self.value, self.target)


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


def facts() -> dict[str, object]:
    """The machine and the versions behind the figures."""
    import zmq

    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                "",
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "cpuidle": _read("/sys/devices/system/cpu/cpuidle/current_driver"),
        "guest_halt_poll_ns": _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgspec": msgspec.__version__,
        "uvloop": _version("uvloop"),
        "fastinvoke": _version("fastinvoke") or _source_version(),
        "source": _revision(),
    }


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _revision() -> str | None:
    """The checkout the figures were measured on (``-dirty`` when files were edited)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _source_version() -> str:
    from fastinvoke import __version__

    return f"{__version__} (source tree)"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def render(
    rows: list[Row],
    checks: list[Check],
    *,
    as_json: bool,
    machine: dict[str, object] | None,
    title: str = "",
    skipped: dict[str, str] | None = None,
    verified: dict[str, str] | None = None,
) -> str:
    """``skipped``: contenders that could not run here, with the reason; ``verified``:
    what a contender checked beyond its answers (its last round's account)."""
    skipped, verified = skipped or {}, verified or {}
    if as_json:
        lines = [] if machine is None else [{"versions": machine}]
        lines += [asdict(row) for row in rows]
        lines += [{**asdict(check), "ok": check.ok} for check in checks]
        lines += [{"skipped": name, "reason": reason} for name, reason in skipped.items()]
        lines += [{"checked": name, "what": what} for name, what in verified.items()]
        return "\n".join(msgspec.json.encode(line).decode() for line in lines)
    out = [title] if title else []
    if machine is not None:
        out += [f"  {key}: {value}" for key, value in machine.items()] + [""]
    header = ("contender", "metric", "value", "vs. baseline", "min..max (rounds)")
    table = [
        (
            row.label + (" [baseline]" if row.baseline else ""),
            UNITS[row.metric],
            _number(row.value),
            "n/a" if math.isnan(row.vs_baseline) else f"{row.vs_baseline:.2f}x",
            f"{_number(min(row.per_round))}..{_number(max(row.per_round))} ({len(row.per_round)})",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(len(header))]
    group = None
    for row, cells in zip(rows, table, strict=True):
        if row.group != group:
            group = row.group
            out += ["", f"== {group} ==", _line(header, widths)]
            out.append("  ".join("-" * width for width in widths))
        out.append(_line(cells, widths))
    if checks:
        out += ["", "== checks (medians of per-round ratios or differences) =="]
        lines = [
            (check.title, _with_unit(check.value, check.unit, ".3f"), *_verdict(check))
            for check in checks
        ]
        w = [max(len(line[i]) for line in lines) for i in range(3)]
        out += [
            f"{title:<{w[0]}}  {value:>{w[1]}}   {target:<{w[2]}} {verdict}".rstrip()
            for title, value, target, verdict in lines
        ]
    if verified:
        out += ["", "== checked, beyond every answer (each round; the last one's count) =="]
        out += [f"{name}: {what}" for name, what in verified.items()]
    if skipped:
        out += ["", "== skipped (could not run here) =="]
        out += [f"{name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(out)


def _verdict(check: Check) -> tuple[str, str]:
    if check.op is None:
        return "(no target)", ""
    target = f"target {check.op:<2} {_with_unit(check.target, check.unit, 'g')}"
    return target, "ok" if check.ok else "MISSED"


def _with_unit(value: float, unit: str, spec: str) -> str:
    return f"{value:{spec}}{unit}" if unit == "x" else f"{value:{spec}} {unit}"


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(widths[0])]
        + [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
    )
