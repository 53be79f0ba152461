"""REST chats in the emulator (PROTOCOL.md §8.6): the scripted agents answer over HTTP too.

The agent that answers a WebSocket conversation (``emulator.agents[agent_id]``, else the default
agent) answers the same way here, turn by turn. A :class:`~.agent.CallTool` step calls the agent's
webhook tool (``config.tools[].webhook.url``) with a ``ToolWebHookPayload`` and feeds the answer
back, as the live service runs webhook tools; an :class:`~.agent.End` step makes the chat final.
"""

import asyncio
import json
import uuid
from typing import Any, Dict, List, Optional, Tuple

import attrs

from blackbox_sync.protocol.codec import parse_timestamp, utcnow
from blackbox_sync.testing.agents.scripted import (
    Agent,
    AgentContext,
    CallTool,
    CallTools,
    End,
    Pause,
    Say,
    Turn,
)
from blackbox_sync.testing.rest.results import COMPLETED, deliver, finish
from blackbox_sync.testing.rest.state import ORG_ID, RestStore, now

ACTIVE = "active"
ENDED = "ended"
TTL_RANGE = (60, 86400)
DEFAULT_TTL = 3600


@attrs.define
class ChatConversation:
    """One REST chat: its wire ``session`` (snake_case), the agent's context, answered keys."""

    session: Dict[str, Any]
    context: AgentContext
    call_id: str
    keys: Dict[str, Dict[str, Any]] = attrs.field(factory=dict)
    greeted: bool = False


class ChatError(Exception):
    """A request the chat endpoints refuse: ``status`` and the ProblemDetails ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def scripted_agent(state: RestStore, agent_id: Optional[str]) -> Agent:
    """The scripted agent behind ``agent_id``: its own, else the emulator's default agent."""
    return state.service.agent_for(agent_id)


def agent_known(state: RestStore, agent_id: Any) -> bool:
    """True for an agent created over REST or scripted on the emulator."""
    return isinstance(agent_id, str) and (
        agent_id in state.agents or state.service.has_agent(agent_id)
    )


async def run_turn(
    state: RestStore, turn: Turn, context: AgentContext, *, call_id: str
) -> Tuple[List[Dict[str, Any]], bool]:
    """Drive one agent turn; returns the new messages and whether the agent ended the chat."""
    messages: List[Dict[str, Any]] = []
    answer: Any = None
    while True:
        try:
            step = turn.send(answer)
        except StopIteration:
            return messages, False
        answer = None
        if isinstance(step, Say) and not step.partial:
            messages.append({"role": "assistant", "content": step.text, "time": now()})
            context.transcript.append(("assistant", step.text))
        elif isinstance(step, (CallTool, CallTools)):
            calls = step.calls if isinstance(step, CallTools) else (step,)
            answers = await asyncio.gather(*(_tool(state, c, context, call_id) for c in calls))
            made = [
                {"id": c.id, "name": c.name, "arguments": c.args, "response": a}
                for c, a in zip(calls, answers)
            ]
            messages.append(
                {"role": "assistant", "content": None, "tool_calls": made, "time": now()}
            )
            answer = list(answers) if isinstance(step, CallTools) else answers[0]
        elif isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, End):
            return messages, True


async def _tool(state: RestStore, step: CallTool, context: AgentContext, call_id: str) -> Any:
    with state.lock:
        agent = state.agents.get(context.agent_id or "") or {}
        tools = (agent.get("config") or {}).get("tools") or []
        tool = next((t for t in tools if isinstance(t, dict) and t.get("name") == step.name), None)
        hook = (tool or {}).get("webhook") or {}
    if not hook.get("url"):
        return {"error": f"tool {step.name!r} has no webhook; REST chats cannot run client tools"}
    payload = {
        "type": "ToolWebHookPayload",
        "status": "Running",
        "callId": call_id,
        "agentId": context.agent_id,
        "orgId": ORG_ID,
        "callAdditionalData": context.additional_data,
        "agentAdditionalData": agent.get("additionalData") or {},
        "toolName": step.name,
        "arguments": step.args,
    }
    headers = {str(k): str(v) for k, v in (hook.get("headers") or {}).items()}
    record = await deliver(state, hook["url"], payload, headers)
    if record.delivered:
        return record.response
    return {
        "error": f"tool webhook failed: {record.statuses[-1] if record.statuses else 'no answer'}"
    }


def _end(state: RestStore, conv: ChatConversation, reason: str) -> None:
    """Make a chat final (lock held) and record its call result once."""
    session = conv.session
    if session["is_final"]:
        return
    session.update(is_final=True, status=ENDED, final_reason=reason)
    finish(
        state,
        call_id=conv.call_id,
        agent_id=session["agent_id"],
        call_type="chat",
        status=COMPLETED,
        created=session["created_time"],
        endpoint=None,
        additional_data=session.get("additional_data"),
        transcript=conv.context.transcript,
        finish_reason=reason,
    )


def _expire(state: RestStore, conv: ChatConversation) -> None:
    session = conv.session
    last = parse_timestamp(session["last_activity"])
    idle = None if last is None else (utcnow() - last).total_seconds()
    if not session["is_final"] and idle is not None and idle > session["ttl_seconds"]:
        _end(state, conv, "ttl")


# --- stateful sessions ---------------------------------------------------------------------------


async def open_chat(state: RestStore, body: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /chats``."""
    agent_id = body.get("agent_id")
    if not agent_known(state, agent_id):
        raise ChatError(404, f"Agent {agent_id!r} not found")
    ttl = body.get("ttl_seconds", DEFAULT_TTL)
    if not isinstance(ttl, int) or not TTL_RANGE[0] <= ttl <= TTL_RANGE[1]:
        raise ChatError(
            400, f"ttl_seconds must be an integer from {TTL_RANGE[0]} to {TTL_RANGE[1]}"
        )
    chat_id = str(uuid.uuid4())
    data = dict(body.get("additional_data") or {})
    created = now()
    session: Dict[str, Any] = {
        "id": chat_id,
        "agent_id": agent_id,
        "channel": body.get("channel") or "web",
        "external_id": body.get("external_id"),
        "additional_data": data,
        "messages": [],
        "created_time": created,
        "last_activity": created,
        "ttl_seconds": ttl,
        "is_final": False,
        "status": ACTIVE,
        "final_reason": None,
    }
    context = AgentContext(
        record_id=chat_id, agent_id=agent_id, call_type="chat", additional_data=data
    )
    conv = ChatConversation(session, context, chat_id)
    with state.lock:
        state.chats[chat_id] = conv
    agent = scripted_agent(state, agent_id)
    if agent is not None:
        messages, ended = await run_turn(state, agent.greet(context), context, call_id=chat_id)
        with state.lock:
            session["messages"].extend(messages)
            if ended:
                _end(state, conv, "agent_finish")
    return _copy(session)


def get_chat(state: RestStore, chat_id: str) -> Dict[str, Any]:
    """``GET /chats/{id}``."""
    with state.lock:
        conv = _conv(state, chat_id)
        _expire(state, conv)
        return _copy(conv.session)


async def chat_message(state: RestStore, chat_id: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /chats/{id}/messages``: one user turn (a repeated ``idempotency_key`` is answered
    from memory, not run again)."""
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise ChatError(400, "content must be a non-empty string")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or len(key) > 128):
        raise ChatError(400, "idempotency_key must be a string of at most 128 characters")
    with state.lock:
        conv = _conv(state, chat_id)
        if key is not None and key in conv.keys:
            return dict(conv.keys[key])
        _expire(state, conv)
        session, context = conv.session, conv.context
        if session["is_final"]:
            raise ChatError(409, f"Chat {chat_id} has ended ({session['final_reason']})")
        user = {"role": "user", "content": content, "time": now()}
        session["messages"].append(user)
        context.turn += 1
        context.transcript.append(("user", content))
    agent = scripted_agent(state, session["agent_id"])
    messages: List[Dict[str, Any]] = []
    ended = False
    if agent is not None:
        messages, ended = await run_turn(
            state, agent.respond(content, context), context, call_id=chat_id
        )
    with state.lock:
        session["messages"].extend(messages)
        session["last_activity"] = now()
        if ended:
            _end(state, conv, "agent_finish")
        answer = {
            "messages": messages,
            "is_final": session["is_final"],
            "status": session["status"],
        }
        if key is not None:
            conv.keys[key] = answer
        return dict(answer)


def end_chat(state: RestStore, chat_id: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /chats/{id}/end``: idempotent."""
    with state.lock:
        conv = _conv(state, chat_id)
        if body.get("note") is not None:
            conv.session["note"] = body["note"]
        _end(state, conv, "user_end")
        return _copy(conv.session)


def _conv(state: RestStore, chat_id: str) -> ChatConversation:
    conv = state.chats.get(chat_id)
    if not isinstance(conv, ChatConversation):
        raise ChatError(404, f"Chat {chat_id} not found")
    return conv


def _copy(session: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = json.loads(json.dumps(session))
    return out


# --- stateless completion ------------------------------------------------------------------------


async def complete(state: RestStore, body: Dict[str, Any]) -> Dict[str, Any]:
    """``POST /text-chat/completion``: the caller sends the transcript; ``state`` is our key."""
    agent_ref = body.get("agent")
    agent_id = agent_ref.get("id") if isinstance(agent_ref, dict) else None
    if agent_id is not None and not agent_known(state, agent_id):
        raise ChatError(404, f"Agent {agent_id!r} not found")
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ChatError(400, "messages must be an array of objects")
    token = body.get("state")
    with state.lock:
        if token is None:
            chat_id = str(uuid.uuid4())
            token = f"state-{uuid.uuid4().hex}"
            data = dict(body.get("additional_data") or {})
            context = AgentContext(
                record_id=chat_id, agent_id=agent_id, call_type="chat", additional_data=data
            )
            session: Dict[str, Any] = {
                "agent_id": agent_id,
                "additional_data": data,
                "created_time": now(),
                "is_final": False,
            }
            conv = ChatConversation(session, context, chat_id)
            state.text_chats[token] = conv
        elif isinstance(state.text_chats.get(token), ChatConversation):
            conv = state.text_chats[token]
        else:
            raise ChatError(400, "state is not one this service issued")
        if conv.session["is_final"]:
            raise ChatError(409, "the conversation has ended")
    context = conv.context
    agent = scripted_agent(state, agent_id)
    last = messages[-1] if messages else None
    new: List[Dict[str, Any]] = []
    ended = False
    if agent is not None and last is not None and last.get("role") == "user":
        text = str(last.get("content") or "")
        context.turn += 1
        context.transcript.append(("user", text))
        new, ended = await run_turn(
            state, agent.respond(text, context), context, call_id=conv.call_id
        )
    elif agent is not None and not conv.greeted:
        new, ended = await run_turn(state, agent.greet(context), context, call_id=conv.call_id)
    conv.greeted = True
    with state.lock:
        if ended or body.get("finish"):
            _end(state, conv, "agent_finish" if ended else "user_end")
        return {
            "messages": new,
            "state": token,
            "is_final": conv.session["is_final"],
            "chat_id": conv.call_id,
            "call_id": conv.call_id,
        }
