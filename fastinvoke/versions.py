"""Lambda's versions and aliases of one function, as rules and records (no processes).

A version is an immutable snapshot of ``$LATEST``: its configuration and a copy of its
code, numbered 1, 2, ... and never renumbered (a deleted version's number is not used
again).  Publishing while ``$LATEST`` is unchanged since the last version returns that
version.  An alias names a version (or ``$LATEST``) and may send a share of its
invocations to one more version (``RoutingConfig.AdditionalVersionWeights``); a version an
alias points to cannot be deleted.  (AWS Lambda Developer Guide, "Lambda function
versions" and "Lambda function aliases".)
"""

from __future__ import annotations

import random
import re
import time
import uuid

import msgspec

from .config import FunctionConfig
from .errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)

LATEST = "$LATEST"
_ALIAS = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$")
_VERSION = re.compile(r"^(\$LATEST|[0-9]{1,1024})$")
MAX_DESCRIPTION = 256
# What a version does not take from $LATEST: they belong to the function, not to a version.
_NOT_SNAPSHOT = ("code", "version", "description", "tags", "reserved_concurrency",
                 "provisioned")


def now_stamp() -> str:
    """Lambda's ``LastModified``: ``2026-12-06T08:01:02.345+0000``."""
    now = time.time()
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now % 1 * 1000):03d}+0000")


class Version(msgspec.Struct, kw_only=True):
    """A published version: its configuration (``config.version`` is its number, its code
    a copy) and what Lambda reports of it."""

    config: FunctionConfig
    code_sha256: str
    code_size: int
    revision_id: str = msgspec.field(default_factory=lambda: str(uuid.uuid4()))
    last_modified: str = msgspec.field(default_factory=now_stamp)


class Alias(msgspec.Struct, kw_only=True):
    """An alias: ``function_version`` gets the invocations ``weights`` (one other version
    -> its share, 0 to 1) does not send elsewhere."""

    name: str
    function_version: str
    description: str = ""
    weights: dict[str, float] = {}
    revision_id: str = msgspec.field(default_factory=lambda: str(uuid.uuid4()))

    def route(self) -> str:
        """The version one invocation through the alias runs on."""
        draw = random.random()
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.function_version


class Lineage(msgspec.Struct, kw_only=True):
    """A function's versions (by number, as text) and aliases (by name)."""

    last: int = 0  # the highest number published; numbers are never used twice
    versions: dict[str, Version] = {}
    aliases: dict[str, Alias] = {}
    provisioned: dict[str, int] = {}  # version number or alias -> provisioned concurrency

    def unchanged(self, config: FunctionConfig, code_sha256: str) -> Version | None:
        """The last version, when ``$LATEST`` (``config``, code ``code_sha256``) has not
        changed since it was published."""
        last = self.versions.get(str(self.last))
        if last is None or last.code_sha256 != code_sha256:
            return None
        ignored = dict.fromkeys(_NOT_SNAPSHOT)
        same = msgspec.structs.replace(config, **ignored) == msgspec.structs.replace(
            last.config, **ignored)
        return last if same else None

    def snapshot(self, config: FunctionConfig, code_dir: str, description: str) -> FunctionConfig:
        """The configuration of the next version of ``$LATEST`` (``config``)."""
        return msgspec.structs.replace(config, version=str(self.last + 1), code=code_dir,
                                       description=description or config.description,
                                       tags={}, reserved_concurrency=None, provisioned=0)

    def version(self, number: str, arn: str) -> Version:
        found = self.versions.get(number)
        if found is None:
            raise ResourceNotFoundException(f"Function not found: {arn}:{number}")
        return found

    def check_deletable(self, number: str) -> None:
        """Refuse to delete a version an alias points to, as Lambda does."""
        users = sorted(alias.name for alias in self.aliases.values()
                       if number == alias.function_version or number in alias.weights)
        if users:
            raise ResourceConflictException(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(users)}]")
        self.provisioned.pop(number, None)  # deleted with it

    def alias(self, name: str, arn: str) -> Alias:
        found = self.aliases.get(name)
        if found is None:
            raise ResourceNotFoundException(f"Alias not found: {arn}:{name}")
        return found

    def create_alias(self, alias: Alias, arn: str) -> Alias:
        """Add ``alias`` to the function of ARN ``arn``, as Lambda checks it."""
        if alias.name in self.aliases:
            raise ResourceConflictException(f"Alias already exists: {arn}:{alias.name}")
        self.aliases[alias.name] = self.check_alias(alias, arn)
        return alias

    def update_alias(self, name: str, arn: str, revision_id: str | None,
                     **changes: object) -> Alias:
        """Change the alias's ``changes`` (``Alias`` fields), if its RevisionId is still
        ``revision_id`` (None: whatever it is)."""
        current = self.alias(name, arn)
        check_revision(revision_id, current.revision_id)
        alias = self.check_alias(msgspec.structs.replace(
            current, revision_id=str(uuid.uuid4()), **changes), arn)
        if name in self.provisioned and alias.function_version == LATEST:
            raise InvalidParameterValueException(
                f"Alias {name} has provisioned concurrency, which $LATEST cannot have: "
                "delete its provisioned concurrency configuration first")
        self.aliases[name] = alias
        return alias

    def delete_alias(self, name: str, arn: str) -> None:
        self.alias(name, arn)
        del self.aliases[name]
        self.provisioned.pop(name, None)  # its provisioned concurrency goes with it

    def set_provisioned(self, qualifier: str, count: int, arn: str) -> None:
        """Keep ``count`` environments of a version (or of an alias's version) initialised,
        refusing what Lambda refuses: ``$LATEST``, and two configurations that would
        provision one version."""
        version = self._provisioned_version(qualifier, arn)
        for other in self.provisioned:
            if other != qualifier and self._provisioned_version(other, arn) == version:
                raise ResourceConflictException(
                    f"Version {version} already has provisioned concurrency through {other}: "
                    "delete that configuration first")
        self.provisioned[qualifier] = count

    def provisioned_versions(self) -> dict[str, int]:
        """Provisioned concurrency by version number (an alias's on its main version)."""
        return {self._provisioned_version(qualifier, ""): count
                for qualifier, count in self.provisioned.items()}

    def _provisioned_version(self, qualifier: str, arn: str) -> str:
        version = qualifier if qualifier.isdigit() or qualifier == LATEST else self.alias(
            qualifier, arn).function_version
        if version == LATEST:
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions.")
        self.version(version, arn)
        return version

    def check_alias(self, alias: Alias, arn: str) -> Alias:
        """Refuse an alias Lambda would refuse: a bad name or description, a version that
        does not exist, weights that are not one other published version's share."""
        check_alias_name(alias.name)
        if len(alias.description) > MAX_DESCRIPTION:
            raise ValidationException(
                "1 validation error detected: Value at 'description' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_DESCRIPTION}")
        self._check_target(alias.function_version, "functionVersion", arn)
        if not alias.weights:
            return alias
        if len(alias.weights) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1")
        if alias.function_version == LATEST:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version")
        for version, weight in alias.weights.items():
            self._check_target(version, "routingConfig.additionalVersionWeights", arn)
            if version == LATEST:
                raise InvalidParameterValueException(
                    "$LATEST is not supported for an alias pointing to more than 1 version")
            if version == alias.function_version:
                raise InvalidParameterValueException(
                    f"Invalid function version {version}. Function version {version} is "
                    "already included in routing configuration.")
            if not 0.0 <= weight <= 1.0:
                raise ValidationException(
                    "1 validation error detected: Value at 'routingConfig."
                    "additionalVersionWeights' failed to satisfy constraint: Map value must "
                    "satisfy constraint: [Member must have value less than or equal to 1.0, "
                    "Member must have value greater than or equal to 0.0]")
        return alias

    def _check_target(self, version: str, member: str, arn: str) -> None:
        if not _VERSION.match(version):
            raise ValidationException(
                f"1 validation error detected: Value '{version}' at '{member}' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                r"(\$LATEST|[0-9]+)")
        if version != LATEST and version not in self.versions:
            raise ResourceNotFoundException(f"Function not found: {arn}:{version}")


def check_revision(given: str | None, current: str) -> None:
    """Lambda's optimistic locking: a change that names a RevisionId applies only to
    that revision."""
    if given is not None and given != current:
        raise PreconditionFailedException(
            "The Revision Id provided does not match the latest Revision Id. Call the "
            "GetFunction/GetAlias API to retrieve the latest Revision Id")


def check_alias_name(name: str) -> None:
    if not _ALIAS.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(?!^[0-9]+$)([a-zA-Z0-9-_]+) (1 to 128 characters, not only digits)")
