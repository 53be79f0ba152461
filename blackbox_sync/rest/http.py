"""The HTTP layer of the REST client: one ``requests.Session``, Bearer auth, retries, error mapping.

Retries follow one rule: a request is retried on 429, 502, 503, 504 and on connection errors
only when repeating it cannot do harm (idempotent methods), unless the caller says otherwise for
that request. A POST that creates calls is therefore never repeated unless the caller opts in.
"""

import json
import logging
import random
import re
import socket
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Type, Union
from urllib.parse import urlsplit

import attrs
import requests
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from blackbox_sync._version import __version__

# The REST connection errors live in errors.py with the rest of the tree; this module (where
# they were defined before) and blackbox_sync.rest re-export them.
from blackbox_sync.errors import (
    ApiAuthenticationError,
    ApiError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    UsageError,
)
from blackbox_sync.errors import ApiConnectionError as ApiConnectionError
from blackbox_sync.errors import ApiRedirectError as ApiRedirectError
from blackbox_sync.errors import ApiResponseError as ApiResponseError
from blackbox_sync.errors import ApiTimeoutError as ApiTimeoutError
from blackbox_sync.errors import InvalidUrlError as InvalidUrlError
from blackbox_sync.errors import ResponseTooLargeError as ResponseTooLargeError
from blackbox_sync.protocol.codec import format_timestamp
from blackbox_sync.redact import SECRET_PARAMS, Secret, redact_json, redact_text, redact_url
from blackbox_sync.rest._deadline import DeadlineAdapter, Watchdog, cut_on_this_thread
from blackbox_sync.urls import http_base

log = logging.getLogger("blackbox_sync.rest")

API_PREFIX = "/api/v1"
USER_AGENT = f"blackbox-sync/{__version__}"

Params = Mapping[str, Any]

# Indirections so tests can watch the backoff and the retry deadline without slowing down or
# patching `time` globally.
_sleep: Callable[[float], None] = time.sleep
_clock: Callable[[], float] = time.monotonic


class _RedactQuery(logging.Filter):
    """urllib3 logs each request line with its query string: mask credential parameters there.

    Its warnings about a connection the deadline cut (headers that "failed to parse") are
    dropped: the call raises :class:`ApiTimeoutError`, which says what happened.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if cut_on_this_thread():
            return False
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


def _guard_urllib3_log() -> None:
    # `discover?token=` would otherwise reach urllib3's logs verbatim (the request line at
    # DEBUG, a header-parsing warning with the URL); idempotent.
    for name in ("urllib3.connectionpool", "urllib3.connection"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactQuery) for f in logger.filters):
            logger.addFilter(_RedactQuery())


@attrs.frozen
class RetryPolicy:
    """When and how the REST client repeats a failed request.

    The wait before retry *n* (1-based) is ``backoff * 2 ** (n - 1)``, capped at ``max_backoff``,
    with jitter; a ``Retry-After`` header replaces it when present (429/503). A ``Retry-After``
    longer than ``max_retry_after`` is not waited for: the error is raised at once.

    ``total_timeout`` bounds one request with all its retries, in seconds from the start:
    connecting, the headers, the body and every retry and wait. No retry starts (or is waited
    for) past it, each attempt's ``timeout`` is cut to what is left, and a server that keeps
    dripping bytes is cut off when it passes, so a request fails after about
    ``total_timeout`` seconds at most (:class:`ApiTimeoutError`). ``None`` removes the bound
    (then a request can take ``(max_retries + 1) * timeout`` plus the waits, or longer against
    a server that drips).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    jitter: bool = True
    statuses: FrozenSet[int] = frozenset({429, 502, 503, 504})
    methods: FrozenSet[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
    total_timeout: Optional[float] = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), without a server hint."""
        base: float = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2) if self.jitter else base


MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The default cap on a decoded response body (``Client(max_response_bytes=...)``)."""

MAX_JSON_DEPTH = 100
"""Deeper JSON is refused: real BlackBox objects nest a few levels; a 500-deep body is an attack
on every recursive walk after it (decoding, redaction)."""


def shown_url(url: str) -> str:
    """``url`` with its secrets masked, even when it is too malformed to parse."""
    try:
        return redact_url(url)
    except ValueError:
        return redact_text(_USERINFO.sub("//***@", url))


_USERINFO = re.compile(r"//[^/?#]*@")


def _checked_base(base_url: str) -> str:
    """The REST root of ``base_url``, or :class:`InvalidUrlError` if it cannot be one."""
    try:
        base = api_base(base_url)
        parts = urlsplit(base)
        parts.port  # noqa: B018  # a port that is not a number raises here, not mid-request
    except (ValueError, KeyError) as exc:  # KeyError: a scheme http_base does not know
        raise InvalidUrlError(f"invalid base_url {shown_url(base_url)!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrlError(f"invalid base_url {shown_url(base)!r}: expected https://host")
    return base


def api_base(base_url: str) -> str:
    """``https://host`` from ``https://host/``, ``wss://host`` or ``https://host/api/v1``."""
    url = http_base(base_url.strip().rstrip("/"))
    return url[: -len(API_PREFIX)] if url.endswith(API_PREFIX) else url


# No answer, or one cut off: worth another try when repeating the request is harmless.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class HttpTransport:
    """Sends one REST request, retries it by the :class:`RetryPolicy`, maps errors to exceptions."""

    def __init__(
        self,
        api_key: Secret,
        base_url: str,
        *,
        timeout: Union[float, "tuple[float, float]"] = 30.0,
        session: Optional[requests.Session] = None,
        retry: Optional[RetryPolicy] = None,
        headers: Optional[Mapping[str, str]] = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int):
            raise UsageError("max_response_bytes must be a whole number of bytes")
        if max_response_bytes < 1:
            raise UsageError("max_response_bytes must be at least 1")
        self._api_key = api_key
        self.base_url = _checked_base(base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        _guard_urllib3_log()
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # Connections the deadline watchdog can cut; a caller's session keeps its adapters.
            for prefix in ("https://", "http://"):
                session.mount(prefix, DeadlineAdapter())
        self.session = session
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={self.base_url!r}, api_key={self._api_key!r})"

    def close(self) -> None:
        """Close the session if this transport created it (a caller's session stays open)."""
        if self._owns_session:
            self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Params] = None,
        json_body: Any = None,
        retry: Optional[bool] = None,
    ) -> Any:
        """Send ``method path`` and return the decoded JSON body (``None`` when empty).

        ``retry=None`` retries idempotent methods only; ``True`` retries this request whatever
        its method (safe when the service deduplicates it); ``False`` never retries.
        """
        method = method.upper()
        total = self.retry.total_timeout
        call = _Call(
            method=method,
            url=f"{self.base_url}{API_PREFIX}{path}",
            params=_clean_params(params),
            json_body=json_body,
            secrets=self._secrets(params),
            retryable=method in self.retry.methods if retry is None else retry,
            deadline=None if total is None else _clock() + total,
        )
        with Watchdog(total) as watchdog:
            call.watchdog = watchdog
            return self._run(call)

    def _run(self, call: "_Call") -> Any:
        while True:
            call.attempt += 1
            started = time.monotonic()
            try:
                response, content, delay = self._attempt(call)
            except _Redirected as redirect:
                raise self._error(call, redirect.response, b"") from None
            except (requests.RequestException, OSError, ValueError) as exc:
                failure = self._failure(call, exc)
                transient = isinstance(exc, _TRANSIENT) and not call.watchdog.expired
                delay = self._retry_delay(call, None) if transient else None
                if delay is None:
                    raise failure from None  # the cause's text holds the raw URL
                call.uncertain = call.uncertain or not _never_sent(exc)
                self._wait(call, delay, type(exc).__name__)
                continue
            if delay is not None:
                # A 429 is a refusal before any work; a gateway error may hide a done request.
                call.uncertain = call.uncertain or response.status_code != 429
                self._wait(call, delay, f"HTTP {response.status_code}")
                continue
            shown = redact_url(response.url or call.url)
            log.debug(
                "%s %s -> %s (%.0f ms)",
                call.method,
                shown,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if response.status_code < 300:
                return _json_body(response, content, f"{call.method} {urlsplit(shown).path}")
            raise self._error(call, response, content)

    def _attempt(self, call: "_Call") -> "tuple[requests.Response, bytes, Optional[float]]":
        """One attempt: the response, its body (unless it is to be retried) and the wait
        before that retry (``None``: no retry for this status)."""
        heads: List[requests.Response] = []
        # A request's hooks replace the session's in requests: keep the caller's hooks running.
        hooks = {
            "response": [
                *self.session.hooks.get("response", []),
                lambda answer, **_: heads.append(answer),
            ]
        }
        try:
            response = self.session.request(
                call.method,
                call.url,
                params=call.params,
                json=call.json_body,
                headers={**self._headers, "Authorization": f"Bearer {self._api_key.reveal()}"},
                timeout=_shorten(self.timeout, call.deadline),
                stream=True,  # read in chunks below: the size cap and the deadline apply
                allow_redirects=False,
                hooks=hooks,
            )
        except ValueError:
            # requests parses a redirect's Location even when it does not follow it, and a
            # malformed one raises a bare ValueError: report the redirect itself.
            if heads and heads[-1].is_redirect:
                heads[-1].close()
                raise _Redirected(heads[-1]) from None
            raise
        call.watchdog.track_response(response)
        content = b""
        with response:
            delay = self._status_retry_delay(call, response)
            if delay is None:
                content = _read_body(response, self.max_response_bytes, call)
        if call.watchdog.expired:
            # Its socket was cut: what arrived may be a truncated head parsed as whole.
            raise requests.ReadTimeout("the answer was cut off at the deadline")
        return response, content, delay

    def _error(self, call: "_Call", response: requests.Response, content: bytes) -> ApiError:
        shown = shown_url(response.url or call.url)
        error = error_for(response, call.method, shown, call.secrets, content=content)
        error.earlier_attempt_uncertain = call.uncertain
        return error

    def _status_retry_delay(self, call: "_Call", response: requests.Response) -> Optional[float]:
        """The wait before retrying a retryable status (429, 503, ...), or ``None``."""
        if response.status_code not in self.retry.statuses:
            return None
        return self._retry_delay(call, retry_after(response.headers.get("Retry-After")))

    def _failure(self, call: "_Call", exc: BaseException) -> ApiConnectionError:
        """The typed, redacted error for an attempt that got no usable answer."""
        if isinstance(exc, ApiConnectionError):
            error = exc
        else:
            reason, cls = _diagnose(exc)
            if call.watchdog.expired or (cls is ApiTimeoutError and call.past_deadline()):
                # After a cut by the watchdog, the attempt's own failure is only its echo.
                last = "" if call.watchdog.expired else f" (last: {reason})"
                cls = ApiTimeoutError
                reason = (
                    f"no complete answer within the total timeout of "
                    f"{self.retry.total_timeout:g} s{last}"
                )
            error = cls(f"{call.where()}: {reason}")
        error.args = (redact_text(f"{error} ({_attempts(call.attempt)})", *call.secrets),)
        error.attempts = call.attempt
        return error

    def _retry_delay(self, call: "_Call", hint: Optional[float]) -> Optional[float]:
        """Seconds to wait before retrying the call's last attempt, or ``None`` to give up now."""
        if not call.retryable or call.attempt > self.retry.max_retries:
            return None
        if hint is not None and hint > self.retry.max_retry_after:
            return None
        delay = self.retry.delay(call.attempt) if hint is None else hint
        if call.deadline is not None and _clock() + delay >= call.deadline:
            return None  # the retry could not even start before the total timeout
        return delay

    def _wait(self, call: "_Call", delay: float, why: str) -> None:
        log.info(
            "retrying %s %s after %s in %.2f s (retry %d of %d)",
            call.method,
            redact_url(call.url),
            why,
            delay,
            call.attempt,
            self.retry.max_retries,
        )
        _sleep(delay)

    def _secrets(self, params: Optional[Params]) -> "list[str]":
        found = [self._api_key.reveal()]
        for key, value in (params or {}).items():
            if key.lower() in SECRET_PARAMS and isinstance(value, str):
                found.append(value)
        return found


Timeout = Union[None, float, "tuple[float, float]"]


def _shorten(timeout: Timeout, deadline: Optional[float]) -> Timeout:
    """A retry's timeout: the configured one, cut to what is left before ``deadline``."""
    if deadline is None:
        return timeout
    left = max(0.001, deadline - _clock())
    if timeout is None:
        return left
    if isinstance(timeout, tuple):
        return (min(timeout[0], left), min(timeout[1], left))
    return min(timeout, left)


def _never_sent(exc: BaseException) -> bool:
    """True when the request surely never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


class _Redirected(Exception):
    """A redirect whose ``Location`` requests could not even parse."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@attrs.define
class _Call:
    """One request with all its attempts: what is sent, and what the attempts learnt."""

    method: str
    url: str
    params: Optional[Dict[str, Any]]
    json_body: Any
    secrets: "list[str]"
    retryable: bool
    deadline: Optional[float]
    watchdog: Watchdog = attrs.field(factory=lambda: Watchdog(None))
    attempt: int = 0
    uncertain: bool = False
    """Set once an attempt ended without a definite answer: it may have taken effect, so a later
    404/409 can be the echo of our own success (see ApiError.earlier_attempt_uncertain)."""

    def where(self) -> str:
        return f"{self.method} {redact_url(self.url)}"

    def past_deadline(self) -> bool:
        return self.deadline is not None and _clock() >= self.deadline


def _attempts(count: int) -> str:
    return f"after {count} attempt{'s' if count != 1 else ''}"


def _chain(exc: BaseException) -> "list[object]":
    """``exc`` and what it wraps: requests wraps urllib3's errors, which wrap the OS error."""
    seen: list[object] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 20:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        if isinstance(item, BaseException):
            todo += [item.__cause__, item.__context__, *item.args[:1]]
        todo.append(getattr(item, "reason", None))  # urllib3's MaxRetryError keeps it there
    return seen


_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    urllib3.exceptions.LocationValueError,
)


# In order: the first kind found in the chain names the reason and the error class; ``None``
# stands for the OS's own words (``[Errno 111] Connection refused`` -> "connection refused").
_REASONS: "tuple[tuple[Any, Optional[str], Type[ApiConnectionError]], ...]" = (
    (
        requests.exceptions.ContentDecodingError,
        "the body could not be decoded (bad gzip/deflate)",
        ApiResponseError,
    ),
    (_BAD_URL, "invalid URL", InvalidUrlError),
    (
        requests.exceptions.SSLError,
        "the TLS handshake or certificate check failed",
        ApiConnectionError,
    ),
    (requests.exceptions.ProxyError, "the proxy failed", ApiConnectionError),
    (
        (NameResolutionError, socket.gaierror),
        "the host name could not be resolved (DNS)",
        ApiConnectionError,
    ),
    (OSError, None, ApiConnectionError),
    ((ConnectTimeoutError, requests.ConnectTimeout), "the connection timed out", ApiTimeoutError),
    (
        (ReadTimeoutError, requests.ReadTimeout, TimeoutError),
        "timed out waiting for the answer",
        ApiTimeoutError,
    ),
    (
        (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError),
        "the connection closed before the answer was complete",
        ApiConnectionError,
    ),
)


def _diagnose(exc: BaseException) -> "tuple[str, Type[ApiConnectionError]]":
    """Why an attempt failed, in plain words (urllib3's wording names its internals), and the
    error class that says so."""
    chain = _chain(exc)
    for kinds, reason, cls in _REASONS:
        for item in chain:
            if not isinstance(item, kinds):
                continue
            if reason is not None:
                return reason, cls
            if isinstance(item, OSError) and item.strerror:
                return item.strerror.lower(), cls
    return f"the connection failed ({type(exc).__name__})", ApiConnectionError


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header: delay-seconds (fractions too) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


_ERRORS: Dict[int, Type[ApiError]] = {
    401: ApiAuthenticationError,
    403: ApiAuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}
_REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id", "X-Trace-Id")


def error_for(
    response: requests.Response,
    method: str,
    shown_url: str,
    secrets: "list[str]",
    *,
    content: Optional[bytes] = None,
) -> ApiError:
    """The :class:`ApiError` subclass for a non-2xx response, built from its ProblemDetails.

    ``content`` is the body as read (capped); by default, ``response.content``.
    """
    status = response.status_code
    raw = response.content if content is None else content
    body: Any = None
    title = detail = ""
    try:
        body = decode_json(raw)
    except ValueError:  # not JSON, or nested too deep to walk safely: keep it as text
        detail = _decode_text(raw, response.encoding).strip()[:300]
    if isinstance(body, dict):
        title = _text(body.get("title"))
        detail = _text(body.get("detail") or body.get("message") or body.get("error"))
        if not detail and isinstance(body.get("errors"), dict):
            # ASP.NET validation problems put the reasons in `errors: {field: [messages]}`.
            detail = "; ".join(f"{k}: {_text(v)}" for k, v in body["errors"].items())
    # Everything the server wrote is masked before it reaches the exception: a message may
    # quote the request (a URL with ?token=, an Authorization header), and callers log `.body`.
    title = redact_text(title or response.reason or "", *secrets)
    detail = redact_text(detail, *secrets)
    instance = body.get("instance") if isinstance(body, dict) else None
    request_id = next(
        (response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None
    )
    if request_id is None and isinstance(body, dict):
        found = body.get("traceId") or body.get("requestId")
        request_id = None if found is None else str(found)
    cls = _ERRORS.get(status, ApiRedirectError if 300 <= status < 400 else ApiError)
    location = shown_url_in(response.headers.get("Location"), secrets)
    if cls is ApiRedirectError:
        detail = (
            f"redirected to {location or '(no Location)'}; the client does not follow "
            "redirects (BlackBox REST calls are never redirected): check base_url"
        )
    extra: Dict[str, Any] = {
        "request_id": None if request_id is None else redact_text(request_id, *secrets),
        "body": redact_json(body, *secrets),
        "instance": None if instance is None else redact_text(_text(instance), *secrets),
    }
    if cls is RateLimitError:
        extra["retry_after"] = retry_after(response.headers.get("Retry-After"))
    error = cls(status, title, detail, **extra)
    if isinstance(error, ApiRedirectError):
        error.location = location
    path = urlsplit(shown_url).path
    # Say which request failed; the path carries ids only, the query (maybe a token) is left out.
    error.args = (f"{error} ({method} {path})",)
    return error


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _clean_params(params: Optional[Params]) -> Optional[Dict[str, Any]]:
    # None means "not given"; booleans go as the lowercase words ASP.NET binds.
    if params is None:
        return None
    out: Dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, datetime):
            value = format_timestamp(value)
        out[key] = value
    return out


def _json_body(response: requests.Response, content: bytes, what: str) -> Any:
    if not content or response.status_code == 204:
        return None
    try:
        return decode_json(content)
    except ValueError as exc:
        raise ProtocolError(f"{what}: the response is not JSON{_why(exc)}") from None


def _why(exc: ValueError) -> str:
    return f" ({exc})" if isinstance(exc, _TooDeep) else ""


class _TooDeep(ValueError):
    pass


def decode_json(content: bytes) -> Any:
    """Decode a JSON body; ``ValueError`` if it is not JSON or nests deeper than
    :data:`MAX_JSON_DEPTH` (which every recursive walk after decoding would choke on)."""
    try:
        value = json.loads(content)
    except RecursionError:
        raise _TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise _TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value``, walked without recursion."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            todo.extend((child, level + 1) for child in children)
    return deepest


def _decode_text(content: bytes, encoding: Optional[str]) -> str:
    try:
        return content.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def shown_url_in(value: Optional[str], secrets: "list[str]") -> str:
    """A URL the server sent (``Location``), masked for display; ``""`` when absent."""
    return "" if not value else redact_text(shown_url(value), *secrets)


_CHUNK = 64 * 1024


def _read_body(response: requests.Response, limit: int, call: "_Call") -> bytes:
    """The decoded body, read in chunks: it stops past ``limit`` bytes or past the deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(call, limit, f"it declares {int(declared):,} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(call, limit, "it is larger once decoded")
        if call.past_deadline():
            raise requests.ReadTimeout("the body did not arrive before the deadline")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(call: "_Call", limit: int, why: str) -> ResponseTooLargeError:
    error = ResponseTooLargeError(
        f"{call.where()}: the response body exceeds max_response_bytes={limit:,} ({why})"
    )
    error.limit = limit
    return error
