"""A local, strict emulator of the BlackBox service, for tests and demos (extra ``emulator``).

``Emulator`` and ``serve`` need aiohttp and are imported on first use, so the scripted-agent
classes and the pytest plugin load without it. The faults (``Drop``, ``Stall``, ...) are
:mod:`.faults`' :data:`~.faults.EXPORTED` names, reached here too.
"""

from typing import TYPE_CHECKING, Any

from blackbox_sync.testing import faults
from blackbox_sync.testing.agents.file import AgentFileError
from blackbox_sync.testing.agents.scripted import (
    Agent,
    AgentContext,
    CallTool,
    CallTools,
    End,
    Pause,
    Rule,
    Say,
    ScriptedAgent,
    SendRaw,
)
from blackbox_sync.testing.options import EmulatorOptions
from blackbox_sync.testing.records import (
    ConversationRecord,
    FrameRecord,
    TokenGrant,
    ToolCallRecord,
)
from blackbox_sync.testing.voice.calls import EmulatorVoice, VoiceCallRecord

if TYPE_CHECKING:
    from blackbox_sync.testing.emulator import Emulator, serve

__all__ = [
    "Agent",
    "AgentContext",
    "AgentFileError",
    "CallTool",
    "CallTools",
    "ConversationRecord",
    "Emulator",
    "EmulatorOptions",
    "EmulatorVoice",
    "End",
    "FrameRecord",
    "Pause",
    "Rule",
    "Say",
    "ScriptedAgent",
    "SendRaw",
    "TokenGrant",
    "ToolCallRecord",
    "VoiceCallRecord",
    "faults",
    "serve",
    *faults.EXPORTED,  # the fault catalogue, listed once in faults.FAULTS
]


def __getattr__(name: str) -> Any:
    if name in faults.EXPORTED:
        return getattr(faults, name)
    if name in ("Emulator", "serve"):
        from blackbox_sync.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
