"""The functions of a state directory, kept in ``functions.json`` so that a restart with
the same directory finds them (and runs the Event invocations still queued for them)."""

from __future__ import annotations

import logging
import os

import msgspec

from .config import FunctionConfig
from .events import EventInvokeConfig
from .jsonfile import save_json
from .versions import Lineage

_log = logging.getLogger(__name__)


class FunctionEntry(msgspec.Struct, kw_only=True):
    config: FunctionConfig
    event_invoke_config: EventInvokeConfig | None = None
    lineage: Lineage = msgspec.field(default_factory=Lineage)  # its versions and aliases
    # Event settings of its versions and aliases, by number or alias name.
    qualified_event_configs: dict[str, EventInvokeConfig] = {}


class Registry:
    """``functions.json`` in ``state_dir``; None: nothing is kept (a private state dir)."""

    def __init__(self, state_dir: str | None) -> None:
        self.path = None if state_dir is None else os.path.join(state_dir, "functions.json")

    def load(self) -> list[FunctionEntry]:
        if self.path is None or not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as file:
            try:
                return msgspec.json.decode(file.read(), type=list[FunctionEntry])
            except msgspec.DecodeError as exc:
                _log.warning("ignoring %s (%s): functions must be created again", self.path, exc)
                return []

    def save(self, entries: list[FunctionEntry]) -> None:
        if self.path is None:
            return
        save_json(self.path, entries)
