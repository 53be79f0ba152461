"""The emulator's REST routes (PROTOCOL.md §8), on the same aiohttp app and port as its WebSocket.

:func:`rest_state` makes the emulator's :class:`~.control.RestState` (``emulator.rest``: the
handle tests use to seed objects, inject faults (``emulator.rest.fail(503)``,
``fail(429, retry_after=0.05)``), read the request journal and wait for webhooks) on top of its
:class:`~blackbox_sync.testing.service.ServiceState`; :func:`add_routes`, called when the
emulator builds its app, registers every endpoint under ``/api/v1``.

Every route answers like the live service: Bearer API-key auth (401 otherwise), RFC 7807
ProblemDetails bodies on errors, and an ``X-Request-Id`` header.
"""

import asyncio
import itertools
import json
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from aiohttp import web

from blackbox_sync.testing.rest import handlers as h
from blackbox_sync.testing.rest.chat import ChatError
from blackbox_sync.testing.rest.control import RestState
from blackbox_sync.testing.rest.results import record_conversation
from blackbox_sync.testing.rest.state import RestStore
from blackbox_sync.testing.service import ServiceState

API = "/api/v1"

Handler = Callable[[web.Request, RestStore, Any], Awaitable[Any]]

# (method, path under /api/v1, handler, needs the API key)
ROUTES = (
    ("GET", "/agents", h.list_agents, True),
    ("POST", "/agents", h.create_agent, True),
    ("GET", "/agents/{agentId}", h.get_agent, True),
    ("PUT", "/agents/{agentId}", h.put_agent, True),
    ("DELETE", "/agents/{agentId}", h.delete_agent, True),
    ("GET", "/misc/agent-initial-data", h.agent_template, True),
    ("GET", "/misc/concurrency", h.concurrency, True),
    ("POST", "/calls", h.create_call, True),
    ("POST", "/calls/bulk", h.create_calls, True),
    ("GET", "/calls/queue/list", h.call_queue, True),
    ("GET", "/calls/statistics/statuses", h.call_statistics, True),
    ("GET", "/calls/{callId}", h.get_call, True),
    ("DELETE", "/calls/{callId}", h.cancel_call, True),
    ("POST", "/callresults/search", h.search_results, True),
    ("GET", "/web-integrations", h.list_integrations, True),
    ("POST", "/web-integrations", h.create_integration, True),
    ("PUT", "/web-integrations", h.put_integration, True),
    ("GET", "/web-integrations/integration", h.get_integration, True),
    ("GET", "/web-integrations/discover", h.discover, False),
    ("POST", "/web-integrations/{integrationId}/tokens", h.create_token, True),
    ("DELETE", "/web-integrations/{integrationId}/tokens/{tokenId}", h.revoke_token, True),
    ("POST", "/webhooks/test", h.test_webhook, True),
    ("POST", "/mcp/verify", h.verify_mcp, True),
    ("POST", "/text-chat/completion", h.text_chat_completion, True),
    ("POST", "/chats", h.open_chat, True),
    ("GET", "/chats/{chatId}", h.get_chat, True),
    ("POST", "/chats/{chatId}/messages", h.chat_message, True),
    ("POST", "/chats/{chatId}/end", h.end_chat, True),
)


def rest_state(service: ServiceState) -> RestState:
    """The REST fake's state over ``service``: finished WebSocket conversations become call
    results (and result webhooks)."""
    state = RestState(service)
    service.on_conversation_end.append(lambda record: record_conversation(state, record))
    return state


def add_routes(app: web.Application, state: RestStore) -> None:
    """Register the REST endpoints, answered from ``state``, on the emulator's app."""
    request_ids = itertools.count(1)
    for method, path, handler, auth in ROUTES:
        app.router.add_route(method, API + path, _wrap(state, handler, auth, request_ids))

    async def stop(_: web.Application) -> None:
        state.shutdown()

    app.on_cleanup.append(stop)


def problem(
    status: int,
    detail: str = "",
    *,
    title: Optional[str] = None,
    instance: Optional[str] = None,
    headers: Optional[Dict[str, str]] = None,
) -> web.Response:
    """An RFC 7807 ProblemDetails answer."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title or phrase,
        "status": status,
        "detail": detail or None,
        "instance": instance,
    }
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


def _wrap(
    state: RestStore, handler: Handler, auth: bool, request_ids: "itertools.count[int]"
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        sub = request.path[len(API) :]
        response, data = await _answer(state, handler, auth, request, sub)
        response.headers["X-Request-Id"] = f"emu-{next(request_ids)}"
        query = f"?{request.query_string}" if request.query_string else ""
        state.journal(request.method, sub + query, response.status, data)
        return response

    return route


async def _answer(
    state: RestStore, handler: Handler, auth: bool, request: web.Request, sub: str
) -> Tuple[web.Response, Any]:
    """The response, and the request's JSON body for the journal."""
    data: Any = None
    fault = state.take_fault(request.method, sub)
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None and not fault.processed:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return problem(
                fault.status,
                fault.detail or "injected by the emulator",
                title=fault.title,
                instance=request.path,
                headers=headers,
            ), None
    if auth:
        refused = _auth_problem(state, request)
        if refused is not None:
            return refused, None
    try:
        text = await request.text()
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return problem(400, "The request body is not valid JSON", instance=request.path), None
    try:
        result = await handler(request, state, data)
    except (ChatError, h.Problem) as exc:
        return problem(exc.status, exc.detail, instance=request.path), data
    if fault is not None and fault.status is not None:  # handled, but the answer is "lost"
        return problem(
            fault.status,
            fault.detail or "injected by the emulator after handling the request",
            title=fault.title,
            instance=request.path,
        ), data
    if result is None:
        return web.Response(status=204), data
    return web.json_response(result), data


def _auth_problem(state: RestStore, request: web.Request) -> Optional[web.Response]:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return problem(401, "Missing API key (Authorization: Bearer <key>)", instance=request.path)
    if not state.service.api_key_valid(key.strip()):
        return problem(401, "Invalid API key", instance=request.path)
    return None
