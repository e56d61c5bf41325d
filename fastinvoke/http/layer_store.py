"""Layers published through the Lambda API (PublishLayerVersion): each version's zip is
unpacked once into ``<state>/layers/<name>/<version>/``, which every function that uses it
shares (merged with its other layers at ``/opt``); what Lambda reports of each version is
kept in ``<state>/layers.json``.  A function names its layers by ARN: a version published
here, or an ARN ``serve --layer ARN=DIR`` maps to a local directory."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterable

import msgspec

from ..errors import InvalidParameterValueException, ResourceNotFoundException, ValidationException
from ..jsonfile import load_json, save_json
from ..versions import now_stamp
from .code import digest, unpack

_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,140}$")
_LAYER_ARN = re.compile(
    r"^arn:[a-zA-Z0-9-]+:lambda:(?P<region>[a-zA-Z0-9-]+):(?P<account>\d{12}):layer:"
    r"(?P<name>[a-zA-Z0-9-_]+)(?::(?P<version>[0-9]+))?$")
_MISSING = "The resource you requested does not exist."


class LayerVersion(msgspec.Struct, kw_only=True):
    name: str
    version: int
    code_sha256: str
    code_size: int
    created: str = msgspec.field(default_factory=now_stamp)
    description: str = ""
    compatible_runtimes: list[str] = []
    compatible_architectures: list[str] = []
    license_info: str | None = None


class _Saved(msgspec.Struct):
    last: dict[str, int] = {}  # the highest number each layer has had: never used twice
    versions: list[LayerVersion] = []


class LayerStore:
    """The layers of one server's state directory (thread-safe)."""

    def __init__(self, state_dir: str, region: str, account_id: str,
                 mapped: dict[str, str] | None = None) -> None:
        self.root = os.path.join(state_dir, "layers")
        self._path = os.path.join(state_dir, "layers.json")
        self._prefix = f"arn:aws:lambda:{region}:{account_id}:layer:"
        self._mapped = dict(mapped or {})  # ARN -> local directory (serve --layer)
        self._lock = threading.Lock()
        saved = load_json(self._path, _Saved, _Saved())
        self._last = saved.last
        self._versions = {(v.name, v.version): v for v in saved.versions}

    def arn(self, name: str, version: int | None = None) -> str:
        return self._prefix + name + ("" if version is None else f":{version}")

    def directory_of(self, layer: LayerVersion) -> str:
        return os.path.join(self.root, layer.name, str(layer.version))

    # -- the operations ---------------------------------------------------------------------

    def publish(self, name: str, package: bytes, description: str, runtimes: list[str],
                architectures: list[str], license_info: str | None) -> LayerVersion:
        name = self.name(name)
        with self._lock:
            number = self._last.get(name, 0) + 1
            layer = LayerVersion(name=name, version=number, code_sha256=digest(package),
                                 code_size=len(package), description=description,
                                 compatible_runtimes=runtimes,
                                 compatible_architectures=architectures,
                                 license_info=license_info)
            directory = self.directory_of(layer)
            shutil.rmtree(directory, ignore_errors=True)  # published, then not saved
            unpack(package, directory)
            self._last[name] = number
            self._versions[(name, number)] = layer
            self._save()
        return layer

    def get(self, name: str, version: str | int) -> LayerVersion:
        layer = self._versions.get((self.name(name), _number(version)))
        if layer is None:
            raise ResourceNotFoundException(_MISSING)
        return layer

    def by_arn(self, arn: str) -> LayerVersion:
        match = _LAYER_ARN.match(arn)
        if match is None or match["version"] is None:
            raise ValidationException(
                f"1 validation error detected: Value '{arn}' at 'arn' failed to satisfy "
                "constraint: Member must be a layer version ARN (arn:aws:lambda:REGION:"
                "ACCOUNT:layer:NAME:VERSION)")
        if not arn.startswith(self._prefix):
            raise ResourceNotFoundException(_MISSING)
        return self.get(match["name"], match["version"])

    def versions(self, name: str) -> list[LayerVersion]:
        """The layer's versions, newest first (ListLayerVersions' order)."""
        name = self.name(name)
        return sorted((v for (n, _), v in self._versions.items() if n == name),
                      key=lambda layer: -layer.version)

    def latest(self, runtime: str | None, architecture: str | None) -> list[LayerVersion]:
        """Each layer's newest version compatible with ``runtime`` and ``architecture``
        (None: any), by name (ListLayers')."""
        newest: dict[str, LayerVersion] = {}
        for layer in sorted(self._versions.values(), key=lambda layer: layer.version):
            if runtime in (None, *layer.compatible_runtimes) and \
                    architecture in (None, *layer.compatible_architectures):
                newest[layer.name] = layer
        return [newest[name] for name in sorted(newest)]

    def delete(self, name: str, version: str | int, in_use: Iterable[str]) -> None:
        """Delete a version (none is no error, as Lambda answers); its files stay while a
        function of ``in_use`` (their layers' directories) still runs with them."""
        with self._lock:
            layer = self._versions.pop((self.name(name), _number(version)), None)
            if layer is None:
                return
            self._save()
            directory = self.directory_of(layer)
            if directory not in set(in_use):
                shutil.rmtree(directory, ignore_errors=True)

    # -- functions' Layers --------------------------------------------------------------------

    def directories(self, arns: list[str]) -> list[str]:
        """The local directories of a function's ``Layers``, or Lambda's error naming the
        first that is neither published here nor mapped with ``serve --layer``."""
        directories = []
        for arn in arns:
            if arn in self._mapped:
                directories.append(self._mapped[arn])
                continue
            try:
                directories.append(self.directory_of(self.by_arn(arn)))
            except (ResourceNotFoundException, ValidationException):
                raise InvalidParameterValueException(
                    f"Layer version {arn} does not exist. Publish it to this server with "
                    "PublishLayerVersion, or start serve with --layer ARN=DIR, DIR holding "
                    "the layer's content") from None
        return directories

    def describe(self, directories: list[str]) -> list[dict[str, object]]:
        """A function's ``Layers`` as GetFunction answers them: the ARN each directory is
        known by here (a template's own layers, which have none, are left out)."""
        described: list[dict[str, object]] = []
        for directory in directories:
            arn = next((arn for arn, mapped in self._mapped.items() if mapped == directory),
                       None)
            if arn is not None:
                described.append({"Arn": arn})
                continue
            name, _, number = os.path.relpath(directory, self.root).partition(os.sep)
            layer = self._versions.get((name, int(number))) if number.isdigit() else None
            if layer is not None:
                described.append({"Arn": self.arn(name, layer.version),
                                  "CodeSize": layer.code_size})
        return described

    def name(self, text: str) -> str:
        """A layer's name from its name or unversioned ARN, checked as Lambda checks it."""
        match = _LAYER_ARN.match(text)
        if match is not None and match["version"] is None and text.startswith(self._prefix):
            return match["name"]
        if not _NAME.match(text):
            raise ValidationException(
                f"1 validation error detected: Value '{text}' at 'layerName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|"
                "[a-zA-Z0-9-_]+")
        return text

    def _save(self) -> None:
        save_json(self._path, _Saved(self._last, sorted(
            self._versions.values(), key=lambda layer: (layer.name, layer.version))))


def _number(version: str | int) -> int:
    if isinstance(version, int):
        return version
    if not version.isdigit():
        raise ValidationException(
            f"1 validation error detected: Value '{version}' at 'versionNumber' failed to "
            "satisfy constraint: Member must be a whole number")
    return int(version)
