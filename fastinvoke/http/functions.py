"""The functions the HTTP API manages: what Lambda reports about each beyond its
``FunctionConfig`` (RevisionId, LastModified, CodeSha256, CodeSize), the packages
uploaded with CreateFunction and UpdateFunctionCode, and their persistence.

Uploaded packages are unpacked into ``<state>/code/<name>/<revision>/``.  The Invoker
keeps the functions of a state directory across restarts; what only the API reports is
kept beside them in ``<state>/http-functions.json``.  Methods run in worker threads
(unpacking a zip is slow); ``lock`` keeps each change whole.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable

import msgspec

from ..config import FunctionConfig
from ..errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ValidationException,
)
from ..invoker import Invoker
from ..jsonfile import save_json
from ..limits import MIN_EPHEMERAL_MB
from ..snapshots import directory_digest
from ..versions import LATEST, Version, check_revision
from . import bodies
from .code import decode_zip, digest, unpack
from .layer_store import LayerStore

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"


class FunctionRecord(msgspec.Struct):
    config: FunctionConfig
    revision_id: str
    last_modified: str
    code_sha256: str
    code_size: int
    uploaded: bool = False  # its code is a package unpacked into the state directory
    layers: list[dict[str, object]] = []  # its Layers, as GetFunction answers them


class _Saved(msgspec.Struct):
    """What ``http-functions.json`` keeps of a record (the Invoker keeps the config)."""

    code: str
    revision_id: str
    last_modified: str
    code_sha256: str
    code_size: int
    uploaded: bool


class Functions:
    """The Lambda API's view of the Invoker's functions (see the module docstring)."""

    def __init__(self, invoker: Invoker, layers: LayerStore | None = None) -> None:
        self.invoker = invoker
        self.layers = layers or LayerStore(invoker.state_dir, invoker.region,
                                           invoker.account_id)
        self.lock = threading.RLock()
        self.records: dict[str, FunctionRecord] = {}
        self._code_root = os.path.join(invoker.state_dir, "code")
        self._saved = os.path.join(invoker.state_dir, "http-functions.json")

    # -- starting -------------------------------------------------------------------------

    def start(self, configs: Iterable[FunctionConfig]) -> list[str]:
        """Serve the functions the Invoker restored from its state directory, and those
        of a template (created, or replaced where they changed).  Returns notes."""
        notes = []
        for config in configs:
            self.invoker.put_function(config)
        saved: dict[str, _Saved] = {}
        try:
            with open(self._saved, "rb") as file:
                saved = msgspec.json.decode(file.read(), type=dict[str, _Saved])
        except FileNotFoundError:
            pass
        except msgspec.DecodeError as exc:
            notes.append(f"{self._saved} is unreadable ({exc}); CodeSha256 and RevisionId "
                         "start afresh: move the file away to silence this")
        for config in self.invoker.list_functions():
            kept = saved.get(config.name)
            if kept is not None and kept.code == config.code:
                self.records[config.name] = FunctionRecord(
                    config, kept.revision_id, kept.last_modified, kept.code_sha256,
                    kept.code_size, kept.uploaded)
            else:
                sha, size = directory_digest(config.code)
                uploaded = config.code.startswith(self._code_root + os.sep)
                self.records[config.name] = _record(config, sha, size, uploaded)
        self._save()
        return notes

    # -- operations ------------------------------------------------------------------------

    def create(self, request: bodies.CreateFunction) -> FunctionRecord:
        if request.package_type != "Zip" or request.code.zip_file is None:
            raise InvalidParameterValueException(
                "fastinvoke runs code uploaded as Code.ZipFile only (no S3 or container "
                "images): zip the code directory and pass its bytes as ZipFile")
        _check_role(request.role)
        if not request.handler or not request.runtime:
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages.")
        if len(request.architectures) != 1:
            raise ValidationException(
                f"1 validation error detected: Value '{request.architectures}' at "
                "'architectures' failed to satisfy constraint: Member must have length less "
                "than or equal to 1")
        package = decode_zip(request.code.zip_file)
        name = _plain_name(request.function_name)
        storage = MIN_EPHEMERAL_MB if request.ephemeral_storage is None \
            else request.ephemeral_storage.size
        with self.lock:
            if name in self.records:
                raise ResourceConflictException(f"Function already exist: {name}")
            revision = str(uuid.uuid4())
            code_dir = os.path.join(self._code_root, name, revision)
            config = FunctionConfig(
                name=name, handler=request.handler, code=code_dir, runtime=request.runtime,
                memory_mb=request.memory_size, timeout_s=request.timeout,
                env=request.environment.variables if request.environment else {},
                role=request.role, description=request.description,
                architecture=request.architectures[0], ephemeral_storage_mb=storage,
                dead_letter_target=_dead_letter(request.dead_letter_config),
                tags=request.tags, layers=self.layers.directories(request.layers),
                **_logging(request.logging_config))
            unpack(package, code_dir)
            try:
                self.invoker.create_function(config)
            except Exception:
                shutil.rmtree(os.path.join(self._code_root, name), ignore_errors=True)
                raise
            record = _record(config, digest(package), len(package), uploaded=True,
                             revision=revision)
            self.records[name] = record
            self._save()
        return self._described(record)

    def publish(self, name: str, description: str, code_sha256: str | None,
                revision_id: str | None) -> FunctionRecord:
        """PublishVersion: the new version's record (the last one's if ``$LATEST`` did not
        change), if ``$LATEST`` is still at ``revision_id`` and its code ``code_sha256``."""
        with self.lock:
            record = self._current(name, revision_id)
            if code_sha256 is not None and code_sha256 != record.code_sha256:
                raise InvalidParameterValueException(
                    f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in "
                    f"$LATEST ({record.code_sha256}). Please try again.")
            return self._described(_version_record(self.invoker.publish_version(
                name, description, code_id=(record.code_sha256, record.code_size))))

    def at(self, name: str, qualifier: str | None) -> FunctionRecord:
        """The record of ``$LATEST``, of a version, or of the version an alias names."""
        config = self.invoker.get_function(name, qualifier)
        if config.version == LATEST:
            return self.get(name)
        return self._described(_version_record(self.invoker.get_version(name,
                                                                        config.version)))

    def versions(self, name: str) -> list[FunctionRecord]:
        """ListVersionsByFunction's: ``$LATEST``, then each version, oldest first."""
        with self.lock:  # (reentrant: ``all`` holds it)
            return [self.get(name), *(self._described(_version_record(version))
                                      for version in self.invoker.list_versions(name))]

    def put_config(self, config: FunctionConfig) -> FunctionRecord:
        """Create the function of a template (its code where the template says), or bring
        it to ``config``."""
        with self.lock:
            config = self.invoker.put_function(config)
            record = _record(config, *directory_digest(config.code), uploaded=False)
            self.records[config.name] = record
            self._save()
            return self._described(record)

    def reload(self, name: str) -> FunctionRecord:
        """Run Init again with what the function's code directory holds now (its files
        changed: hot reload)."""
        with self.lock:
            record = self.get(name)
            config = self.invoker.update_function(name)
            return self._changed(record, config, *directory_digest(config.code))

    def get(self, name: str) -> FunctionRecord:
        """The function's record, its configuration as the Invoker has it now."""
        config = self.invoker.get_function(name)  # 404 in Lambda's words when there is none
        record = self.records[name]
        record.config = config
        return self._described(record)

    def _described(self, record: FunctionRecord) -> FunctionRecord:
        record.layers = self.layers.describe(record.config.layers)
        return record

    def all(self, all_versions: bool = False) -> list[FunctionRecord]:
        """Every function's record, by name; with ``all_versions``, each followed by its
        versions'."""
        with self.lock:
            if not all_versions:
                return [self.get(name) for name in sorted(self.records)]
            return [record for name in sorted(self.records) for record in self.versions(name)]

    def set_concurrency(self, name: str, reserved: int | None) -> None:
        """Put (a number) or delete (None) the function's reserved concurrency."""
        with self.lock:
            if reserved is None:
                self.invoker.delete_function_concurrency(name)
            else:
                self.invoker.put_function_concurrency(name, reserved)
            self.get(name)

    def update_configuration(self, name: str,
                             request: bodies.UpdateFunctionConfiguration) -> FunctionRecord:
        changes: dict[str, object] = {}
        if request.role is not None:
            _check_role(request.role)
            changes["role"] = request.role
        for field, value in (("handler", request.handler), ("runtime", request.runtime),
                             ("description", request.description),
                             ("timeout_s", request.timeout), ("memory_mb", request.memory_size)):
            if value is not None:
                changes[field] = value
        if request.environment is not None:  # the whole map is replaced, never merged
            changes["env"] = request.environment.variables
        if request.ephemeral_storage is not None:
            changes["ephemeral_storage_mb"] = request.ephemeral_storage.size
        if request.dead_letter_config is not None:
            changes["dead_letter_target"] = _dead_letter(request.dead_letter_config)
        if request.layers is not None:
            changes["layers"] = self.layers.directories(request.layers)
        changes.update(_logging(request.logging_config))
        with self.lock:
            record = self._current(name, request.revision_id)
            config = self.invoker.update_function(name, **changes)
            return self._changed(record, config)

    def update_code(self, name: str, request: bodies.UpdateFunctionCode) -> FunctionRecord:
        if request.zip_file is None:
            raise InvalidParameterValueException(
                "fastinvoke takes new code as ZipFile only (no S3 or container images)")
        package = decode_zip(request.zip_file)
        with self.lock:
            record = self._current(name, request.revision_id)
            revision = str(uuid.uuid4())
            code_dir = os.path.join(self._code_root, name, revision)
            unpack(package, code_dir)
            if request.dry_run:  # validated, and not applied
                shutil.rmtree(code_dir)
                return msgspec.structs.replace(record, code_sha256=digest(package),
                                               code_size=len(package))
            try:
                config = self.invoker.update_function(name, code=code_dir)
            except Exception:
                shutil.rmtree(code_dir, ignore_errors=True)
                raise
            previous = record.config.code if record.uploaded else None
            record = self._changed(record, config, digest(package), len(package), revision,
                                   uploaded=True)
            self._prune_code(name, keep=(code_dir, previous))
            return record

    def delete(self, name: str) -> None:
        with self.lock:
            self.invoker.delete_function(name)
            record = self.records.pop(name)
            if record.uploaded:
                shutil.rmtree(os.path.join(self._code_root, name), ignore_errors=True)
            self._save()

    # -- helpers (lock held) ----------------------------------------------------------------

    def _current(self, name: str, revision_id: str | None) -> FunctionRecord:
        record = self.get(name)
        check_revision(revision_id, record.revision_id)
        return record

    def _changed(self, record: FunctionRecord, config: FunctionConfig,
                 sha: str | None = None, size: int | None = None,
                 revision: str | None = None, uploaded: bool | None = None) -> FunctionRecord:
        record = _record(config, sha or record.code_sha256, size or record.code_size,
                         record.uploaded if uploaded is None else uploaded, revision)
        self.records[config.name] = record
        self._save()
        return self._described(record)

    def _prune_code(self, name: str, keep: tuple[str | None, ...]) -> None:
        """Remove packages older than the previous one: the workers still running an
        invocation after an update run the previous one."""
        root = os.path.join(self._code_root, name)
        for entry in os.listdir(root):
            path = os.path.join(root, entry)
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def _save(self) -> None:
        saved = {name: _Saved(record.config.code, record.revision_id, record.last_modified,
                              record.code_sha256, record.code_size, record.uploaded)
                 for name, record in self.records.items()}
        save_json(self._saved, saved)


def _record(config: FunctionConfig, sha: str, size: int, uploaded: bool,
            revision: str | None = None) -> FunctionRecord:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
    return FunctionRecord(config, revision or str(uuid.uuid4()), stamp + "+0000", sha, size,
                          uploaded)


def _version_record(version: Version) -> FunctionRecord:
    return FunctionRecord(version.config, version.revision_id, version.last_modified,
                          version.code_sha256, version.code_size)


def _logging(given: bodies.LoggingConfig | None) -> dict[str, str | None]:
    """A LoggingConfig's members given, as ``FunctionConfig`` fields (they replace the
    current ones); the levels go when the format becomes Text without them."""
    if given is None:
        return {}
    changes = {field: value for field, value in (
        ("log_format", given.log_format), ("application_log_level", given.application_log_level),
        ("system_log_level", given.system_log_level), ("log_group", given.log_group))
        if value is not None}
    if changes.get("log_format") == "Text":
        changes.setdefault("application_log_level", None)
        changes.setdefault("system_log_level", None)
    return changes


def _dead_letter(config: bodies.DeadLetterConfig | None) -> str | None:
    return (config.target_arn or None) if config is not None else None


def _plain_name(name: str) -> str:
    """A new function's name: a bare name (it names a directory in the state dir)."""
    if not _NAME.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ "
            "(1 to 64 characters)")
    return name


def _check_role(role: str) -> None:
    if not _ROLE.match(role):
        raise ValidationException(
            f"1 validation error detected: Value '{role}' at 'role' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {_ROLE_PATTERN}")
