"""Keeping secrets out of logs, reprs and exception texts: the one place that rule lives."""

import re
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters that carry credentials on BlackBox URLs (PROTOCOL.md §1) and their usual kin.
SECRET_PARAMS = frozenset({"token", "authorization", "api_key", "apikey", "key", "access_token"})


class Secret:
    """A credential that only reveals itself on purpose, through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """Mask the values of credential query parameters and any user:password in ``url``."""
    parts = urlsplit(url)
    query = urlencode(
        [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, True)],
        safe="*",
    )
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, *secrets: Optional[str]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with the mask.

    Bearer credentials and the values of credential query parameters (``?token=...``) are
    masked too, so a URL quoted inside a server's message does not leak a secret we never knew.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _BEARER.sub(f"Bearer {MASK}", text)


def redact_json(value: Any, *secrets: Optional[str]) -> Any:
    """A copy of a decoded JSON value with :func:`redact_text` applied to every string in it."""
    if isinstance(value, str):
        return redact_text(value, *secrets)
    if isinstance(value, dict):
        return {redact_text(str(k), *secrets): redact_json(v, *secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, *secrets) for v in value]
    return value


_BEARER = re.compile(r"Bearer\s+[^\s\"',]+")
# `name=value` after `?`, `&` or a word boundary; `idempotency_key=` does not match `key=`.
_SECRET_NAMES = "|".join(sorted(SECRET_PARAMS))
_QUERY_SECRET = re.compile(rf"(?i)((?:^|(?<=[?&\s\"'(]))(?:{_SECRET_NAMES})=)[^&\s\"'#)]+")
