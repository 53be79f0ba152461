"""Text chat over REST (PROTOCOL.md §8.6): chat sessions and stateless completions.

These endpoints use snake_case field names on the wire, unlike the rest of the API. Unlike the
WebSocket, every answer says whether the conversation is over (``is_final``), so a turn ends
with the HTTP response: no quiet-period guessing.
"""

import uuid
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import attrs

from blackbox_sync.protocol.codec import LooseStr, utcnow
from blackbox_sync.rest._base import Resource, drop_none, path
from blackbox_sync.rest.model import Model, snake_case


@snake_case
@attrs.define
class ChatToolCall(Model):
    """A tool the agent called during a turn, with its response."""

    id: Optional[LooseStr] = None
    name: Optional[str] = None
    arguments: Any = None
    response: Any = None


@snake_case
@attrs.define
class ChatMessage(Model):
    """One message of a chat: ``role`` is ``user``, ``assistant``, ``tool``, ..."""

    role: LooseStr = LooseStr("")
    content: Optional[str] = None
    tool_calls: Optional[List[ChatToolCall]] = None
    time: Optional[datetime] = None


@snake_case
@attrs.define
class ChatSession(Model):
    """A stateful chat session (``POST /chats``)."""

    id: LooseStr = LooseStr("")
    agent_id: Optional[LooseStr] = None
    channel: Optional[str] = None
    messages: List[ChatMessage] = attrs.field(factory=list)
    is_final: bool = False
    status: Optional[LooseStr] = None
    final_reason: Optional[LooseStr] = None
    """``user_end``, ``agent_finish``, ``ttl``, or a newer reason as text."""
    ttl_seconds: Optional[int] = None
    created_time: Optional[datetime] = None
    last_activity: Optional[datetime] = None


@snake_case
@attrs.define
class ChatTurn(Model):
    """The answer to one user message: the new messages (tool turns first, final text last)."""

    messages: List[ChatMessage] = attrs.field(factory=list)
    is_final: bool = False
    status: Optional[LooseStr] = None

    @property
    def text(self) -> str:
        """The assistant's texts of this turn, joined by spaces."""
        return _assistant_text(self.messages)


@snake_case
@attrs.define
class TextChatCompletion(Model):
    """The answer of ``POST /text-chat/completion``: new messages and the state to send back."""

    messages: List[ChatMessage] = attrs.field(factory=list)
    state: Any = None
    """Opaque; send it back with the next turn."""
    is_final: bool = False
    chat_id: Optional[LooseStr] = None
    call_id: Optional[LooseStr] = None

    @property
    def text(self) -> str:
        """The assistant's texts of this turn, joined by spaces."""
        return _assistant_text(self.messages)


def _assistant_text(messages: Sequence[ChatMessage]) -> str:
    return " ".join(m.content for m in messages if m.role == "assistant" and m.content)


MessageLike = Union[ChatMessage, Mapping[str, Any]]


def _message_body(message: MessageLike) -> Dict[str, Any]:
    return message.to_wire() if isinstance(message, ChatMessage) else dict(message)


class Chats(Resource):
    """``client.chats``: server-side chat sessions."""

    def open(
        self,
        agent_id: str,
        *,
        channel: str = "web",
        external_id: Optional[Mapping[str, Any]] = None,
        ttl_seconds: Optional[int] = None,
        additional_data: Optional[Mapping[str, Any]] = None,
        retry: bool = False,
    ) -> ChatSession:
        """Open a session with ``agent_id``; it expires after ``ttl_seconds`` (60–86400) idle."""
        body = {
            "agent_id": agent_id,
            "channel": channel,
            **drop_none(
                external_id=None if external_id is None else dict(external_id),
                ttl_seconds=ttl_seconds,
                additional_data=None if additional_data is None else dict(additional_data),
            ),
        }
        return self._one(ChatSession, "POST", "/chats", body=body, retry=retry)

    def send(
        self,
        chat_id: str,
        content: str,
        *,
        idempotency_key: Optional[str] = None,
        additional_data: Optional[Mapping[str, Any]] = None,
    ) -> ChatTurn:
        """Send one user message and return the agent's answer to it.

        Retried on transient failures only when you pass an ``idempotency_key`` (≤ 128
        characters): the service then drops a repeated delivery instead of answering twice.
        """
        body = {
            "content": content,
            **drop_none(
                idempotency_key=idempotency_key,
                additional_data=None if additional_data is None else dict(additional_data),
            ),
        }
        url = path("/chats/{}/messages", chat_id)
        return self._one(ChatTurn, "POST", url, body=body, retry=idempotency_key is not None)

    def get(self, chat_id: str) -> ChatSession:
        """A session with its whole transcript."""
        return self._one(ChatSession, "GET", path("/chats/{}", chat_id))

    def end(self, chat_id: str, *, note: Optional[str] = None) -> ChatSession:
        """End a session (reason ``user_end``). Ending twice is harmless, so it is retried."""
        url = path("/chats/{}/end", chat_id)
        return self._one(ChatSession, "POST", url, body=drop_none(note=note), retry=True)


class TextChat(Resource):
    """``client.text_chat``: stateless completions where the caller carries the transcript."""

    def complete(
        self,
        agent: Union[str, Mapping[str, Any]],
        messages: Sequence[MessageLike] = (),
        *,
        state: Any = None,
        additional_data: Optional[Mapping[str, Any]] = None,
        finish: bool = False,
    ) -> TextChatCompletion:
        """Run one turn: send the whole transcript (and last ``state``), get the new messages.

        ``agent`` is an agent id or an inline agent object. ``finish=True`` ends the
        conversation (post-call analysis and the result webhook run).
        """
        body = {
            "agent": {"id": agent} if isinstance(agent, str) else dict(agent),
            "messages": [_message_body(m) for m in messages],
            "state": state,
            "additional_data": dict(additional_data or {}),
            "finish": finish,
        }
        return self._one(TextChatCompletion, "POST", "/text-chat/completion", body=body)

    def session(
        self,
        agent: Union[str, Mapping[str, Any]],
        *,
        additional_data: Optional[Mapping[str, Any]] = None,
    ) -> "TextChatSession":
        """A small helper that carries ``messages`` and ``state`` between turns for you."""
        return TextChatSession(self, agent, additional_data)


class TextChatSession:
    """Keeps the transcript and state of a stateless text chat: ``say()`` one turn at a time."""

    def __init__(
        self,
        text_chat: TextChat,
        agent: Union[str, Mapping[str, Any]],
        additional_data: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._text_chat = text_chat
        self.agent = agent
        self.additional_data = dict(additional_data or {})
        self.messages: List[ChatMessage] = []
        self.state: Any = None
        self.is_final = False
        self.chat_id: Optional[str] = None

    def __repr__(self) -> str:
        return f"<TextChatSession messages={len(self.messages)} is_final={self.is_final}>"

    def say(self, text: str) -> TextChatCompletion:
        """Send ``text`` as the user and return the agent's turn."""
        self.messages.append(ChatMessage(role=LooseStr("user"), content=text, time=utcnow()))
        return self._turn(finish=False)

    def finish(self) -> TextChatCompletion:
        """End the conversation (runs post-call analysis and the result webhook)."""
        return self._turn(finish=True)

    def _turn(self, *, finish: bool) -> TextChatCompletion:
        answer = self._text_chat.complete(
            self.agent,
            self.messages,
            state=self.state,
            additional_data=self.additional_data,
            finish=finish,
        )
        self.messages.extend(answer.messages)
        self.state = answer.state
        self.is_final = answer.is_final or finish
        self.chat_id = answer.chat_id or self.chat_id
        return answer


def new_idempotency_key() -> str:
    """A fresh key for :meth:`Chats.send` (keep it to resend the same message safely)."""
    return uuid.uuid4().hex
