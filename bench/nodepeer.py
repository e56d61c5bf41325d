"""lambda-local (npm), the Node.js peer: installed once into a cache directory, then
driven by ``peers/lambda_local.js`` (its API) or its own CLI.

The install goes to ``$XDG_CACHE_HOME/fastinvoke-bench/npm`` (default ``~/.cache``), not
the source tree.  Without ``node`` and ``npm``, or when the install fails, the
contenders are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

LAMBDA_LOCAL = "lambda-local@2.2.0"
SCRIPT = str(Path(__file__).parent / "peers" / "lambda_local.js")
HANDLER = str(Path(__file__).parent / "functions" / "add.js")
INSTALL_TIMEOUT_S = 120


class Unavailable(Exception):
    """lambda-local cannot run here; the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastinvoke-bench" / "npm"


def node_modules() -> Path:
    """The node_modules holding lambda-local, installing it on first use."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise Unavailable(f"`{tool}` is not installed (apt-get install nodejs npm)")
    prefix = cache_dir()
    modules = prefix / "node_modules"
    if not (modules / "lambda-local" / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
             LAMBDA_LOCAL], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            raise Unavailable(f"npm install {LAMBDA_LOCAL} failed: {done.stderr.strip()[-300:]}")
    return modules


def environment() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(node_modules())}


def api(*args: str) -> str:
    """Run the API driver (``peers/lambda_local.js``) and return its JSON line."""
    done = subprocess.run(["node", SCRIPT, *args], capture_output=True, text=True,
                          env=environment(), timeout=80)
    if done.returncode != 0:
        raise AssertionError(f"lambda_local.js {' '.join(args)} failed: {done.stderr[-500:]}")
    return done.stdout.splitlines()[-1]


def cli_argv(event_path: str) -> list[str]:
    """lambda-local's own command line, printing the result (verbosity 1)."""
    return [str(node_modules() / ".bin" / "lambda-local"), "-l", HANDLER, "-h", "handler",
            "-e", event_path, "-v", "1"]
