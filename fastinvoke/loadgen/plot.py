"""Latency percentiles and throughput over a run's time, as a PNG or a self-contained
HTML page (the same figure as inline SVG, with the summary beside it).

matplotlib is an optional extra (``pip install 'fastinvoke[plot]'``); without it,
``--plot`` says so before the run starts.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from .recorder import Recorder
from .targets import BenchError

FORMATS = (".png", ".html")
SERIES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("max", "max"))
NICE_WIDTHS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
TARGET_POINTS = 60


def check(path: Path) -> None:
    """Refuse a plot that cannot be written, before the run rather than after it."""
    if path.suffix.lower() not in FORMATS:
        raise BenchError(f"--plot {path}: give a file name ending in .png or .html")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("--plot needs matplotlib: pip install 'fastinvoke[plot]'") from None


def interval_width(elapsed_s: float) -> float:
    """A round interval giving about ``TARGET_POINTS`` points over the run."""
    wanted = elapsed_s / TARGET_POINTS
    return next((w for w in NICE_WIDTHS_S if w >= wanted), NICE_WIDTHS_S[-1])


def write(path: Path, recorder: Recorder, title: str, summary_text: str,
          rate: float | None = None) -> None:
    """The figure for ``recorder``'s run; ``rate``: the open loop's asked rate, drawn."""
    figure = _figure(recorder, title, rate)
    if path.suffix.lower() == ".png":
        figure.savefig(path, format="png", dpi=110)
        return
    svg = io.StringIO()
    figure.savefig(svg, format="svg")
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n"
        "<body style=\"font-family: sans-serif; margin: 2em\">\n"
        f"<pre>{html.escape(summary_text)}</pre>\n{_svg_element(svg.getvalue())}\n"
        "</body></html>\n", encoding="utf-8")


def _svg_element(document: str) -> str:
    """The <svg> element alone (the XML prolog and doctype do not belong inside HTML)."""
    return document[document.index("<svg"):]


def _figure(recorder: Recorder, title: str, rate_asked: float | None) -> Any:
    # A bare Figure, not pyplot: rendered by Agg (PNG) or the SVG backend, never a display.
    from matplotlib.figure import Figure

    width = interval_width(recorder.elapsed_s)
    timeline = recorder.timeline(width)
    times = [interval.end_s for interval in timeline]
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    latency, rate = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for label, key in SERIES:
        # An interval with no completed request has no latency: a gap, not a zero.
        values = [i.latency_us[key] / 1e3 if i.throughput else float("nan") for i in timeline]
        latency.plot(times, values, marker=".", label=label)
    latency.set_yscale("log")
    latency.set_ylabel("latency (ms, log scale)")
    latency.legend(loc="upper left", ncols=len(SERIES))
    latency.grid(True, which="both", alpha=0.3)
    latency.set_title(title, fontsize=10)
    rate.plot(times, [i.throughput for i in timeline], color="tab:blue", label="completed")
    if rate_asked is not None:
        rate.axhline(rate_asked, color="gray", linestyle="--", label="asked (open loop)")
    if any(i.error_rate for i in timeline):
        rate.plot(times, [i.error_rate for i in timeline], color="tab:red", label="failed")
    rate.set_ylabel("requests/s")
    rate.set_xlabel(f"time since the start (s); {width:g} s intervals")
    rate.set_ylim(bottom=0)
    rate.legend(loc="lower right")
    rate.grid(True, alpha=0.3)
    return figure
