"""blackbox_sync: a synchronous Python client for Dasha BlackBox conversational AI agents.

>>> import blackbox_sync as bb
>>> with bb.Conversation(token="...") as conv:          # doctest: +SKIP
...     print(conv.ask("Where is my order?").text)
"""

import logging

from ._version import __version__
from .conversation import Conversation
from .errors import (
    ApiError,
    AskTimeout,
    AuthenticationError,
    BlackBoxError,
    CallbackError,
    ConflictError,
    ConnectionClosedError,
    NotFoundError,
    OperationTimeout,
    ProtocolError,
    RateLimitError,
    ServerError,
    ToolError,
    UsageError,
)
from .messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    IncomingChatMessage,
    Initialize,
    InitRequest,
    Message,
    SdpAnswer,
    SdpInvite,
    Terminate,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
    ToolResponse,
    UnknownMessage,
)
from .reply import Reply, TurnEnd
from .state import Phase, TurnRule

logging.getLogger("blackbox_sync").addHandler(logging.NullHandler())

__all__ = [
    "ApiError",
    "AskTimeout",
    "AuthenticationError",
    "BlackBoxError",
    "CallbackError",
    "ConflictError",
    "ConnectionClosedError",
    "Conversation",
    "ConversationResult",
    "ErrorMessage",
    "Event",
    "IncomingChatMessage",
    "InitRequest",
    "Initialize",
    "Message",
    "NotFoundError",
    "OperationTimeout",
    "Phase",
    "ProtocolError",
    "RateLimitError",
    "Reply",
    "SdpAnswer",
    "SdpInvite",
    "ServerError",
    "Terminate",
    "TextMessage",
    "ToolCall",
    "ToolCallResult",
    "ToolError",
    "ToolRequest",
    "ToolResponse",
    "TurnEnd",
    "TurnRule",
    "UnknownMessage",
    "UsageError",
    "__version__",
]
