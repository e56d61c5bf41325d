"""Resolve a handler string ``module.function`` with Lambda's rules and errors.

As awslambdaric does: split on the last dot, ``/`` in the module part becomes ``.``
(``dir/app.handler`` works), import relative to ``sys.path`` whose first entry is the
code directory, and raise the ``Runtime.*`` fault Lambda reports for each failure.  An
exception raised by the module's own top-level code propagates unchanged: Lambda reports
it with its own class name.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from .faults import Fault


def resolve(handler: str) -> Callable[[Any, Any], Any]:
    """Import the handler's module (the Init phase) and return the handler function."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    module_name = module_name.replace("/", ".")
    if module_name in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        raise Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {text}\n'],
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return function
