"""The emulator's REST handlers: ``(request, state, json_body)`` → the JSON answer, or None (204).

Validation follows the documented constraints where the live service is known to enforce them and
is lenient where live scripts show it is (a web integration created with only
``{name, agentId, tools}`` worked live, so the other fields get defaults here).
"""

import re
import secrets
import time
from http import HTTPStatus
from typing import Any, Dict, List, Optional

from aiohttp import web

from blackbox_sync.protocol.codec import parse_timestamp
from blackbox_sync.testing.agents.file import AgentFileError, agent_from_dict
from blackbox_sync.testing.agents.scripted import ScriptedAgent
from blackbox_sync.testing.records import TokenGrant
from blackbox_sync.testing.rest import chat, results
from blackbox_sync.testing.rest.state import ORG_ID, RestStore, now

Json = Any
EMULATOR_SCRIPT_KEY = "emulatorAgent"
_NAME = re.compile(r"^[a-zA-Z0-9\-_ ]{1,100}$")
_AGENT_FIELDS = ("name", "config", "isEnabled", "description", "additionalData", "schedule")
_INTEGRATION_FIELDS = (
    "agentId",
    "name",
    "enabled",
    "features",
    "widgetAppearance",
    "description",
    "origins",
    "tools",
)


class Problem(Exception):
    """Answer with a ProblemDetails of ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _object(data: Json) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise Problem(400, "The request body must be a JSON object")
    return data


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low} and {high}")
    return value


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise Problem(400, f"The {name} query parameter is required")
    return value


# --- agents --------------------------------------------------------------------------------------


async def list_agents(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /agents`` (skip/take)."""
    skip = _int_param(request, "skip", 0, 0, 1_000_000)
    take = _int_param(request, "take", 100, 1, 1000)
    with state.lock:
        return list(state.agents.values())[skip : skip + take]


def _agent(state: RestStore, agent_id: str) -> Dict[str, Any]:
    agent = state.agents.get(agent_id)
    if agent is None:
        raise Problem(404, f"Agent {agent_id} not found")
    return agent


def _check_agent_body(body: Dict[str, Any]) -> Optional[ScriptedAgent]:
    """Validate a create/PUT body; returns the agent script in ``config.emulatorAgent``, if any.

    ``emulatorAgent`` (emulator only: the live service knows no such key) is an agent file as a
    dict, so clients that are not Python can script the agent they create over REST.
    """
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise Problem(400, "name is required")
    if not isinstance(body.get("config"), dict):
        raise Problem(400, "config is required and must be an object")
    script = body["config"].get(EMULATOR_SCRIPT_KEY)
    if script is None:
        return None
    try:
        return agent_from_dict(script)
    except AgentFileError as exc:
        raise Problem(400, f"config.{EMULATOR_SCRIPT_KEY}: {exc}") from None


def _use_script(state: RestStore, agent_id: str, script: Optional[ScriptedAgent]) -> None:
    if script is not None:
        state.service.set_agent(agent_id, script)


async def create_agent(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /agents``."""
    body = _object(data)
    script = _check_agent_body(body)
    stamp = now()
    with state.lock:
        agent = {
            "agentId": state.new_id("agent"),
            "orgId": ORG_ID,
            "name": body["name"],
            "config": body["config"],
            "isEnabled": body.get("isEnabled", True),
            "description": body.get("description"),
            "additionalData": body.get("additionalData") or {},
            "schedule": body.get("schedule"),
            "version": 1,
            "createdTime": stamp,
            "lastUpdateTime": stamp,
        }
        state.agents[agent["agentId"]] = agent
    _use_script(state, agent["agentId"], script)
    return agent


async def get_agent(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /agents/{agentId}``."""
    with state.lock:
        return _agent(state, request.match_info["agentId"])


async def put_agent(request: web.Request, state: RestStore, data: Json) -> Json:
    """``PUT /agents/{agentId}``: the whole object replaces the stored one; ``version`` + 1."""
    body = _object(data)
    script = _check_agent_body(body)
    with state.lock:
        agent = _agent(state, request.match_info["agentId"])
        agent.update({k: body[k] for k in _AGENT_FIELDS if k in body})
        agent["version"] = int(agent.get("version") or 0) + 1
        agent["lastUpdateTime"] = now()
    _use_script(state, agent["agentId"], script)
    return agent


async def delete_agent(request: web.Request, state: RestStore, _: Json) -> Json:
    """``DELETE /agents/{agentId}`` (its call history stays)."""
    with state.lock:
        _agent(state, request.match_info["agentId"])
        del state.agents[request.match_info["agentId"]]
    return None


async def agent_template(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /misc/agent-initial-data``: the defaults of the documented create-agent sample."""
    return {
        "name": "",
        "isEnabled": True,
        "description": None,
        "additionalData": {},
        "config": {
            "version": "v1",
            "primaryLanguage": "en-US",
            "llmConfig": {
                "version": "v1",
                "vendor": "openai",
                "model": "gpt-4.1-mini",
                "prompt": "",
            },
            "ttsConfig": {"version": "v1", "vendor": "ElevenLabs", "voiceId": "", "speed": 1},
            "sttConfig": {"version": "v1", "vendor": "Auto"},
            "features": {
                "version": "v1",
                "talkFirst": {
                    "version": "v1",
                    "isEnabled": False,
                    "delay": 1,
                    "interruptible": True,
                },
                "maxDuration": {"version": "v1", "isEnabled": True, "maxDurationSeconds": 3600},
                "fillers": {
                    "version": "v1",
                    "isEnabled": True,
                    "strategy": {"type": "static", "texts": ["um"]},
                },
            },
            "tools": [],
            "mcpConnections": [],
        },
    }


async def concurrency(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /misc/concurrency``: running calls and WebSocket conversations against the limit."""
    live = [c for c in state.service.conversations() if c.ended_at is None]
    with state.lock:
        calls = [c for c in state.calls.values() if c["status"] == results.RUNNING]
        return {"active": len(live) + len(calls), "concurrency": state.concurrency_limit}


# --- web integrations and tokens -----------------------------------------------------------------


def _integration(state: RestStore, integration_id: str) -> Dict[str, Any]:
    found = state.integrations.get(integration_id)
    if found is None:
        raise Problem(404, f"Web integration {integration_id} not found")
    return found


def _with_tokens(state: RestStore, integration: Dict[str, Any]) -> Dict[str, Any]:
    # The token value is shown once, when minted; listings carry everything else.
    tokens = [
        {k: v for k, v in t.items() if k not in ("token", "integrationId")}
        for t in state.tokens.values()
        if t["integrationId"] == integration["integrationId"]
    ]
    return {**integration, "tokens": tokens}


def _check_integration(state: RestStore, body: Dict[str, Any]) -> None:
    if not isinstance(body.get("name"), str) or not _NAME.match(body["name"]):
        raise Problem(400, "name must be 1-100 characters of letters, digits, '-', '_' and spaces")
    if not chat.agent_known(state, body.get("agentId")):
        raise Problem(404, f"Agent {body.get('agentId')!r} not found")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        raise Problem(400, "description must be at most 500 characters")
    for key in ("origins", "tools"):
        value = body.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise Problem(400, f"{key} must be an array of strings or null")


def _grant(state: RestStore, token: Dict[str, Any]) -> None:
    """Let the WebSocket side accept ``token`` with its integration's current settings."""
    integration = state.integrations[token["integrationId"]]
    grant = TokenGrant(
        token["token"],
        agent_id=integration["agentId"],
        enabled=bool(integration.get("enabled", True)),
        origins=integration.get("origins") or None,
        integration_id=integration["integrationId"],
        expires_at=parse_timestamp(token.get("expiresAt")),
    )
    state.service.add_token(grant)


async def list_integrations(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /web-integrations``."""
    with state.lock:
        return [_with_tokens(state, i) for i in state.integrations.values()]


async def get_integration(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /web-integrations/integration?integrationId=``."""
    with state.lock:
        return _with_tokens(state, _integration(state, _required(request, "integrationId")))


async def create_integration(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /web-integrations``."""
    body = _object(data)
    _check_integration(state, body)
    stamp = now()
    with state.lock:
        integration = {
            "integrationId": state.new_id("wi"),
            "orgId": ORG_ID,
            "agentId": body["agentId"],
            "name": body["name"],
            "enabled": body.get("enabled", True),
            "features": body.get("features") or [],
            "widgetAppearance": body.get("widgetAppearance") or {},
            "description": body.get("description"),
            "origins": body.get("origins"),
            "tools": body.get("tools"),
            "createdTime": stamp,
            "lastUpdateTime": stamp,
        }
        state.integrations[integration["integrationId"]] = integration
        return _with_tokens(state, integration)


async def put_integration(request: web.Request, state: RestStore, data: Json) -> Json:
    """``PUT /web-integrations?integrationId=``: new settings apply to its tokens at once."""
    body = _object(data)
    with state.lock:
        integration = _integration(state, _required(request, "integrationId"))
        merged = {**integration, **{k: body[k] for k in _INTEGRATION_FIELDS if k in body}}
        _check_integration(state, merged)
        integration.update(merged, lastUpdateTime=now())
        for token in state.tokens.values():
            if token["integrationId"] == integration["integrationId"]:
                _grant(state, token)
        return _with_tokens(state, integration)


async def create_token(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /web-integrations/{id}/tokens``: unique name (409), value shown once."""
    body = _object(data)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Problem(400, "name is required")
    expires = body.get("expiresAt")
    if expires is not None and parse_timestamp(expires) is None:
        raise Problem(400, "expiresAt must be an ISO 8601 date-time or null")
    with state.lock:
        integration = _integration(state, request.match_info["integrationId"])
        if any(
            t["name"] == name and t["integrationId"] == integration["integrationId"]
            for t in state.tokens.values()
        ):
            raise Problem(409, f"A token named {name!r} already exists")
        token = {
            "tokenId": state.new_id("tok"),
            "integrationId": integration["integrationId"],
            "name": name,
            "token": secrets.token_urlsafe(24),
            "createdAt": now(),
            "expiresAt": expires,
            "lastUsedAt": None,
        }
        state.tokens[token["tokenId"]] = token
        _grant(state, token)
        return {k: token[k] for k in ("tokenId", "token", "name", "createdAt", "expiresAt")}


async def revoke_token(request: web.Request, state: RestStore, _: Json) -> Json:
    """``DELETE /web-integrations/{id}/tokens/{tokenId}``."""
    with state.lock:
        token = state.tokens.get(request.match_info["tokenId"])
        if token is None or token["integrationId"] != request.match_info["integrationId"]:
            raise Problem(404, "Token not found")
        del state.tokens[token["tokenId"]]
        state.service.remove_token(token["token"])
    return None


async def discover(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /web-integrations/discover?token=`` (public: no API key)."""
    value = _required(request, "token")
    with state.lock:
        token = next((t for t in state.tokens.values() if t["token"] == value), None)
        expires = parse_timestamp(token.get("expiresAt")) if token else None
        if token is None or (expires is not None and expires.timestamp() <= time.time()):
            raise Problem(404, "Unknown token")
        i = state.integrations[token["integrationId"]]
        keys = ("integrationId", "agentId", "name", "enabled", "features", "widgetAppearance")
        return {k: i.get(k) for k in keys}


# --- calls and results ---------------------------------------------------------------------------


def _call_request(state: RestStore, item: Json, where: str) -> Dict[str, Any]:
    if not isinstance(item, dict):
        raise Problem(400, f"{where}: a call must be a JSON object")
    endpoint = item.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise Problem(400, f"{where}: endpoint is required")
    if item.get("callDeadline") is not None and parse_timestamp(item["callDeadline"]) is None:
        raise Problem(400, f"{where}: callDeadline must be an ISO 8601 date-time")
    return item


def _call_agent(request: web.Request, state: RestStore) -> str:
    agent_id = _required(request, "agentId")
    if not chat.agent_known(state, agent_id):
        raise Problem(404, f"Agent {agent_id} not found")
    return agent_id


async def create_call(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /calls?agentId=``."""
    agent_id = _call_agent(request, state)
    body = _call_request(state, data, "body")
    with state.lock:
        return results.new_call(state, agent_id, body)


async def create_calls(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /calls/bulk?agentId=`` with a JSON array."""
    agent_id = _call_agent(request, state)
    if not isinstance(data, list):
        raise Problem(400, "The body must be a JSON array of calls")
    items = [_call_request(state, item, f"[{n}]") for n, item in enumerate(data)]
    with state.lock:
        return [results.new_call(state, agent_id, item) for item in items]


def _call(state: RestStore, call_id: str) -> Dict[str, Any]:
    call = state.calls.get(call_id)
    if call is None:
        raise Problem(404, f"Call {call_id} not found")
    return call


async def get_call(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /calls/{callId}``."""
    with state.lock:
        return _call(state, request.match_info["callId"])


async def cancel_call(request: web.Request, state: RestStore, _: Json) -> Json:
    """``DELETE /calls/{callId}``: only a call that has not started."""
    with state.lock:
        call = _call(state, request.match_info["callId"])
        if call["status"] not in results.CANCELABLE:
            raise Problem(409, f"Call {call['callId']} is {call['status']} and cannot be canceled")
        results.cancel_call(state, call["callId"])
    return None


def _filter_calls(
    request: web.Request, state: RestStore, statuses: List[str]
) -> List[Dict[str, Any]]:
    agent_id = request.query.get("agentId")
    start = parse_timestamp(request.query.get("fromDate"))
    end = parse_timestamp(request.query.get("toDate"))
    out = []
    for call in state.calls.values():
        created = parse_timestamp(call["createdTime"])
        if agent_id and call["agentId"] != agent_id:
            continue
        if statuses and call["status"] not in statuses:
            continue
        if created is not None and ((start and created < start) or (end and created > end)):
            continue
        out.append(call)
    return out


async def call_queue(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /calls/queue/list``: calls not finished yet, unless ``status`` says otherwise."""
    skip = _int_param(request, "skip", 0, 0, 1_000_000)
    take = _int_param(request, "take", 20, 1, 1000)
    statuses = request.query.getall("status", []) or [
        s
        for s in results.KNOWN_STATUSES
        if s not in (results.COMPLETED, results.FAILED, results.CANCELED)
    ]
    with state.lock:
        calls = _filter_calls(request, state, statuses)
        return {"calls": calls[skip : skip + take], "total": len(calls)}


async def call_statistics(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /calls/statistics/statuses``."""
    with state.lock:
        counts = dict.fromkeys(results.KNOWN_STATUSES, 0)
        for call in _filter_calls(request, state, []):
            counts[call["status"]] = counts.get(call["status"], 0) + 1
        return {"statuses": counts}


async def search_results(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /callresults/search``."""
    try:
        return results.search(state, _object(data if data is not None else {}))
    except ValueError as exc:
        raise Problem(400, str(exc)) from None


# --- webhooks test, MCP, chats -------------------------------------------------------------------


async def test_webhook(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /webhooks/test``: POST a sample payload once and report what came back."""
    body = _object(data)
    hook = body.get("webHook") or {}
    url = hook.get("url") if isinstance(hook, dict) else None
    if not isinstance(url, str) or not url:
        raise Problem(400, "webHook.url is required")
    kind = body.get("webhookType") or "CompletedWebHookPayload"
    payload: Dict[str, Any] = {
        "type": kind,
        "status": "Running" if kind == "ToolWebHookPayload" else "Completed",
        "callId": "test-call",
        "agentId": "test-agent",
        "orgId": ORG_ID,
        "callAdditionalData": body.get("callAdditionalData") or {},
        "agentAdditionalData": body.get("agentAdditionalData") or {},
    }
    if kind == "ToolWebHookPayload":
        payload.update(toolName=body.get("toolName"), arguments=body.get("toolArguments") or {})
    started = time.monotonic()
    status, answer = await results.post_once(state, url, payload, hook.get("headers") or {})
    ok = isinstance(status, int) and 200 <= status < 300
    return {
        "success": ok,
        "httpStatus": status if isinstance(status, int) else None,
        "httpStatusText": _phrase(status),
        "responseData": answer,
        "validationResult": {"isValid": ok, "errors": [] if ok else [f"status {status}"]},
        "error": None if ok else f"the endpoint answered {status}",
        "timeTaken": round((time.monotonic() - started) * 1000, 3),
    }


def _phrase(status: Any) -> Optional[str]:
    try:
        return HTTPStatus(status).phrase if isinstance(status, int) else str(status)
    except ValueError:
        return None


async def verify_mcp(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /mcp/verify``: servers listed in ``state.mcp_servers`` are reachable."""
    body = _object(data)
    if not body.get("name") or not body.get("serverUrl"):
        raise Problem(400, "name and serverUrl are required")
    tools = state.mcp_servers.get(body["serverUrl"])
    white, black = body.get("whiteListTools") or [], body.get("blackListTools") or []
    listed = [
        {"isEnabled": True, **t}
        for t in tools or []
        if (not white or t.get("name") in white) and t.get("name") not in black
    ]
    return {
        "success": tools is not None,
        "availableTools": listed,
        "testedAt": now(),
        "responseTimeMs": 1,
        "message": "Connected" if tools is not None else "Could not connect to the MCP server",
    }


async def text_chat_completion(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /text-chat/completion``."""
    return await chat.complete(state, _object(data))


async def open_chat(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /chats``."""
    return await chat.open_chat(state, _object(data))


async def get_chat(request: web.Request, state: RestStore, _: Json) -> Json:
    """``GET /chats/{chatId}``."""
    return chat.get_chat(state, request.match_info["chatId"])


async def chat_message(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /chats/{chatId}/messages``."""
    return await chat.chat_message(state, request.match_info["chatId"], _object(data))


async def end_chat(request: web.Request, state: RestStore, data: Json) -> Json:
    """``POST /chats/{chatId}/end``."""
    return chat.end_chat(
        state, request.match_info["chatId"], data if isinstance(data, dict) else {}
    )
