"""The environment a function's processes start with: Lambda's variables and the user's.

Nothing else of the host's environment leaks in, except what a process needs to start
(``PATH``, ``HOME``) and the caller's AWS credentials, so that a function can reach AWS
services as it would with its execution role (SAM local does the same) -- unless the
server hands it its role's own credentials (``Invoker(iam=True)``, ``serve --iam``).

The template is a Python process, so it gets the Python variables it needs to start; it
names them in ``TEMPLATE_ONLY`` so that the function does not see them: a Python template
drops them once started, and the runtime process of another runtime never inherits them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from .._core import monotonic_ns
from ..config import FunctionConfig
from ..iam.credentials import RENEW_BEFORE_S
from ..runtime.launch import TEMPLATE_ONLY, runtime_family

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE_PARENT = os.path.dirname(_PACKAGE_DIR)
_RUNTIME_DIR = os.path.join(_PACKAGE_DIR, "runtime")
_NODE_RUNTIME_DIR = os.path.join(_RUNTIME_DIR, "node")
_PASSED_THROUGH = ("PATH", "HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "AWS_SESSION_TOKEN", "SYSTEMROOT")

# A function's variables of the server's own (its role's credentials, the server's
# endpoint), and when they expire (epoch seconds; None: never).
Environment = Callable[[FunctionConfig], tuple[dict[str, str], float | None]]


def renewal_due(expires: float) -> int:
    """When (monotonic ns) an environment whose credentials expire at ``expires`` is
    renewed: ``RENEW_BEFORE_S`` before (a quarter of their life, if that is shorter), so
    that no environment ever holds expired credentials, as on Lambda."""
    left = expires - time.time()
    return monotonic_ns() + int((left - min(RENEW_BEFORE_S, left / 4)) * 1e9)


def function_environment(config: FunctionConfig, region: str, code_dir: str,
                         opt: str = "", served: dict[str, str] | None = None) -> dict[str, str]:
    """Lambda's reserved variables (docs/lambda-behaviour.md, "Execution environment"),
    the server's (``served``: see ``Environment``), then the function's own.
    ``code_dir`` is where the function sees its code: ``/var/task`` in its sandbox;
    ``opt`` where it sees its layers (``/opt`` there; "" without layers)."""
    family = runtime_family(config.runtime)
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    python = {
        "PYTHONPATH": _PACKAGE_PARENT,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if sys.flags.dev_mode:
        python["PYTHONDEVMODE"] = "1"
    env.update({
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **python,
        "_HANDLER": config.handler,
        "LAMBDA_TASK_ROOT": code_dir,
        "LAMBDA_RUNTIME_DIR": _NODE_RUNTIME_DIR if family == "nodejs" else _RUNTIME_DIR,
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": config.version,
        "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group_name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    })
    if config.log_format == "JSON":  # what Lambda's runtimes read of its LoggingConfig
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = config.application_log_level or "INFO"
    if family != "provided":  # Lambda leaves it unset for custom runtimes
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{config.runtime}"
    if family == "nodejs":  # Lambda's order: the layers' modules, then the code's
        major = "".join(filter(str.isdigit, config.runtime.split(".")[0]))
        layers = [f"{opt}/nodejs/node{major}/node_modules", f"{opt}/nodejs/node_modules"]
        env["NODE_PATH"] = ":".join([*(layers if opt else []), code_dir])
    env.update(served or {})
    # What starts the template, not Lambda's: the function does not see it.
    env[TEMPLATE_ONLY] = ",".join(name for name in python if name not in config.env)
    env.update(config.env)
    return env
