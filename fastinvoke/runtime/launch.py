"""How a runtime other than Python is started (docs/lambda-behaviour.md, "Runtimes"): its
command and environment.

* ``nodejs*``: this machine's ``node`` running fastinvoke's bootstrap (``node/bootstrap.js``,
  no dependencies), which loads ``_HANDLER`` from ``LAMBDA_TASK_ROOT``;
* ``provided*``: the function's own executable ``bootstrap``, first in the code directory
  (``/var/task/bootstrap`` on Lambda), else ``/opt/bootstrap``; run with no arguments.

The template resolves the command once (its Init: a missing ``node`` or ``bootstrap`` fails
there, with Lambda's ``Runtime.InvalidEntrypoint``); each worker starts it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import MutableMapping

from .faults import Fault

PYTHON_RUNTIME = re.compile(r"^python3\.(\d+)$")
NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
PROVIDED_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
BOOTSTRAP_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "bootstrap.js")
LAYER_BOOTSTRAP = "/opt/bootstrap"
# The template's environment names here the variables that it needs (it is Python) and
# the function must not see (pool/environment.py sets it).
TEMPLATE_ONLY = "_FASTINVOKE_TEMPLATE_ONLY"


def runtime_family(runtime: str) -> str | None:
    """``python``, ``nodejs`` or ``provided`` for a runtime fastinvoke runs; else None."""
    if PYTHON_RUNTIME.match(runtime):
        return "python"
    if runtime in NODE_RUNTIMES:
        return "nodejs"
    if runtime in PROVIDED_RUNTIMES:
        return "provided"
    return None


def runtime_command(family: str, code_dir: str, debug_port: int = 0) -> list[str]:
    """The command that starts a ``nodejs`` or ``provided`` runtime (Node.js with its
    inspector on ``debug_port``, if given); raises ``Fault``."""
    if family == "nodejs":
        node = shutil.which("node")
        if node is None:
            raise Fault("Runtime.InvalidEntrypoint",
                        "Couldn't find node on the PATH: install Node.js, or set PATH in the "
                        "function's environment to include it")
        inspect = [f"--inspect=127.0.0.1:{debug_port}"] if debug_port else []
        return [node, *inspect, BOOTSTRAP_JS]
    candidates = [os.path.join(code_dir, "bootstrap"), LAYER_BOOTSTRAP]
    for path in candidates:
        if os.path.isfile(path):
            if not os.access(path, os.X_OK):
                raise Fault("Runtime.InvalidEntrypoint",
                            f"fork/exec {path}: permission denied (make it executable: "
                            f"chmod +x {path})")
            return [path]
    raise Fault("Runtime.InvalidEntrypoint",
                f"Couldn't find valid bootstrap(s): [{' '.join(candidates)}] (a custom runtime "
                "is an executable file named bootstrap in the code directory)")


def runtime_environment(api_address: str) -> dict[str, str]:
    """The runtime process's environment: this worker's (Lambda's variables and the
    function's; docs/lambda-behaviour.md, "Execution environment") without the template's
    own, with ``AWS_LAMBDA_RUNTIME_API``."""
    env = dict(os.environ)
    drop_template_variables(env)
    env["AWS_LAMBDA_RUNTIME_API"] = api_address
    return env


def drop_template_variables(env: MutableMapping[str, str]) -> None:
    """Take the variables only the template needed to start (``TEMPLATE_ONLY``) out of
    ``env``, so that the function sees Lambda's environment alone."""
    for name in env.pop(TEMPLATE_ONLY, "").split(","):
        env.pop(name, None)
