"""Defaults for the microbenchmarks: GC off, enough rounds, a warmup.

Run them on request only: ``python -m pytest bench/micro`` (the project's
``testpaths`` is ``tests``, so a plain ``pytest`` never collects them).  The options
are set before pytest-benchmark reads them; pass ``--benchmark-*`` flags to override
the others.  GC stays off whatever the command line says: a collection landing in one
round would be measured as the operation's cost.
"""

from __future__ import annotations

import pytest

_DEFAULTS = {  # flag -> value unless the command line gives it
    "--benchmark-min-rounds": 20,
    "--benchmark-warmup": "on",
    "--benchmark-warmup-iterations": 1000,
    "--benchmark-sort": "name",
}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.option.benchmark_disable_gc = True
    given = {arg.split("=", 1)[0] for arg in config.invocation_params.args}
    for flag, value in _DEFAULTS.items():
        if flag not in given:
            setattr(config.option, flag[2:].replace("-", "_"), value)
