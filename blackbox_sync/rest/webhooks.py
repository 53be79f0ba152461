"""Webhooks the BlackBox service POSTs to your server (PROTOCOL.md §8.5): parse them, answer tools.

:func:`parse` turns a request body into a typed payload. :class:`WebhookHandler` dispatches
payloads to your functions — a tool webhook to the function registered for the tool, whose
return value becomes the JSON answer the agent sees — and works with any web framework; the
Flask and Django views in :mod:`blackbox_sync.contrib` are thin wrappers around it.

Deliveries can repeat: the service retries on a 5xx answer or a timeout, so the same payload may
arrive more than once. Make handlers idempotent (for example keyed on ``call_id``), and answer
within a few seconds.
"""

import hmac
import json
import logging
from datetime import datetime
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

import attrs

from blackbox_sync.errors import ProtocolError
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.rest.model import Model, decode

log = logging.getLogger("blackbox_sync.webhooks")


class WebhookType:
    """The ``type`` values the service sends."""

    START = "StartWebHookPayload"
    COMPLETED = "CompletedWebHookPayload"
    FAILED = "FailedWebHookPayload"
    CALL_DEADLINE = "CallDeadLineWebHookPayload"
    TRANSFER = "TransferWebHookPayload"
    TOOL = "ToolWebHookPayload"
    UNKNOWN = "UnknownWebHookPayload"


@attrs.define
class SipInfo(Model):
    """SIP details of a phone call."""

    from_user: Optional[str] = None
    from_domain: Optional[str] = None
    to_user: Optional[str] = None
    to_domain: Optional[str] = None
    diversion: Optional[List[str]] = None


@attrs.define
class TranscriptEntry(Model):
    """One utterance of a finished call."""

    speaker: LooseStr = LooseStr("")
    text: str = ""
    start_time: Any = None
    end_time: Any = None


@attrs.define
class CallOutcome(Model):
    """``result`` of a completed call: why it ended and the post-call analysis."""

    finish_reason: Optional[LooseStr] = None
    status: Optional[LooseStr] = None
    post_call_analysis: Any = None


@attrs.define
class Webhook(Model):
    """Fields every webhook has. ``raw`` is the whole payload as it arrived."""

    TYPE: ClassVar[str] = ""

    type: LooseStr = LooseStr("")
    status: Optional[LooseStr] = None
    call_id: Optional[LooseStr] = None
    agent_id: Optional[LooseStr] = None
    org_id: Optional[LooseStr] = None
    call_additional_data: Optional[Dict[str, Any]] = None
    agent_additional_data: Optional[Dict[str, Any]] = None
    server_job_id: Optional[LooseStr] = None
    sip: Optional[SipInfo] = None
    endpoint: Optional[str] = None
    call_type: Optional[LooseStr] = None
    created_time: Optional[datetime] = None


@attrs.define
class StartWebhook(Webhook):
    """A call is about to start; the answer may override the agent's configuration."""

    TYPE = WebhookType.START


@attrs.define
class CompletedWebhook(Webhook):
    """A call or conversation completed: transcript, outcome and links."""

    TYPE = WebhookType.COMPLETED

    duration_seconds: Optional[float] = None
    transcription: Optional[List[TranscriptEntry]] = None
    result: Optional[CallOutcome] = None
    inspector_url: Optional[str] = None
    recording_url: Optional[str] = None
    completed_time: Optional[datetime] = None


@attrs.define
class FailedWebhook(Webhook):
    """A call failed; ``error_message`` says why."""

    TYPE = WebhookType.FAILED

    error_message: Optional[str] = None
    completed_time: Optional[datetime] = None


@attrs.define
class CallDeadlineWebhook(Webhook):
    """A scheduled call was canceled (its deadline passed, or it was canceled over REST)."""

    TYPE = WebhookType.CALL_DEADLINE


@attrs.define
class TransferWebhook(Webhook):
    """An HTTP transfer needs a decision; answer with the destination."""

    TYPE = WebhookType.TRANSFER


@attrs.define
class ToolWebhook(Webhook):
    """The agent calls a webhook tool; the answer's JSON body is the tool's result."""

    TYPE = WebhookType.TOOL
    __wire__ = {"tool_name": ("toolName", "name"), "arguments": ("arguments", "args")}

    tool_name: LooseStr = LooseStr("")
    arguments: Any = attrs.field(factory=dict)


@attrs.define
class UnknownWebhook(Webhook):
    """A webhook type this version does not know (or ``UnknownWebHookPayload``); see ``raw``."""

    TYPE = WebhookType.UNKNOWN


PAYLOAD_TYPES: Dict[str, Type[Webhook]] = {
    cls.TYPE: cls
    for cls in (
        StartWebhook,
        CompletedWebhook,
        FailedWebhook,
        CallDeadlineWebhook,
        TransferWebhook,
        ToolWebhook,
        UnknownWebhook,
    )
}


def parse(body: Union[bytes, str, Mapping[str, Any]]) -> Webhook:
    """Read a webhook request body (raw bytes/text, or an already decoded dict).

    Returns the payload class for its ``type`` — :class:`UnknownWebhook` for a type this version
    does not know. Raises :class:`~blackbox_sync.ProtocolError` for a body that is not a JSON
    object or whose known fields have the wrong shape.
    """
    if isinstance(body, (bytes, bytearray, str)):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ProtocolError("webhook body is not JSON") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise ProtocolError(f"webhook body is a JSON {type(data).__name__}, not an object")
    kind = data.get("type")
    cls = PAYLOAD_TYPES.get(kind, UnknownWebhook) if isinstance(kind, str) else UnknownWebhook
    return decode(dict(data), cls, f"webhook {kind!r}")


W = TypeVar("W", bound=Webhook)
F = TypeVar("F", bound=Callable[..., Any])
Response = Tuple[int, Any]
"""``(HTTP status, JSON body)``: what a view sends back to the service."""


class WebhookHandler:
    """Routes webhook payloads to your functions; framework-neutral (see ``contrib``).

    >>> hooks = WebhookHandler()
    >>> @hooks.tool("checkOrderStatus")
    ... def check(orderNumber: str) -> dict:
    ...     return {"status": "shipped"}
    >>> hooks.handle(b'{"type":"ToolWebHookPayload","toolName":"checkOrderStatus",'
    ...              b'"arguments":{"orderNumber":"A1"}}')
    (200, {'status': 'shipped'})

    A tool function gets the tool's ``arguments`` as keyword arguments (or, registered with
    ``with_payload=True``, the :class:`ToolWebhook` first). If it raises, or the arguments do not
    fit, or no function is registered, the agent gets ``{"error": "..."}`` with status 200 — so it
    can go on — and the problem is logged. ``required_headers`` (for example a shared secret you
    put in the webhook's ``headers`` in the agent config) are checked first; a mismatch is 401.
    """

    def __init__(self, *, required_headers: Optional[Mapping[str, str]] = None) -> None:
        self._tools: Dict[str, Tuple[Callable[..., Any], bool]] = {}
        self._handlers: Dict[Type[Webhook], List[Callable[[Any], Any]]] = {}
        self._required = {k.lower(): v for k, v in (required_headers or {}).items()}

    def __repr__(self) -> str:
        return f"<WebhookHandler tools={sorted(self._tools)}>"

    def tool(self, name: Optional[str] = None, *, with_payload: bool = False) -> Callable[[F], F]:
        """Decorator: answer tool webhooks for ``name`` (default: the function's name)."""

        def register(func: F) -> F:
            self._tools[name or func.__name__] = (func, with_payload)
            return func

        return register

    def on(self, payload_type: Type[W]) -> Callable[[Callable[[W], Any]], Callable[[W], Any]]:
        """Decorator: call the function for every payload of ``payload_type`` (a subclass of
        :class:`Webhook`; ``Webhook`` itself means every payload). The last handler's non-None
        return value becomes the JSON answer (a start webhook's overrides, for example)."""

        def register(func: Callable[[W], Any]) -> Callable[[W], Any]:
            self._handlers.setdefault(payload_type, []).append(func)
            return func

        return register

    def handle(
        self,
        body: Union[bytes, str, Mapping[str, Any]],
        headers: Optional[Mapping[str, str]] = None,
    ) -> Response:
        """Process one delivery and return ``(status, json_body)`` for the view to send."""
        if self._required and not self._headers_ok(headers or {}):
            log.warning("webhook rejected: required header missing or wrong")
            return 401, {"error": "unauthorized"}
        try:
            payload = parse(body)
        except ProtocolError as exc:
            log.warning("webhook rejected: %s", exc)
            return 400, {"error": str(exc)}
        answer: Any = {}
        for cls, handlers in self._handlers.items():
            if isinstance(payload, cls):
                for func in handlers:
                    returned = func(payload)  # an exception here is a server error: 500, retried
                    if returned is not None:
                        answer = returned
        if isinstance(payload, ToolWebhook):
            answer = self._run_tool(payload)
        return 200, answer

    def _headers_ok(self, headers: Mapping[str, str]) -> bool:
        given = {k.lower(): v for k, v in headers.items()}
        return all(
            hmac.compare_digest(given.get(key, "").encode(), value.encode())
            for key, value in self._required.items()
        )

    def _run_tool(self, payload: ToolWebhook) -> Any:
        entry = self._tools.get(payload.tool_name)
        if entry is None:
            log.warning("tool webhook for %r: no function registered", payload.tool_name)
            return {"error": f"unknown tool {payload.tool_name!r}"}
        func, with_payload = entry
        args = payload.arguments if payload.arguments is not None else {}
        if not isinstance(args, dict):
            return {"error": f"tool {payload.tool_name!r}: arguments must be an object"}
        try:
            return func(payload, **args) if with_payload else func(**args)
        except TypeError as exc:
            if _bad_call(exc):
                log.warning("tool %r: arguments do not fit: %s", payload.tool_name, exc)
                return {"error": f"tool {payload.tool_name!r}: bad arguments: {exc}"}
            log.exception("tool %r raised", payload.tool_name)
            return {"error": f"tool {payload.tool_name!r} failed: {exc}"}
        except Exception as exc:
            log.exception("tool %r raised", payload.tool_name)
            return {"error": f"tool {payload.tool_name!r} failed: {type(exc).__name__}: {exc}"}


def _bad_call(exc: TypeError) -> bool:
    # A TypeError raised by the call itself (wrong keywords) has no frame inside the function.
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None


__all__ = [
    "PAYLOAD_TYPES",
    "CallDeadlineWebhook",
    "CallOutcome",
    "CompletedWebhook",
    "FailedWebhook",
    "SipInfo",
    "StartWebhook",
    "ToolWebhook",
    "TranscriptEntry",
    "TransferWebhook",
    "UnknownWebhook",
    "Webhook",
    "WebhookHandler",
    "WebhookType",
    "parse",
]
