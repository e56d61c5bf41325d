"""``fastinvoke bench NAME ...``: run the load, print the report, write the plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvloop

from . import plot, report
from .runner import Plan, run
from .targets import make_target


def bench(name: str, payload: bytes, plan: Plan, *, template: Path | None,
          endpoint: str | None, as_json: bool, plot_path: Path | None,
          parameters: dict[str, str] | None = None,
          layers: dict[str, str] | None = None) -> int:
    """Exit status 0 once the run is reported, whatever the errors counted in it."""
    if plot_path is not None:
        plot.check(plot_path)
    target = make_target(name, payload, template=template, endpoint=endpoint,
                         batch=plan.batch, parameters=parameters, layers=layers)
    recorder = uvloop.run(run(target, plan))
    summary = recorder.summary()
    text = report.as_text(summary, plan, name, target.description)
    if as_json:
        if note := report.shortfall(summary, plan):
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps(report.as_dict(summary, plan, name, target.description)))
    else:
        print(text)
    if plot_path is not None:
        plot.write(plot_path, recorder, text.splitlines()[0], text, plan.rate)
        print(f"plot written to {plot_path}", file=sys.stderr)
    return 0
