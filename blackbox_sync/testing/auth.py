"""The emulator's handshake checks, as pure functions returning the live service's error text.

The messages are the documented ones (PROTOCOL.md §7); ``None`` means "let the client in".
"""

import re
from typing import Collection, Mapping, Optional
from urllib.parse import urlsplit

from blackbox_sync.testing.records import TokenGrant

MISSING_TOKEN = "Missing token"
INVALID_TOKEN = "Invalid token"
NOT_ENABLED = "Web integration is not enabled"
ORIGIN_NOT_ALLOWED = "Origin not allowed"


def check_web_token(
    grants: Mapping[str, TokenGrant], token: Optional[str], origin: Optional[str]
) -> Optional[str]:
    """Why the production endpoint refuses ``token`` from ``origin``, or ``None`` to accept it."""
    if not token:
        return MISSING_TOKEN
    grant = grants.get(token)
    if grant is None or grant.expired():
        return INVALID_TOKEN
    if not grant.enabled:
        return NOT_ENABLED
    if grant.origins is not None and not origin_allowed(grant.origins, origin):
        return ORIGIN_NOT_ALLOWED
    return None


def check_api_key(api_keys: Collection[str], key: Optional[str]) -> Optional[str]:
    """Why the dev endpoint refuses ``key``; the live wording is unknown, so the token's is used."""
    if not key:
        return MISSING_TOKEN
    return None if key in api_keys else INVALID_TOKEN


def origin_allowed(patterns: Collection[str], origin: Optional[str]) -> bool:
    """True when ``origin`` matches one pattern: exact, or ``scheme://*.domain[:port]``.

    A missing ``Origin`` header never matches a whitelist: strict, because the live behaviour is
    unknown (PROTOCOL open question) and a browser always sends one.
    """
    if not origin:
        return False
    origin = origin.rstrip("/").lower()
    return any(_pattern(p).fullmatch(origin) for p in patterns)


def _pattern(pattern: str) -> "re.Pattern[str]":
    pattern = pattern.strip().rstrip("/").lower()
    parts = urlsplit(pattern)
    if parts.netloc.startswith("*."):
        # A wildcard covers subdomains only, not the bare domain (widget docs).
        rest = re.escape(parts.netloc[2:])
        return re.compile(rf"{re.escape(parts.scheme)}://[^/:@]+\.{rest}")
    return re.compile(re.escape(pattern))
