"""Function URLs' configurations: one per function, kept in the state directory
(``function-urls.json``) so that a URL stays the same across restarts.

A URL is ``http://<url-id>.lambda-url.<region>.localhost:<port>/``: the Lambda API's own
port, told apart by the ``Host`` header (a client that cannot resolve ``*.localhost``
connects to 127.0.0.1 and sends that header).
"""

from __future__ import annotations

import os
import secrets
import threading
import time

import msgspec

from ..errors import ResourceConflictException, ResourceNotFoundException
from ..jsonfile import load_json, save_json
from .routes import Cors

AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")


class UrlConfig(msgspec.Struct):
    function: str
    url_id: str  # 32 characters of [0-9a-f], as long as Lambda's url ids
    auth_type: str
    invoke_mode: str
    created: str
    modified: str
    cors: Cors | None = None


class FunctionUrls:
    """The configurations, by function name and by url id.  Any thread."""

    def __init__(self, state_dir: str, region: str) -> None:
        self.region = region
        self.port = 0  # the Lambda API's, once it listens
        self._path = os.path.join(state_dir, "function-urls.json")
        self._lock = threading.Lock()
        self._suffix = f".lambda-url.{region}.localhost"
        saved = load_json(self._path, list[UrlConfig], [])
        self._by_name = {config.function: config for config in saved}
        self._by_id = {config.url_id: config for config in saved}

    def url(self, config: UrlConfig) -> str:
        return f"http://{config.url_id}{self._suffix}:{self.port}/"

    def by_host(self, host: str) -> UrlConfig | None:
        """The configuration a request's ``Host`` header names, if it names one."""
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not name.endswith(self._suffix):
            return None
        return self._by_id.get(name[:-len(self._suffix)])

    def create(self, function: str, auth_type: str, invoke_mode: str,
               cors: Cors | None, arn: str) -> UrlConfig:
        with self._lock:
            if function in self._by_name:
                raise ResourceConflictException(
                    f"Failed to create function url config for [functionArn = {arn}]. Error "
                    "message:  FunctionUrlConfig exists for this Lambda function")
            now = _now()
            config = UrlConfig(function, secrets.token_hex(16), auth_type, invoke_mode, now, now,
                               cors)
            self._keep(config)
        return config

    def put(self, function: str, auth_type: str, invoke_mode: str, cors: Cors | None) -> None:
        """Create or replace ``function``'s configuration, keeping its url (a template's)."""
        with self._lock:
            old = self._by_name.get(function)
            now = _now()
            self._keep(UrlConfig(function, old.url_id if old else secrets.token_hex(16),
                                 auth_type, invoke_mode, old.created if old else now, now, cors))

    def get(self, function: str) -> UrlConfig:
        config = self._by_name.get(function)
        if config is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return config

    def update(self, function: str, auth_type: str | None, invoke_mode: str | None,
               cors: Cors | None, cors_given: bool) -> UrlConfig:
        with self._lock:
            config = self.get(function)
            config = msgspec.structs.replace(
                config, auth_type=auth_type or config.auth_type,
                invoke_mode=invoke_mode or config.invoke_mode,
                cors=cors if cors_given else config.cors, modified=_now())
            self._keep(config)
        return config

    def delete(self, function: str, missing_ok: bool = False) -> None:
        with self._lock:
            config = self._by_name.pop(function, None)
            if config is None:
                if missing_ok:
                    return
                raise ResourceNotFoundException("The resource you requested does not exist.")
            self._by_id.pop(config.url_id, None)
            self._save()

    def _keep(self, config: UrlConfig) -> None:
        old = self._by_name.get(config.function)
        if old is not None:
            self._by_id.pop(old.url_id, None)
        self._by_name[config.function] = config
        self._by_id[config.url_id] = config
        self._save()

    def _save(self) -> None:
        save_json(self._path, list(self._by_name.values()))


def _now() -> str:
    """Lambda's timestamp form: ``2021-10-31T12:00:00.000000Z``."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
