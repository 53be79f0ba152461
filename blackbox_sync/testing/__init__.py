"""A local, strict emulator of the BlackBox service, for tests and demos (extra ``emulator``).

``Emulator`` and ``serve`` need aiohttp and are imported on first use, so the scripted-agent
classes and the pytest plugin load without it.
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
from blackbox_sync.testing.faults import (
    HANDSHAKE,
    OPEN,
    Close,
    Delay,
    Drop,
    DropAfter,
    Duplicate,
    ErrorFrame,
    FailedOpen,
    FaultFiring,
    Inject,
    Malform,
    On,
    Oversize,
    RawBytes,
    Refuse,
    Reorder,
    Replace,
    Stall,
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
    "HANDSHAKE",
    "OPEN",
    "Agent",
    "AgentContext",
    "AgentFileError",
    "CallTool",
    "CallTools",
    "Close",
    "ConversationRecord",
    "Delay",
    "Drop",
    "DropAfter",
    "Duplicate",
    "Emulator",
    "EmulatorOptions",
    "EmulatorVoice",
    "End",
    "ErrorFrame",
    "FailedOpen",
    "FaultFiring",
    "FrameRecord",
    "Inject",
    "Malform",
    "On",
    "Oversize",
    "Pause",
    "RawBytes",
    "Refuse",
    "Reorder",
    "Replace",
    "Rule",
    "Say",
    "ScriptedAgent",
    "SendRaw",
    "Stall",
    "TokenGrant",
    "ToolCallRecord",
    "VoiceCallRecord",
    "faults",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in ("Emulator", "serve"):
        from blackbox_sync.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
