"""The BlackBox REST API (PROTOCOL.md §8): ``Client`` and its models, one module per API area."""

from blackbox_sync.rest._base import PagingError
from blackbox_sync.rest._deadline import DeadlineAdapter
from blackbox_sync.rest.agents import Agent, AgentConfig, AgentTool, LlmConfig, WebhookSettings
from blackbox_sync.rest.call_results import CallResult, CallResultsPage
from blackbox_sync.rest.calls import Call, CallQueue, CallRequest, CallStatistics, CallStatus
from blackbox_sync.rest.chats import (
    ChatMessage,
    ChatSession,
    ChatToolCall,
    ChatTurn,
    TextChatCompletion,
    TextChatSession,
    new_idempotency_key,
)
from blackbox_sync.rest.client import Client
from blackbox_sync.rest.http import (
    ApiConnectionError,
    ApiRedirectError,
    ApiResponseError,
    ApiTimeoutError,
    InvalidUrlError,
    ResponseTooLargeError,
    RetryPolicy,
)
from blackbox_sync.rest.misc import Concurrency, McpVerification, WebhookTestResult
from blackbox_sync.rest.web_integrations import (
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
