"""The exception hierarchy: everything the library raises derives from :class:`BlackBoxError`.

Errors from the REST API (an HTTP answer, or no answer) stand apart from errors of the
WebSocket conversation (an ``error`` frame, a closed socket). :class:`AuthenticationError`
catches refused credentials on both: a rejected token in an ``error`` frame and a REST 401/403.
Where a builtin also names the failure, the class derives from it too (e.g. ``TimeoutError``)::

    BlackBoxError
    ├── UsageError (RuntimeError)            a call that cannot work: no credentials, a bad argument
    ├── ProtocolError                        a frame or answer that breaks the protocol
    │   └── rest.PagingError                 a page cursor that does not move on
    ├── ConnectionClosedError (ConnectionError)   the WebSocket closed first
    │   ├── HandshakeRefused                 the upgrade got an HTTP error
    │   └── RedirectRefused                  the upgrade was redirected away
    ├── OperationTimeout (TimeoutError)      connect, terminate, a handshake ran out of time
    │   ├── AskTimeout                       ask() / wait_for_reply(), with the reply so far
    │   └── VoiceTimeout (also VoiceError)
    ├── ServerError                          the server sent an ``error`` frame
    │   └── ServerAuthenticationError (also AuthenticationError)
    ├── AuthenticationError                  credentials refused, on either channel
    │   ├── ServerAuthenticationError        ... by an ``error`` frame (a ServerError too)
    │   └── ApiAuthenticationError           ... by a REST 401/403 (an ApiError too)
    ├── ToolError                            a client-side tool failed
    ├── ToolArgumentsError (ValueError)      tool arguments that do not fit the tool
    ├── CallbackError                        a user callback raised
    ├── ApiError                             a REST call answered with a non-2xx status
    │   ├── ApiAuthenticationError (also AuthenticationError)   401, 403
    │   ├── NotFoundError                    404
    │   ├── ConflictError                    409
    │   ├── RateLimitError                   429
    │   └── ApiRedirectError                 3xx, not followed
    ├── ApiConnectionError (ConnectionError) no usable answer from the REST service
    │   ├── ApiTimeoutError (TimeoutError)
    │   ├── ApiResponseError                 an answer that cannot be used
    │   │   └── ResponseTooLargeError
    │   └── InvalidUrlError (ValueError)     a base_url that cannot work
    ├── VoiceError                           a voice call could not be set up or broke
    │   ├── VoiceTimeout (also OperationTimeout)
    │   └── voice.SdpError (ValueError)      an offer that cannot carry a call
    └── the QA runner's (blackbox_sync.qa): SuiteFileError (ValueError), RefError (ValueError),
        TemplateError (KeyError), StoppedError (RuntimeError), InfraError, VoiceUnavailable

Ctrl-C during a QA run raises ``qa.RunInterrupted``, a ``KeyboardInterrupt``: deliberately no
BlackBoxError, so ``except Exception`` cannot swallow it.

No exception text carries a secret: every message, and every field that holds text the server
sent (``ServerError.message`` and ``data``, ``ConnectionClosedError.reason``,
``ProtocolError.payload``), passes through :func:`blackbox_sync.redact.redact_text` when the
exception is made.
"""

from typing import TYPE_CHECKING, Any, Optional

from blackbox_sync.redact import redact_json, redact_text

if TYPE_CHECKING:  # for the annotation only: this module is the bottom layer
    from blackbox_sync.protocol.reply import Reply


class BlackBoxError(Exception):
    """Base class of every error raised by blackbox_sync; its message is redacted when made."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class UsageError(BlackBoxError, RuntimeError):
    """The library was called in a way that cannot work (for example ``ask()`` from a callback)."""


class ProtocolError(BlackBoxError):
    """A frame broke the wire protocol. ``payload`` keeps what arrived, untouched, up to
    :attr:`MAX_PAYLOAD` characters (bytes for a binary frame); a longer one keeps its start and
    sets ``truncated``. ``payload_size`` is the length of the whole payload as it arrived."""

    MAX_PAYLOAD = 64 * 1024
    """How much of a bad frame is kept: enough to see what went wrong, not a flood's megabytes."""

    def __init__(self, message: str, payload: "str | bytes | None" = None) -> None:
        super().__init__(message)
        self.payload_size = 0 if payload is None else len(payload)
        self.truncated = self.payload_size > self.MAX_PAYLOAD
        kept = payload[: self.MAX_PAYLOAD] if payload is not None else None
        self.payload = redact_text(kept) if isinstance(kept, str) else kept


class ConnectionClosedError(BlackBoxError, ConnectionError):
    """The WebSocket closed before the operation finished."""

    def __init__(self, message: str, code: Optional[int] = None, reason: str = "") -> None:
        detail = (
            message
            if code is None
            else f"{message} (close code {code}{', ' + reason if reason else ''})"
        )
        super().__init__(detail)
        self.code = code
        self.reason = redact_text(reason)


class OperationTimeout(BlackBoxError, TimeoutError):
    """A blocking call (``connect``, ``terminate``, a handshake) ran out of time."""


class AskTimeout(OperationTimeout):
    """``ask()`` or ``wait_for_reply()`` ran out of time. ``reply`` holds the turn so far."""

    def __init__(self, message: str, reply: "Optional[Reply]" = None) -> None:
        super().__init__(message)
        self.reply = reply


class ServerError(BlackBoxError):
    """The server sent an ``error`` frame; ``message`` is its ``data.message``."""

    def __init__(self, message: str, data: "Optional[dict[str, Any]]" = None) -> None:
        super().__init__(message)
        self.message = str(self)
        self.data: dict[str, Any] = redact_json(data) if data else {}


class AuthenticationError(BlackBoxError):
    """The service refused the credentials: a token or API key that is invalid, expired or not
    allowed, whether an ``error`` frame said so (:class:`ServerAuthenticationError`) or a REST
    call was answered 401/403 (:class:`ApiAuthenticationError`). Credentials that were never
    given raise :class:`UsageError` before anything is sent."""


class ServerAuthenticationError(ServerError, AuthenticationError):
    """An ``error`` frame that refused the credentials (e.g. ``Invalid token``)."""


class ToolError(BlackBoxError):
    """A client-side tool failed; the server was answered with an error result."""

    def __init__(self, message: str, tool_name: str, request_id: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name
        self.request_id = request_id


class CallbackError(BlackBoxError):
    """A user callback raised; the reader thread survived and reports it with this wrapper."""

    def __init__(self, message: str, callback: Any) -> None:
        super().__init__(message)
        self.callback = callback


class ApiError(BlackBoxError):
    """A REST call answered with a non-2xx status (RFC 7807 ProblemDetails where given).

    ``title``, ``detail``, ``instance`` and ``body`` (the decoded ProblemDetails object, or
    ``None`` when the answer was not JSON) come from the server with secrets masked.
    """

    def __init__(
        self,
        status: int,
        title: str = "",
        detail: str = "",
        request_id: Optional[str] = None,
        body: Any = None,
        instance: Optional[str] = None,
    ) -> None:
        text = f"HTTP {status}" + (f" {title}" if title else "") + (f": {detail}" if detail else "")
        super().__init__(text)
        self.status = status
        self.title = title
        self.detail = detail
        self.request_id = request_id
        self.body = body
        self.instance = instance
        self.earlier_attempt_uncertain = False
        """True when this answer came to a retry, and an earlier attempt of the same request got
        no definite answer (a timeout, a dropped connection, a 502/503/504): that attempt may
        have taken effect, so a 404 or 409 here can be the trace of its success."""


class ApiAuthenticationError(ApiError, AuthenticationError):
    """REST 401/403: catch it as :class:`AuthenticationError` or as :class:`ApiError`."""

    def __init__(self, status: int, title: str = "", detail: str = "", **kw: Any) -> None:
        super().__init__(status, title, detail, **kw)
        # The attributes a ServerError has, for handlers of AuthenticationError that read them.
        self.message = str(self)
        self.data: dict[str, Any] = {}


class NotFoundError(ApiError):
    """REST 404."""


class ConflictError(ApiError):
    """REST 409 (for example a token name that is already taken)."""


class RateLimitError(ApiError):
    """REST 429. ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(self, status: int, title: str = "", detail: str = "", **kw: Any) -> None:
        self.retry_after: Optional[float] = kw.pop("retry_after", None)
        super().__init__(status, title, detail, **kw)


class ApiConnectionError(BlackBoxError, ConnectionError):
    """No usable answer came from the REST service (after any retries). The text is redacted.

    It names the request, the reason in plain words and the number of attempts, for example
    ``GET https://host/api/v1/agents: connection refused (after 4 attempts)``.
    """

    attempts: int = 0
    """How many attempts were made (0 when the request could not even be built)."""


class ApiTimeoutError(ApiConnectionError, TimeoutError):
    """A REST call ran out of time: an attempt's ``timeout``, or the call's ``total_timeout``
    (connect, headers, body, every retry and wait), even against a server that drips bytes."""


class ApiResponseError(ApiConnectionError):
    """The service answered, but the answer cannot be used (a body that does not decode)."""


class ResponseTooLargeError(ApiResponseError):
    """A response body grew past ``Client(max_response_bytes=...)`` once decoded; ``limit`` is
    that cap in bytes. The rest of the body is not read."""

    limit: int = 0


class InvalidUrlError(ApiConnectionError, ValueError):
    """A URL the client was given (``base_url``) cannot be used for HTTP requests."""


class ApiRedirectError(ApiError):
    """The service answered with a redirect (3xx). BlackBox REST calls are never redirected, so
    the client does not follow it (a redirect can point at another host or at ``file://``);
    ``location`` is where it pointed, redacted. Usually ``base_url`` is wrong."""

    location: str = ""


class VoiceError(BlackBoxError):
    """The voice call could not be set up or broke (bad offer, ICE or DTLS failure)."""


class VoiceTimeout(VoiceError, OperationTimeout):
    """A blocking voice call method ran out of time."""


# Messages of `error` frames that mean "your credentials or their scope are wrong" (PROTOCOL.md §7).
AUTH_ERROR_MESSAGES = frozenset(
    {
        "missing token",
        "invalid token",
        "web integration is not enabled",
        "origin not allowed",
        "auth_error",
        "unauthorized",
    }
)


def server_error_for(message: str, data: "Optional[dict[str, Any]]" = None) -> ServerError:
    """Pick the exception class for an ``error`` frame's message."""
    if message.strip().lower() in AUTH_ERROR_MESSAGES:
        return ServerAuthenticationError(message, data)
    return ServerError(message, data)


class HandshakeRefused(ConnectionClosedError):
    """The server answered the WebSocket upgrade with an HTTP error (``status``, e.g. 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RedirectRefused(ConnectionClosedError):
    """The WebSocket handshake was redirected to another host or to a weaker scheme
    (``wss://`` → ``ws://``), and the redirect was not followed: nothing, the credentials
    included, was sent there. ``location`` is the target, with secrets masked."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location
