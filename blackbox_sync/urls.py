"""Where to connect: base URLs, the WebSocket endpoints and the rule against plain text off-host."""

import ipaddress
import os
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from blackbox_sync.errors import RedirectRefused, UsageError
from blackbox_sync.redact import redact_text, redact_url
from blackbox_sync.settings import BASE_URL_ENV, DEFAULT_BASE_URL

WEBCALL_PATH = "/api/v1/ws/webCall"
DEV_PATH = "/api/v1/ws/dev"

_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def base_url_from(base_url: Optional[str]) -> str:
    """The base URL to use: the argument, else ``$BLACKBOX_BASE_URL``, else the public service."""
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _WS_SCHEME:
        raise UsageError(
            f"base_url must start with http(s):// or ws(s)://, got {redact_url(url)!r}"
        )
    return url


def http_base(base_url: str) -> str:
    """``base_url`` with an ``http``/``https`` scheme (for REST)."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(scheme=_HTTP_SCHEME[parts.scheme.lower()]))


def with_query(url: str, **params: Optional[str]) -> str:
    """``url`` with the given query parameters set (``None`` values are skipped)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, True) if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def websocket_url(
    *,
    base_url: Optional[str] = None,
    url: Optional[str] = None,
    token: Optional[str] = None,
    api_key: Optional[str] = None,
) -> str:
    """The WebSocket URL for a conversation.

    A ``token`` selects the production endpoint (``/ws/webCall?token=``), an ``api_key`` the dev
    endpoint (``/ws/dev?authorization=``). ``url`` replaces the derived address; the credential is
    still added to its query.
    """
    if url is None:
        base = base_url_from(base_url)
        parts = urlsplit(base)
        path = parts.path.rstrip("/") + (WEBCALL_PATH if token or not api_key else DEV_PATH)
        url = urlunsplit((_WS_SCHEME[parts.scheme.lower()], parts.netloc, path, "", ""))
    else:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _WS_SCHEME:
            raise UsageError(f"url must start with ws(s):// or http(s)://, got {redact_url(url)!r}")
        url = urlunsplit(parts._replace(scheme=_WS_SCHEME[parts.scheme.lower()]))
    if token:
        return with_query(url, token=token)
    if api_key:
        return with_query(url, authorization=api_key)
    return url


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport_security(url: str, allow_insecure: bool) -> None:
    """Refuse unencrypted ``ws://``/``http://`` to a non-loopback host unless explicitly allowed.

    Credentials travel in the URL, so plain text off this machine would expose them.
    """
    parts = urlsplit(url)
    plain = parts.scheme.lower() in ("ws", "http")
    if plain and not allow_insecure and not is_loopback(parts.hostname or ""):
        raise UsageError(
            f"refusing unencrypted {parts.scheme}:// to {parts.hostname!r}: credentials would "
            "travel in plain text; use wss:// or https://, or pass allow_insecure=True"
        )


# How strong each scheme's transport is: a redirect may keep it or raise it, never lower it.
_STRENGTH = {"ws": 0, "http": 0, "wss": 1, "https": 1}


def redirect_target(current: str, location: str, *secrets: str) -> str:
    """The ``ws(s)://`` URL a handshake redirect (``Location``) from ``current`` leads to.

    Followed only to the same host, with the same or a stronger scheme: the token in the query,
    ``Origin`` and custom headers go along with a followed redirect, so anywhere else would hand
    them to a host the caller never named, perhaps in plain text. Raises
    :class:`~.errors.RedirectRefused` (the target masked) otherwise.
    """
    origin = urlsplit(current)
    try:
        target = urlsplit(urljoin(current, location.strip()))
        host = target.hostname or ""
        _ = target.port  # raises ValueError for a port out of range
    except ValueError:  # a malformed Location (an unclosed IPv6 bracket, a bad port)
        target, host = urlsplit(""), ""
    shown = redact_text(redact_url(urlunsplit(target)) or repr(location[:200]), *secrets)
    scheme = target.scheme.lower()
    if scheme not in _STRENGTH or not host:
        reason = "not a WebSocket URL"
    elif host.lower() != (origin.hostname or "").lower():
        reason = "another host"
    elif _STRENGTH[scheme] < _STRENGTH[origin.scheme.lower()]:
        reason = "a weaker scheme"
    else:
        return urlunsplit(target._replace(scheme=_WS_SCHEME[scheme]))
    raise RedirectRefused(
        f"the WebSocket handshake with {redact_text(redact_url(current), *secrets)} was "
        f"redirected to {shown} ({reason}); not followed, so nothing was sent there",
        shown,
    )
