"""HTML for Jupyter: pure functions that render messages, replies, results and transcripts.

This is the presentation layer: the protocol classes know nothing of HTML. ``import
blackbox_sync`` calls :func:`register`, which hands these functions to the running IPython
shell's HTML formatter, so a notebook shows a message, a :class:`~blackbox_sync.Reply`, a
:class:`~blackbox_sync.Transcript` or a result as a table. Outside IPython it does nothing, and
nothing of IPython is imported. You can call the functions yourself::

    from IPython.display import HTML
    from blackbox_sync.display import transcript_html

    HTML(transcript_html(conversation.history))

Everything the service or the user wrote is escaped, so a message can never inject markup or
script into a notebook. The markup is plain (tables, ``<b>``, ``<details>``) with a few inline
styles: it stays readable where a notebook viewer strips styles, and in dark themes.
No I/O, no imports beyond the standard library and the message classes.
"""

import json
import sys
from datetime import datetime
from html import escape
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Type,
    cast,
)

from blackbox_sync.conversation.facade import Conversation
from blackbox_sync.protocol.messages import (
    ConversationResult,
    ErrorMessage,
    Event,
    IncomingChatMessage,
    Initialize,
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
from blackbox_sync.protocol.reply import Reply, Transcript
from blackbox_sync.settings import DEFAULT_FILLERS

__all__ = [
    "HtmlFormatter",
    "conversation_html",
    "message_html",
    "register",
    "reply_html",
    "result_html",
    "transcript_html",
]

MAX_JSON_CHARS = 2000
"""Longer JSON payloads are cut (with an ellipsis): one frame must not flood a notebook."""


# Muted colours with transparency read on light and dark notebook themes alike.
_MUTED = "opacity:0.65"
_SMALL = "font-size:smaller;opacity:0.75"
_BOX = "border-left:3px solid rgba(127,127,127,0.45);padding:2px 8px;margin:4px 0"
_ERROR = "color:#c0392b"
_TABLE = "border-collapse:collapse;text-align:left"
_CELL = "padding:2px 8px;vertical-align:top;text-align:left"


def _text(value: Any) -> str:
    """Escape any value for HTML text and attributes."""
    return escape("" if value is None else str(value), quote=True)


def _json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    """``value`` as escaped, indented JSON (cut at ``limit`` characters)."""
    try:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str, sort_keys=False)
    except (TypeError, ValueError):  # a cycle, or a key JSON cannot hold
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _text(text)


def _inline_json(value: Any, limit: int = 200) -> str:
    """``value`` as escaped one-line JSON, for arguments and small results."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _text(text)


def _code(value: Any) -> str:
    return f"<code>{_inline_json(value)}</code>"


def _pre(value: Any) -> str:
    return f'<pre style="margin:2px 0;white-space:pre-wrap">{_json(value)}</pre>'


def _details(summary: str, body: str) -> str:
    """A collapsed block; ``summary`` and ``body`` must already be HTML."""
    return f'<details><summary style="{_SMALL}">{summary}</summary>{body}</details>'


def _time(moment: Optional[datetime]) -> str:
    if moment is None:
        return ""
    return f' <span style="{_SMALL}">{_text(moment.strftime("%H:%M:%S"))}</span>'


def _speaker(source: str) -> str:
    return {"assistant": "agent", "user": "user"}.get(source, source or "?")


def _is_filler(message: TextMessage, fillers: Sequence[str]) -> bool:
    return message.from_assistant and message.text.strip().casefold() in fillers


def _normalise(fillers: Iterable[str]) -> Tuple[str, ...]:
    return tuple(f.strip().casefold() for f in fillers)


# --- one message ---------------------------------------------------------------------------------


def _text_body(message: TextMessage, fillers: Sequence[str]) -> str:
    tags = []
    if message.partial:
        tags.append("partial")
    if _is_filler(message, fillers):
        tags.append("filler")
    text = f"<span>{_text(message.text)}</span>"
    if tags:
        text = f'<span style="{_MUTED}"><i>{_text(message.text)}</i> ({", ".join(tags)})</span>'
    return text


def _summary(message: Message, fillers: Sequence[str] = DEFAULT_FILLERS) -> Tuple[str, str]:
    """``(label, body)`` HTML for one message: the label names the kind, the body shows it."""
    if isinstance(message, TextMessage):
        return _text(_speaker(str(message.source))), _text_body(message, fillers)
    if isinstance(message, ToolRequest):
        return "tool request", (
            f"<b>{_text(message.tool_name)}</b>({_code(message.args)})"
            f' <span style="{_SMALL}">id {_text(message.id)}</span>'
        )
    if isinstance(message, ToolCall):
        return "tool call", f"<b>{_text(message.tool_name)}</b>({_code(message.args)})"
    if isinstance(message, ToolCallResult):
        return "tool result", f"<b>{_text(message.tool_name)}</b> → {_code(message.result)}"
    if isinstance(message, ToolResponse):
        return "tool answer", (
            f'{_code(message.result)} <span style="{_SMALL}">for id {_text(message.id)}</span>'
        )
    if isinstance(message, Event):
        data = f" {_code(message.data)}" if message.data else ""
        return "event", f"<b>{_text(message.name)}</b>{data}"
    if isinstance(message, ConversationResult):
        status = _text(message.status or "(no status)")
        error = f' <span style="{_ERROR}">{_text(message.error_message)}</span>'
        return "result", f"<b>{status}</b>{error if message.error_message else ''}"
    if isinstance(message, ErrorMessage):
        return "error", f'<span style="{_ERROR}">{_text(message.message)}</span>'
    if isinstance(message, IncomingChatMessage):
        return "you", _text(message.content)
    if isinstance(message, Initialize):
        kind = message.request.call_type if message.request is not None else "dev request"
        return "initialize", _text(kind)
    if isinstance(message, Terminate):
        return "terminate", ""
    if isinstance(message, (SdpInvite, SdpAnswer)):
        label = "SDP offer" if isinstance(message, SdpInvite) else "SDP answer"
        lines = message.sdp.count("\n") + 1
        return label, _details(f"{lines} lines", _pre(message.sdp))
    if isinstance(message, UnknownMessage):
        return "unknown", f"<b>{_text(message.type)}</b>"
    return _text(type(message).__name__), ""


def message_html(message: Message) -> str:
    """One frame as a line of HTML: what kind it is, what it says, and its raw JSON on demand."""
    label, body = _summary(message)
    raw = _details("raw frame", _pre(message.raw)) if message.raw else ""
    return (
        f'<div class="bb-message" style="{_BOX}">'
        f'<span style="{_SMALL}">{label}</span>{_time(message.timestamp)} {body}{raw}</div>'
    )


# --- a reply and a result --------------------------------------------------------------------


def _messages_table(messages: Sequence[Message], fillers: Sequence[str]) -> str:
    rows = []
    for message in messages:
        label, body = _summary(message, fillers)
        rows.append(
            f'<tr><td style="{_CELL};{_SMALL}">{label}</td><td style="{_CELL}">{body}</td></tr>'
        )
    return f'<table style="{_TABLE}">{"".join(rows)}</table>'


def reply_html(reply: Reply, fillers: Iterable[str] = DEFAULT_FILLERS) -> str:
    """An agent turn: its text, why it counted as complete, timings, tools, and every frame."""
    filler_list = _normalise(fillers)
    if reply.texts:
        text = "".join(f'<div style="margin:2px 0">{_text(t)}</div>' for t in reply.texts)
    else:
        text = f'<div style="{_MUTED}"><i>(no text)</i></div>'
    facts: List[str] = [f"turn complete: {_text(reply.reason)}"]
    if reply.latency is not None:
        facts.append(f"first text after {reply.latency * 1000:.0f} ms")
    facts.append(f"{reply.duration:.2f} s")
    if reply.tool_requests:
        names = ", ".join(_text(r.tool_name) for r in reply.tool_requests)
        facts.append(f"tools: {names}")
    ended = ""
    if reply.result is not None:
        ended = f"<div>{result_html(reply.result)}</div>"
    frames = ""
    if reply.messages:
        count = len(reply.messages)
        frames = _details(
            f"{count} frame{'s' if count != 1 else ''}",
            _messages_table(reply.messages, filler_list),
        )
    return (
        f'<div class="bb-reply" style="{_BOX}"><b>Agent</b>{text}'
        f'<div style="{_SMALL}">{" · ".join(facts)}</div>{ended}{frames}</div>'
    )


def result_html(result: ConversationResult) -> str:
    """The ``conversationResult``: status, error, summary, and the whole payload on demand."""
    rows: List[Tuple[str, str]] = [("status", f"<b>{_text(result.status or '(none)')}</b>")]
    if result.error_message:
        rows.append(("error", f'<span style="{_ERROR}">{_text(result.error_message)}</span>'))
    if result.summary is not None:
        summary = result.summary
        rows.append(("summary", _text(summary) if isinstance(summary, str) else _pre(summary)))
    if result.timestamp is not None:
        rows.append(("at", _text(result.timestamp.isoformat())))
    table = "".join(
        f'<tr><th style="{_CELL}">{name}</th><td style="{_CELL}">{value}</td></tr>'
        for name, value in rows
    )
    payload = result.result if result.result is not None else result.raw
    raw = _details("payload", _pre(payload)) if payload else ""
    return (
        f'<div class="bb-result" style="{_BOX}"><b>Conversation result</b>'
        f'<table style="{_TABLE}">{table}</table>{raw}</div>'
    )


# --- a transcript ----------------------------------------------------------------------------


def transcript_html(messages: Iterable[Message], fillers: Iterable[str] = DEFAULT_FILLERS) -> str:
    """A conversation as a two-column table: who, and what they said.

    Takes ``conversation.transcript`` or the whole ``conversation.history``. Texts, tool requests
    (with this client's answer, matched by id), errors and the result are shown; other events and
    client frames are left out. The user's own sent messages appear only when the list holds no
    echo of them from the service, so nothing is shown twice.
    """
    items = list(messages)
    filler_list = _normalise(fillers)
    answers: Dict[str, Any] = {m.id: m.result for m in items if isinstance(m, ToolResponse)}
    has_echo = any(isinstance(m, TextMessage) and m.source == "user" for m in items)
    rows = []
    for message in items:
        row = _transcript_row(message, answers, has_echo, filler_list)
        if row is not None:
            who, body = row
            rows.append(f'<tr><th style="{_CELL}">{who}</th><td style="{_CELL}">{body}</td></tr>')
    if not rows:
        return f'<div class="bb-transcript" style="{_MUTED}"><i>(empty transcript)</i></div>'
    return f'<div class="bb-transcript"><table style="{_TABLE}">{"".join(rows)}</table></div>'


def _transcript_row(
    message: Message, answers: Dict[str, Any], has_echo: bool, fillers: Sequence[str]
) -> Optional[Tuple[str, str]]:
    if isinstance(message, TextMessage):
        return _text(_speaker(str(message.source))), _text_body(message, fillers)
    if isinstance(message, IncomingChatMessage):
        return None if has_echo else ("user", _text(message.content))
    if isinstance(message, ToolRequest):
        answer = ""
        if message.id in answers:
            answer = f" → {_code(answers[message.id])}"
        return (
            f'<span style="{_SMALL}">tool</span>',
            f"<b>{_text(message.tool_name)}</b>({_code(message.args)}){answer}",
        )
    if isinstance(message, (ErrorMessage, ConversationResult)):
        label, body = _summary(message)
        return f'<span style="{_SMALL}">{label}</span>', body
    if isinstance(message, Event) and message.name in ("closed", "failedOpen"):
        return f'<span style="{_SMALL}">event</span>', f"<b>{_text(message.name)}</b>"
    return None


# --- registration with IPython -----------------------------------------------------------------


class HtmlFormatter(Protocol):
    """What :func:`register` needs of IPython's ``text/html`` formatter."""

    def for_type(self, typ: Type[Any], func: Callable[[Any], str]) -> object:
        """Render instances of ``typ`` (and its subclasses) with ``func``."""


def conversation_html(conversation: Conversation) -> str:
    """A conversation as HTML: its call type, phase and URL (secrets masked), then its frames."""
    head = (
        f"<div><b>Conversation</b> {escape(conversation.call_type)} · {conversation.phase} · "
        f"{escape(conversation.url)}</div>"
    )
    return head + transcript_html(conversation.history, conversation.turn_rule.fillers)


def register(formatter: Optional[HtmlFormatter] = None) -> bool:
    """Show messages, replies, results and transcripts as HTML in IPython and Jupyter.

    ``formatter`` is an IPython ``text/html`` formatter; by default, the running shell's
    (``get_ipython().display_formatter.formatters["text/html"]``). Returns False, and does
    nothing, when there is none: IPython not imported, or no shell running. Calling it again is
    harmless. ``import blackbox_sync`` calls it once.
    """
    target = formatter if formatter is not None else _running_formatter()
    if target is None:
        return False
    for cls, render in _RENDERERS:
        target.for_type(cls, render)
    return True


def _running_formatter() -> Optional[HtmlFormatter]:
    ipython = sys.modules.get("IPython")  # never imported here: a plain script stays plain
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return None
    return cast(HtmlFormatter, shell.display_formatter.formatters["text/html"])


# IPython looks a type up along its MRO, so the most specific class wins: a result renders as a
# result, any other message as a message.
_RENDERERS: Tuple[Tuple[type, Callable[[Any], str]], ...] = (
    (Message, message_html),
    (ConversationResult, result_html),
    (Reply, reply_html),
    (Transcript, transcript_html),
    (Conversation, conversation_html),
)
