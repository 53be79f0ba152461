"""blackbox_sync: a synchronous Python client for Dasha BlackBox conversational AI agents.

>>> import blackbox_sync as bb
>>> with bb.Conversation(token="...") as conv:          # doctest: +SKIP
...     print(conv.ask("Where is my order?").text)
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from blackbox_sync import _moved, display
from blackbox_sync._version import __version__
from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.conversation.options import Limits, Timeouts
from blackbox_sync.conversation.reconnect import ReconnectPolicy
from blackbox_sync.errors import (
    ApiError,
    AskTimeout,
    AuthenticationError,
    BlackBoxError,
    CallbackError,
    ConflictError,
    ConnectionClosedError,
    HandshakeRefused,
    NotFoundError,
    OperationTimeout,
    ProtocolError,
    RateLimitError,
    RedirectRefused,
    ServerError,
    ToolError,
    UsageError,
)
from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    Message,
    Reconnected,
    SdpInvite,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
    UnknownMessage,
)

# The client's own frames stay attributes (docs/reference/messages.md shows them as
# ``blackbox_sync.Initialize`` ...) but are not exported: the client builds them, users never do.
from blackbox_sync.protocol.messages import IncomingChatMessage as IncomingChatMessage
from blackbox_sync.protocol.messages import Initialize as Initialize
from blackbox_sync.protocol.messages import InitRequest as InitRequest
from blackbox_sync.protocol.messages import SdpAnswer as SdpAnswer
from blackbox_sync.protocol.messages import Terminate as Terminate
from blackbox_sync.protocol.messages import ToolResponse as ToolResponse
from blackbox_sync.protocol.reply import Reply, Transcript, TurnEnd
from blackbox_sync.protocol.state import Phase, TurnRule
from blackbox_sync.redact import RedactingHandler

if TYPE_CHECKING:
    from blackbox_sync.rest import ApiConnectionError, Client, RetryPolicy
    from blackbox_sync.rest import webhooks as webhooks
    from blackbox_sync.voice import VoiceCall as VoiceCall

_moved.install()

# In a notebook, messages, replies, transcripts and results show as HTML (a no-op elsewhere).
display.register()

# Silent unless the application configures logging, and every record redacted on its way up.
logging.getLogger("blackbox_sync").addHandler(RedactingHandler())

# The REST half pulls in requests and voice pulls in aiortc: both load on first use, so
# chat-only programs start faster and optional extras stay optional.
_LAZY = {
    "Client": "blackbox_sync.rest",
    "RetryPolicy": "blackbox_sync.rest",
    "ApiConnectionError": "blackbox_sync.rest",
    "webhooks": "blackbox_sync.rest.webhooks",
    "VoiceCall": "blackbox_sync.voice",
}


# ``webhooks`` is a module, reached as ``bb.webhooks`` (lazily: it needs requests); it is not in
# __all__, so ``from blackbox_sync import *`` binds classes and functions, not a namespace.
def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'blackbox_sync' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "webhooks" else getattr(loaded, name)
    globals()[name] = value
    return value


# bb.VoiceCall (extra `voice`) and bb.webhooks load on use and stay out of `import *`, which
# must work whatever extras are installed.
__all__ = [
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
