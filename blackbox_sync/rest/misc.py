"""Odds and ends (PROTOCOL.md §8.5, §8.7): concurrency, webhook test, MCP connection check."""

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

import attrs

from blackbox_sync.rest._base import Resource, drop_none
from blackbox_sync.rest.model import Model


@attrs.define
class Concurrency(Model):
    """Live calls of the whole organisation against its limit."""

    active: Optional[int] = None
    concurrency: Optional[int] = None


@attrs.define
class WebhookTestResult(Model):
    """What the service saw when it called your webhook (``POST /webhooks/test``)."""

    success: Optional[bool] = None
    http_status: Optional[int] = None
    http_status_text: Optional[str] = None
    response_data: Any = None
    validation_result: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    time_taken: Any = None


@attrs.define
class McpVerification(Model):
    """The outcome of ``POST /mcp/verify``: could the service reach the MCP server, which tools."""

    success: Optional[bool] = None
    available_tools: Optional[List[Dict[str, Any]]] = None
    tested_at: Optional[datetime] = None
    response_time_ms: Optional[float] = None
    message: Optional[str] = None


class Misc(Resource):
    """``client.misc``."""

    def concurrency(self) -> Concurrency:
        """Active calls and the concurrency limit of the organisation."""
        return self._one(Concurrency, "GET", "/misc/concurrency")

    def test_webhook(
        self,
        url: str,
        *,
        webhook_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        custom_settings: Optional[Mapping[str, Any]] = None,
        tool_name: Optional[str] = None,
        tool_arguments: Optional[Mapping[str, Any]] = None,
        agent_additional_data: Optional[Mapping[str, Any]] = None,
        call_additional_data: Optional[Mapping[str, Any]] = None,
    ) -> WebhookTestResult:
        """Ask the service to send a sample webhook (``webhook_type``, e.g. ``ToolWebHookPayload``)
        to ``url`` and report what your endpoint answered."""
        body = drop_none(
            webHook=drop_none(
                url=url,
                headers=None if headers is None else dict(headers),
                customSettings=None if custom_settings is None else dict(custom_settings),
            ),
            webhookType=webhook_type,
            toolName=tool_name,
            toolArguments=None if tool_arguments is None else dict(tool_arguments),
            agentAdditionalData=None
            if agent_additional_data is None
            else dict(agent_additional_data),
            callAdditionalData=None if call_additional_data is None else dict(call_additional_data),
        )
        return self._one(WebhookTestResult, "POST", "/webhooks/test", body=body)

    def verify_mcp(
        self,
        name: str,
        server_url: str,
        *,
        transport: Optional[str] = None,
        api_key: Optional[str] = None,
        header_name: Optional[str] = None,
        custom_headers: Optional[Mapping[str, str]] = None,
        description: Optional[str] = None,
        white_list_tools: Optional[Sequence[str]] = None,
        black_list_tools: Optional[Sequence[str]] = None,
    ) -> McpVerification:
        """Check that the service can reach an MCP server (``transport``: ``SSE`` or
        ``StreamableHTTP``) and list its tools. A read-only check, so it is retried."""
        auth = drop_none(apiKey=api_key, headerName=header_name)
        body = drop_none(
            name=name,
            serverUrl=server_url,
            transport=transport,
            authentication=auth or None,
            customHeaders=None if custom_headers is None else dict(custom_headers),
            description=description,
            whiteListTools=None if white_list_tools is None else list(white_list_tools),
            blackListTools=None if black_list_tools is None else list(black_list_tools),
        )
        return self._one(McpVerification, "POST", "/mcp/verify", body=body, retry=True)
