"""Old module paths from before the layered layout (0.2), kept importing for a while.

``import blackbox_sync.messages`` still works and gives the module now at
``blackbox_sync.protocol.messages``, with a :class:`DeprecationWarning` naming the new path. This
is the one place that knows the old names; docs/changelog.md has the migration table.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Optional, Sequence

MOVED = {
    "blackbox_sync.messages": "blackbox_sync.protocol.messages",
    "blackbox_sync.convert": "blackbox_sync.protocol.codec",
    "blackbox_sync.state": "blackbox_sync.protocol.state",
    "blackbox_sync.reply": "blackbox_sync.protocol.reply",
    "blackbox_sync.connection": "blackbox_sync.transport.connection",
    "blackbox_sync.callbacks": "blackbox_sync.conversation.callbacks",
    "blackbox_sync.tools": "blackbox_sync.conversation.tools",
    "blackbox_sync.reconnect": "blackbox_sync.conversation.reconnect",
    "blackbox_sync.webhooks": "blackbox_sync.rest.webhooks",
    "blackbox_sync.chat_repl": "blackbox_sync.cli.chat",
    "blackbox_sync.qa.cli": "blackbox_sync.cli.qa",
    "blackbox_sync.testing.agent": "blackbox_sync.testing.agents.scripted",
    "blackbox_sync.testing.agent_file": "blackbox_sync.testing.agents.file",
    "blackbox_sync.testing.ws_session": "blackbox_sync.testing.ws.session",
    "blackbox_sync.testing.wire": "blackbox_sync.testing.ws.wire",
    "blackbox_sync.testing.rest_api": "blackbox_sync.testing.rest.api",
    "blackbox_sync.testing.rest_handlers": "blackbox_sync.testing.rest.handlers",
    "blackbox_sync.testing.rest_state": "blackbox_sync.testing.rest.state",
    "blackbox_sync.testing.rest_chat": "blackbox_sync.testing.rest.chat",
    "blackbox_sync.testing.rest_results": "blackbox_sync.testing.rest.results",
    "blackbox_sync.testing.fault_engine": "blackbox_sync.testing.faults.engine",
    "blackbox_sync.testing.voice_session": "blackbox_sync.testing.voice.session",
}
"""Old module name → where it lives now."""


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and loads it as the module that replaced it."""

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old name will go in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the new one, already executed."""


def install() -> None:
    """Let the old names import (idempotent)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
