"""fastinvoke: run AWS-Lambda-style functions on one machine, fast and faithfully.

The public names are imported on first use (PEP 562), so that a function's own processes,
which import ``fastinvoke.runtime``, load only what they run and not the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fastinvoke's compiled core (fastinvoke._core) is missing: build it with "
        "`pip install -e .` (or `python setup.py build_ext --inplace`) in the source tree"
    ) from exc

from ._version import __version__

if TYPE_CHECKING:
    from .config import FunctionConfig
    from .errors import FastInvokeError, FunctionError, InvalidRequestContentException
    from .invoker import Invoker
    from .result import InvokeResult

_HOMES = {
    "FunctionConfig": "config",
    "FastInvokeError": "errors",
    "FunctionError": "errors",
    "InvalidRequestContentException": "errors",
    "Invoker": "invoker",
    "InvokeResult": "result",
}

__all__ = [
    "FastInvokeError",
    "FunctionConfig",
    "FunctionError",
    "InvalidRequestContentException",
    "InvokeResult",
    "Invoker",
    "__version__",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fastinvoke' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
