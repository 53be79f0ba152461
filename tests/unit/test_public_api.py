"""The public surface, pinned: what ``from blackbox_sync import *`` (and ``blackbox_sync.testing``)
exports, that every exported name resolves, and that each is in the reference docs.

A change here is a change of the public API: it needs a CHANGELOG line (and a migration note
when a name goes away).
"""

import re
import types
from typing import Dict, List

from testkit import ROOT

import blackbox_sync as bb
from blackbox_sync import testing
from blackbox_sync.testing import faults

EXPORTED = [
    "ApiConnectionError",
    "ApiError",
    "AskTimeout",
    "AuthenticationError",
    "BlackBoxError",
    "CallbackError",
    "Client",
    "ConflictError",
    "ConnectionClosedError",
    "Conversation",
    "ConversationResult",
    "ErrorMessage",
    "Event",
    "HandshakeRefused",
    "Limits",
    "Message",
    "NotFoundError",
    "OperationTimeout",
    "Phase",
    "ProtocolError",
    "RateLimitError",
    "ReconnectPolicy",
    "Reconnected",
    "RedirectRefused",
    "Reply",
    "RetryPolicy",
    "SdpInvite",
    "ServerError",
    "TextMessage",
    "Timeouts",
    "ToolCall",
    "ToolCallResult",
    "ToolError",
    "ToolRequest",
    "Transcript",
    "TurnEnd",
    "TurnRule",
    "UnknownMessage",
    "UsageError",
    "__version__",
]

# Frames the client builds and sends: reachable as bb.Initialize ..., not exported.
CLIENT_FRAMES = [
    "IncomingChatMessage",
    "InitRequest",
    "Initialize",
    "SdpAnswer",
    "Terminate",
    "ToolResponse",
]


def _reference() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs/reference").glob("*.md"))


def _undocumented(module: str, names: List[str], reference: str) -> List[str]:
    """Names that no reference page shows, as ``module.name`` or under a submodule of it."""
    return [
        name
        for name in names
        if not name.startswith("__")  # __version__ is Python's convention, not an API page
        and not re.search(rf"\b{re.escape(module)}(\.\w+)*\.{re.escape(name)}\b", reference)
    ]


def test_bb_exports_exactly_the_pinned_names_in_order() -> None:
    assert bb.__all__ == EXPORTED
    assert sorted(EXPORTED) == EXPORTED


def test_every_exported_name_resolves_and_is_in_the_reference() -> None:
    for name in bb.__all__:
        assert getattr(bb, name) is not None, name
    assert _undocumented("blackbox_sync", bb.__all__, _reference()) == []


def test_star_import_binds_the_exported_names_only() -> None:
    namespace: Dict[str, object] = {}
    exec("from blackbox_sync import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == EXPORTED


def test_client_frames_and_webhooks_stay_reachable_without_being_exported() -> None:
    for name in CLIENT_FRAMES:
        assert name not in bb.__all__
        assert getattr(bb, name).__module__ == "blackbox_sync.protocol.messages"
    assert "webhooks" not in bb.__all__
    assert isinstance(bb.webhooks, types.ModuleType)
    assert bb.webhooks.__name__ == "blackbox_sync.rest.webhooks"


def test_testing_exports_every_fault_through_the_one_list() -> None:
    fault_names = [fault.__name__ for fault in faults.FAULTS]
    assert set(fault_names) <= set(faults.EXPORTED)
    assert len(testing.__all__) == len(set(testing.__all__))
    assert set(faults.EXPORTED) <= set(testing.__all__)
    for name in faults.EXPORTED:
        assert getattr(testing, name) is getattr(faults, name), name
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
