"""A function's configuration and Lambda's limits on it.

Values out of Lambda's ranges are refused with the error Lambda gives
(``ValidationException`` with its "1 validation error detected" text), never clamped.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import msgspec

from .errors import InvalidParameterValueException, ValidationException
from .events.config import check_dead_letter
from .limits import (
    MAX_ENV_BYTES,
    MAX_EPHEMERAL_MB,
    MAX_MEMORY_MB,
    MAX_TIMEOUT_S,
    MIN_EPHEMERAL_MB,
    MIN_MEMORY_MB,
    MIN_TIMEOUT_S,
    check_range,
)
from .runtime.launch import NODE_RUNTIMES, PROVIDED_RUNTIMES, PYTHON_RUNTIME, runtime_family

LOCAL_PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
ACCOUNT_ID = "123456789012"  # the account ARNs and events name unless told another
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


class FunctionConfig(msgspec.Struct, kw_only=True):
    """What a function is: its code, handler and the resources Lambda would give it.

    ``code`` is a directory holding the handler module.  ``reserved_concurrency``
    caps (and reserves) concurrent executions; ``provisioned`` keeps that many
    workers initialised and ready.  ``prefork=False`` starts every worker as a fresh
    interpreter instead of a fork of the template, for code that is not fork-safe.
    ``dead_letter_target`` (Lambda's DeadLetterConfig.TargetArn: an SQS queue or SNS
    topic ARN, or ``file:///path.jsonl``) receives the Event invocations that failed.
    ``ephemeral_storage_mb`` is the size of the function's ``/tmp`` (Lambda's
    EphemeralStorage.Size).  ``tags`` are its tags (TagResource's), which change nothing of
    how it runs.  ``layers`` are directories holding its layers' content (what a layer's
    zip holds), in Lambda's order: the function sees them merged at ``/opt``.
    ``version`` is ``$LATEST`` for the function itself; a published version's
    configuration (``Invoker.publish_version``) carries its number.  ``log_format``
    (``Text`` or ``JSON``), ``application_log_level``, ``system_log_level`` and
    ``log_group`` are Lambda's LoggingConfig: in JSON, the runtime's logging and the
    platform's lines are JSON records, filtered by those levels.  ``debug_port`` (not
    Lambda's: for debugging) runs the function in one worker that a debugger attaches to
    on 127.0.0.1 at that port: debugpy for Python (the worker waits for it before its
    first invocation), ``node --inspect`` for Node.js.
    """

    name: str
    handler: str
    code: str = "."
    runtime: str = LOCAL_PYTHON
    memory_mb: int = MIN_MEMORY_MB
    timeout_s: int = 3
    env: dict[str, str] = {}
    reserved_concurrency: int | None = None
    provisioned: int = 0
    role: str | None = None
    description: str = ""
    architecture: str = "x86_64"
    prefork: bool = True
    dead_letter_target: str | None = None
    ephemeral_storage_mb: int = MIN_EPHEMERAL_MB
    tags: dict[str, str] = {}
    layers: list[str] = []
    version: str = "$LATEST"
    log_format: str = "Text"
    application_log_level: str | None = None  # JSON only; INFO when not given
    system_log_level: str | None = None  # JSON only; INFO when not given
    log_group: str | None = None  # /aws/lambda/<name> when not given
    debug_port: int = 0

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"

    @property
    def qualified_name(self) -> str:
        """``name`` for ``$LATEST``, ``name:N`` for version N: its pool's key."""
        return self.name if self.version == "$LATEST" else f"{self.name}:{self.version}"

    def validate(self) -> FunctionConfig:
        """Check Lambda's limits; return self so calls can chain."""
        _check_name(self.name)
        if self.version != "$LATEST" and not self.version.isdigit():
            raise InvalidParameterValueException(
                f"version is $LATEST or a published version's number, not {self.version!r}")
        check_range(self.memory_mb, "memorySize", MIN_MEMORY_MB, MAX_MEMORY_MB)
        check_range(self.timeout_s, "timeout", MIN_TIMEOUT_S, MAX_TIMEOUT_S)
        check_range(self.ephemeral_storage_mb, "ephemeralStorage.size", MIN_EPHEMERAL_MB,
                    MAX_EPHEMERAL_MB)
        if self.reserved_concurrency is not None:
            check_range(self.reserved_concurrency, "reservedConcurrentExecutions", 0, 1_000_000)
        check_range(self.provisioned, "provisionedConcurrentExecutions", 0, 1_000_000)
        if self.architecture not in ("x86_64", "arm64"):
            raise ValidationException(
                f"1 validation error detected: Value '[{self.architecture}]' at 'architectures' "
                "failed to satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]"
            )
        if not self.handler:
            raise InvalidParameterValueException("Handler is required for Zip packages.")
        _check_env(self.env)
        check_tags(self.tags)
        _check_logging(self)
        if not 0 <= self.debug_port <= 65535:
            raise InvalidParameterValueException(
                f"debug_port {self.debug_port} is no TCP port: give 1 to 65535 (0: none)")
        _check_layers(self.name, self.layers)
        if self.dead_letter_target is not None:
            check_dead_letter(self.dead_letter_target)
        check_runtime(self.runtime)  # refuses runtimes this machine cannot run
        if not Path(self.code).is_dir():
            raise InvalidParameterValueException(
                f"Code for function '{self.name}' not found: '{self.code}' is not a directory. "
                "Give the directory that holds the handler module."
            )
        return self



def check_runtime(runtime: str) -> str:
    """Refuse a runtime this machine cannot run; return its family.

    A Python or Node.js version other than this machine's runs on this machine's, with a
    warning that says so (a custom runtime brings its own ``bootstrap``)."""
    family = runtime_family(runtime)
    if family == "python":
        python_minor(runtime)
    elif family == "nodejs":
        _check_node(runtime)
    elif family is None:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is not supported by this fastinvoke: use a "
            f"Python runtime (python3.8 to python3.14; this machine runs {LOCAL_PYTHON}), "
            f"{', '.join(NODE_RUNTIMES)} or {', '.join(PROVIDED_RUNTIMES)}."
        )
    return family


def python_minor(runtime: str) -> int:
    """The Python minor version a ``python3.X`` runtime asks for, warning when this
    machine's Python is another one."""
    match = PYTHON_RUNTIME.match(runtime)
    if match is None:
        raise InvalidParameterValueException(f"{runtime} is not a python3.X runtime.")
    minor = int(match.group(1))
    if minor != sys.version_info.minor:
        warnings.warn(
            f"runtime {runtime} runs on this machine's {LOCAL_PYTHON}; "
            f"install Python 3.{minor} and run fastinvoke with it for an exact match",
            RuntimeWarning,
            stacklevel=4,
        )
    return minor


@functools.cache
def local_node() -> tuple[str, int] | None:
    """(path, major version) of the ``node`` on PATH, or None when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.strip()
        return node, int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _check_node(runtime: str) -> None:
    local = local_node()
    if local is None:
        raise InvalidParameterValueException(
            f"The runtime {runtime} needs Node.js: install it so that `node` is on the PATH "
            "(fastinvoke runs Node.js functions on this machine's node)."
        )
    wanted = int(runtime.removeprefix("nodejs").removesuffix(".x"))
    if wanted != local[1]:
        warnings.warn(
            f"runtime {runtime} runs on this machine's Node.js {local[1]} ({local[0]}); "
            f"put Node.js {wanted} first on the PATH for an exact match",
            RuntimeWarning,
            stacklevel=4,
        )


def _check_name(name: str) -> None:
    if len(name) > 64:
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            "constraint: Member must have length less than or equal to 64"
        )
    if not _NAME.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
        )



APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
_LOG_GROUP = re.compile(r"^[\.\-_/#A-Za-z0-9]{1,512}$")


def _check_logging(config: FunctionConfig) -> None:
    """Lambda's LoggingConfig rules: levels only with the JSON format."""
    for value, member, allowed in (
            (config.log_format, "loggingConfig.logFormat", ("Text", "JSON")),
            (config.application_log_level, "loggingConfig.applicationLogLevel",
             APPLICATION_LOG_LEVELS),
            (config.system_log_level, "loggingConfig.systemLogLevel", SYSTEM_LOG_LEVELS)):
        if value is not None and value not in allowed:
            raise ValidationException(
                f"1 validation error detected: Value '{value}' at '{member}' failed to "
                f"satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
    if config.log_format == "Text" and (config.application_log_level or config.system_log_level):
        raise InvalidParameterValueException(
            "Application and system log levels can only be set when the log format is JSON")
    if config.log_group is not None and not _LOG_GROUP.match(config.log_group):
        raise ValidationException(
            f"1 validation error detected: Value '{config.log_group}' at "
            "'loggingConfig.logGroup' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: [\\.\\-_/#A-Za-z0-9]+")


MAX_TAGS = 50
MAX_LAYERS = 5


def _check_layers(name: str, layers: list[str]) -> None:
    if len(layers) > MAX_LAYERS:
        raise InvalidParameterValueException(
            f"Cannot reference more than {MAX_LAYERS} layers; {name} has {len(layers)}")
    for layer in layers:
        if not Path(layer).is_dir():
            raise InvalidParameterValueException(
                f"Layer of function '{name}' not found: '{layer}' is not a directory. Give "
                "the directory that holds the layer's content (python/, nodejs/...)")


def check_tags(tags: dict[str, str]) -> None:
    """Lambda's rules for tags: at most 50, keys of 1-128 characters not starting with
    ``aws:``, values of at most 256."""
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValueException(
            f"A function can have at most {MAX_TAGS} tags; this one would have {len(tags)}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise InvalidParameterValueException(
                f"Tag key {key[:140]!r} is invalid: keys have 1 to 128 characters and may not "
                "start with aws:")
        if len(value) > 256:
            raise InvalidParameterValueException(
                f"The value of tag {key!r} is longer than 256 characters")


def _check_env(env: dict[str, str]) -> None:
    reserved = sorted(_RESERVED_ENV.intersection(env))
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    size = len(msgspec.json.encode(env))
    if size > MAX_ENV_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )
