"""fastinvoke: run AWS-Lambda-style functions on one machine, fast and faithfully."""

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fastinvoke's compiled core (fastinvoke._core) is missing: build it with "
        "`pip install -e .` (or `python setup.py build_ext --inplace`) in the source tree"
    ) from exc

from ._version import __version__
from .config import FunctionConfig
from .errors import FastInvokeError, FunctionError, InvalidRequestContentException
from .invoker import Invoker, InvokeResult

__all__ = [
    "FastInvokeError",
    "FunctionConfig",
    "FunctionError",
    "InvalidRequestContentException",
    "InvokeResult",
    "Invoker",
    "__version__",
]
