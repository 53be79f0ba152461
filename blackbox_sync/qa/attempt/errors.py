"""Which infrastructure error (an :class:`~blackbox_sync.qa.results.ErrorInfo`) an exception
stands for: it decides whether an attempt is retried."""

from typing import Optional

from blackbox_sync.errors import (
    ApiError,
    AuthenticationError,
    BlackBoxError,
    ConnectionClosedError,
    HandshakeRefused,
    OperationTimeout,
    ServerError,
)
from blackbox_sync.qa.results import ErrorInfo

RETRYABLE_4XX = (408, 429)
"""Client-error statuses that are hiccups (a timeout, a rate limit): any other 4xx answer is
permanent, and asking again only repeats it."""


def classify(exc: BaseException, phase: str, step: Optional[int] = None) -> ErrorInfo:
    """The infrastructure error an exception stands for."""
    message = str(exc) or type(exc).__name__
    status = http_status(exc)
    if isinstance(exc, AuthenticationError) or status in (401, 403):
        return ErrorInfo("auth", message, step, retryable=False)
    if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
        return ErrorInfo("connect", message, step, retryable=False)
    if isinstance(exc, ServerError):
        return ErrorInfo("server_error", message, step)
    if isinstance(exc, OperationTimeout):
        kind = {"connect": "connect", "terminate": "terminate"}.get(phase, "timeout")
        return ErrorInfo(kind, message, step)
    if isinstance(exc, (ConnectionClosedError, OSError)) and phase != "connect":
        return ErrorInfo("closed", message, step)
    if isinstance(exc, (BlackBoxError, OSError)):
        return ErrorInfo("connect", message, step)
    return ErrorInfo("internal", f"{type(exc).__name__}: {message}", step, retryable=False)


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status behind ``exc``: a REST answer's, or a refused WebSocket handshake's."""
    if isinstance(exc, (ApiError, HandshakeRefused)):
        return exc.status
    return None
