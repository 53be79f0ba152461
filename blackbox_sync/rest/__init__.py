"""The BlackBox REST API (PROTOCOL.md §8): ``Client`` and its models, one module per API area."""

from ._base import PagingError
from ._deadline import DeadlineAdapter
from .agents import Agent, AgentConfig, AgentTool, LlmConfig, WebhookSettings
from .call_results import CallResult, CallResultsPage
from .calls import Call, CallQueue, CallRequest, CallStatistics, CallStatus
from .chats import (
    ChatMessage,
    ChatSession,
    ChatToolCall,
    ChatTurn,
    TextChatCompletion,
    TextChatSession,
    new_idempotency_key,
)
from .client import Client
from .http import (
    ApiConnectionError,
    ApiRedirectError,
    ApiResponseError,
    ApiTimeoutError,
    InvalidUrlError,
    ResponseTooLargeError,
    RetryPolicy,
)
from .misc import Concurrency, McpVerification, WebhookTestResult
from .web_integrations import (
    Features,
    IntegrationDiscovery,
    IntegrationFeature,
    IntegrationToken,
    WebIntegration,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentTool",
    "ApiConnectionError",
    "ApiRedirectError",
    "ApiResponseError",
    "ApiTimeoutError",
    "Call",
    "CallQueue",
    "CallRequest",
    "CallResult",
    "CallResultsPage",
    "CallStatistics",
    "CallStatus",
    "ChatMessage",
    "ChatSession",
    "ChatToolCall",
    "ChatTurn",
    "Client",
    "Concurrency",
    "DeadlineAdapter",
    "Features",
    "IntegrationDiscovery",
    "IntegrationFeature",
    "IntegrationToken",
    "InvalidUrlError",
    "LlmConfig",
    "McpVerification",
    "PagingError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "TextChatCompletion",
    "TextChatSession",
    "WebIntegration",
    "WebhookSettings",
    "WebhookTestResult",
    "new_idempotency_key",
]
