"""Hot reload for ``fastinvoke serve --template`` (``--watch``, on by default with a
template): a change to a function's code (or its layers) runs Init again in a new
template, whose forks take the invocations from then on while those in flight finish on
the old code; a change to the template itself adds, changes and removes its functions.

Files are watched with ``watchfiles`` (inotify through Rust's ``notify``, debounced to
tens of milliseconds).  What each reload did, and an Init that a change broke (its
``Runtime.UserCodeSyntaxError``, ``Runtime.ImportModuleError``..., which the function's
invocations answer until the next good save), is said on the server's output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import watchfiles

from .config import FunctionConfig
from .errors import FastInvokeError
from .invoker import Invoker
from .sam import Template

_DEBOUNCE_MS = 30  # changes within this long are one change (an editor's save)
_STEP_MS = 10
_CHECK_MS = 500  # with no change for this long, the template is compared with what it was
_INIT_WAIT_S = 20.0  # longer than Init may take (10 s)
_POLL_S = 0.005


class Deployment(Protocol):
    """What the reloader changes: the server's functions (``http.functions.Functions``)."""

    def put_config(self, config: FunctionConfig) -> object: ...
    def delete(self, name: str) -> None: ...
    def reload(self, name: str) -> object: ...


class Reloader:
    """Watches the template and its functions' files for ``functions`` (a thread)."""

    def __init__(self, invoker: Invoker, functions: Deployment, template_path: Path,
                 load: Callable[[], Template], say: Callable[[str], None]) -> None:
        self._invoker = invoker
        self._functions = functions
        self._template_path = template_path.resolve()
        self._load = load
        self._say = say
        self._configs: dict[str, FunctionConfig] = {}
        self._applied = b""  # the template's text its functions come from
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastinvoke-reload",
                                        daemon=True)

    def start(self, template: Template) -> None:
        self._configs = {config.name: config for config in template.functions}
        self._applied = self._template_text()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            watched = self._watched()
            if self._template_text() != self._applied:  # changed while not watched
                self._apply_template()
                continue
            for changes in watchfiles.watch(*watched, stop_event=self._stop,
                                            debounce=_DEBOUNCE_MS, step=_STEP_MS,
                                            raise_interrupt=False, yield_on_timeout=True,
                                            rust_timeout=_CHECK_MS):
                if not changes:  # the watch is in place: what changed before it was?
                    if self._template_text() != self._applied:
                        self._apply_template()
                        if self._watched() != watched:
                            break
                    continue
                changed = {Path(path).resolve() for _, path in changes}
                if self._template_path in changed:
                    self._apply_template()
                    if self._watched() != watched:
                        break  # watch what the template names now
                self._reload_functions(changed)

    def _watched(self) -> set[Path]:
        return {self._template_path, *(Path(path).resolve() for config in
                                       self._configs.values()
                                       for path in (config.code, *config.layers))}

    def _template_text(self) -> bytes:
        try:
            return self._template_path.read_bytes()
        except OSError:
            return b""

    def _reload_functions(self, changed: set[Path]) -> None:
        for name, config in self._configs.items():
            roots = [Path(path).resolve() for path in (config.code, *config.layers)]
            if any(root == path or root in path.parents for path in changed for root in roots):
                inits = self._inits_ended(name)
                try:
                    self._functions.reload(name)
                except FastInvokeError as exc:
                    self._say(f"{name} was not reloaded: {exc}")
                    continue
                self._say_init(name, "reloaded", inits)

    def _apply_template(self) -> None:
        self._applied = self._template_text()
        try:
            template = self._load()
        except (FastInvokeError, OSError) as exc:
            self._say(f"{self._template_path} changed and cannot be used ({exc}); still "
                      "serving what it held before")
            return
        configs = {config.name: config for config in template.functions}
        for name in self._configs.keys() - configs.keys():
            self._functions.delete(name)
            self._say(f"{name} removed: it left the template")
        for name, config in configs.items():
            if self._configs.get(name) == config:
                continue
            inits = self._inits_ended(name)
            try:
                self._functions.put_config(config)
            except FastInvokeError as exc:
                self._say(f"{name} cannot be put from the template: {exc}")
                continue
            self._say_init(name, "added" if name not in self._configs else "changed", inits)
        self._configs = configs

    def _inits_ended(self, name: str) -> int:
        try:
            return self._invoker.init_state(name)[1]
        except FastInvokeError:  # (no such function yet)
            return 0

    def _say_init(self, name: str, what: str, inits_before: int) -> None:
        """Say how the function's new Init went, once it has ended.  Counting ended Inits
        (not reading the state) sees it even when an invocation has already retried a
        failed Init, and a change that ran no Init (tags alone) leaves the pool not
        booting."""
        deadline = time.monotonic() + _INIT_WAIT_S
        while True:
            state, inits, error = self._invoker.init_state(name)
            if inits > inits_before or state != "booting":
                break
            if time.monotonic() > deadline or self._stop.is_set():
                return
            time.sleep(_POLL_S)
        if error is not None and inits > inits_before:
            self._say(f"{name} {what}, and its Init failed: {error.get('errorType')}: "
                      f"{error.get('errorMessage')} (its invocations answer this error until "
                      "the next good save)")
        else:
            self._say(f"{name} {what}")
