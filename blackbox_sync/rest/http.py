"""The HTTP layer of the REST client: one ``requests.Session``, Bearer auth, retries, error mapping.

Retries follow one rule: a request is retried on 429, 502, 503, 504 and on connection errors
only when repeating it cannot do harm (idempotent methods), unless the caller says otherwise for
that request. A POST that creates calls is therefore never repeated unless the caller opts in.
"""

import logging
import random
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Type, Union
from urllib.parse import urlsplit

import attrs
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from blackbox_sync._version import __version__
from blackbox_sync.convert import format_timestamp
from blackbox_sync.errors import (
    ApiAuthenticationError,
    ApiError,
    BlackBoxError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
)
from blackbox_sync.redact import SECRET_PARAMS, Secret, redact_json, redact_text, redact_url
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
    """urllib3 logs each request line with its query string: mask credential parameters there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


def _guard_urllib3_log() -> None:
    # `discover?token=` would otherwise reach DEBUG logs verbatim; idempotent.
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


class ApiConnectionError(BlackBoxError, ConnectionError):
    """The REST service could not be reached (after any retries). The text is redacted."""


@attrs.frozen
class RetryPolicy:
    """When and how the REST client repeats a failed request.

    The wait before retry *n* (1-based) is ``backoff * 2 ** (n - 1)``, capped at ``max_backoff``,
    with jitter; a ``Retry-After`` header replaces it when present (429/503). A ``Retry-After``
    longer than ``max_retry_after`` is not waited for: the error is raised at once.

    ``total_timeout`` bounds one request with all its retries, in seconds from the first
    attempt: no retry starts (or is waited for) past it, and a retry's own timeout is shortened
    to what is left. The first attempt always gets the client's full ``timeout``, so a request
    fails after about ``max(timeout, total_timeout)`` seconds at most. ``None`` removes the bound
    (then a request can take ``(max_retries + 1) * timeout`` plus the waits).
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
    ) -> None:
        self._api_key = api_key
        self.base_url = api_base(base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        _guard_urllib3_log()
        self._owns_session = session is None
        self.session = session or requests.Session()
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
        url = f"{self.base_url}{API_PREFIX}{path}"
        retryable = method in self.retry.methods if retry is None else retry
        headers = {**self._headers, "Authorization": f"Bearer {self._api_key.reveal()}"}
        secrets = self._secrets(params)
        total = self.retry.total_timeout
        deadline = None if total is None else _clock() + total
        attempt = 0
        # Set once an attempt ended without a definite answer: it may have taken effect, so a
        # later 404/409 can be the echo of our own success (see ApiError.earlier_attempt_uncertain).
        uncertain = False
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=_clean_params(params),
                    json=json_body,
                    headers=headers,
                    timeout=self.timeout if attempt == 1 else _shorten(self.timeout, deadline),
                )
            except _TRANSIENT as exc:
                text = redact_text(f"{method} {redact_url(url)}: {exc}", *secrets)
                delay = self._retry_delay(retryable, attempt, None, deadline)
                if delay is None:
                    raise ApiConnectionError(text) from None  # the cause's text holds the raw URL
                uncertain = uncertain or not _never_sent(exc)
                self._wait(attempt, delay, f"{type(exc).__name__}", method, url)
                continue
            shown = redact_url(response.url or url)
            log.debug(
                "%s %s -> %s (%.0f ms)",
                method,
                shown,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if response.ok:
                return _json_body(response, f"{method} {urlsplit(shown).path}")
            hint = retry_after(response.headers.get("Retry-After"))
            delay = (
                self._retry_delay(retryable, attempt, hint, deadline)
                if response.status_code in self.retry.statuses
                else None
            )
            if delay is not None:
                response.close()
                # A 429 is a refusal before any work; a gateway error may hide a done request.
                uncertain = uncertain or response.status_code != 429
                self._wait(attempt, delay, f"HTTP {response.status_code}", method, url)
                continue
            error = error_for(response, method, shown, secrets)
            error.earlier_attempt_uncertain = uncertain
            raise error

    def _retry_delay(
        self, retryable: bool, attempt: int, hint: Optional[float], deadline: Optional[float]
    ) -> Optional[float]:
        """Seconds to wait before retrying attempt ``attempt``, or ``None`` to give up now."""
        if not retryable or attempt > self.retry.max_retries:
            return None
        if hint is not None and hint > self.retry.max_retry_after:
            return None
        delay = self.retry.delay(attempt) if hint is None else hint
        if deadline is not None and _clock() + delay >= deadline:
            return None  # the retry could not even start before the total timeout
        return delay

    def _wait(self, attempt: int, delay: float, why: str, method: str, url: str) -> None:
        log.info(
            "retrying %s %s after %s in %.2f s (retry %d of %d)",
            method,
            redact_url(url),
            why,
            delay,
            attempt,
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
    response: requests.Response, method: str, shown_url: str, secrets: "list[str]"
) -> ApiError:
    """The :class:`ApiError` subclass for a non-2xx response, built from its ProblemDetails."""
    status = response.status_code
    body: Any = None
    title = detail = ""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        detail = text[:300]
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
    cls = _ERRORS.get(status, ApiError)
    extra: Dict[str, Any] = {
        "request_id": None if request_id is None else redact_text(request_id, *secrets),
        "body": redact_json(body, *secrets),
        "instance": None if instance is None else redact_text(_text(instance), *secrets),
    }
    if cls is RateLimitError:
        extra["retry_after"] = retry_after(response.headers.get("Retry-After"))
    error = cls(status, title, detail, **extra)
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


def _json_body(response: requests.Response, what: str) -> Any:
    if not response.content or response.status_code == 204:
        return None
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(f"{what}: the response is not JSON") from None
