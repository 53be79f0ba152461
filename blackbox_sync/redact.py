"""Keeping secrets out of logs, reprs, exception texts and reports: the one place that rule lives.

Every credential the process handles is wrapped in :class:`Secret`, which also remembers its value
here. :func:`redact_text` then masks every remembered secret, whoever calls it, and the values of
credential query parameters and bearer headers, which covers a secret quoted back by a server
that we never knew. The library applies it where text leaves it: exception messages
(:class:`~blackbox_sync.errors.BlackBoxError`), log records (:class:`RedactingHandler`), QA reports
and the command line.
"""

import json
import logging
import re
import threading
from collections import OrderedDict
from typing import Any, Iterable, Optional, Pattern
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters that carry credentials on BlackBox URLs (PROTOCOL.md §1) and their usual kin.
SECRET_PARAMS = frozenset({"token", "authorization", "api_key", "apikey", "key", "access_token"})

MAX_REMEMBERED = 1024
"""How many secrets :func:`remember` keeps, the most recently used first: bounded memory in a
long QA run that mints a token per conversation. Each object that holds a secret also masks its
own ones explicitly, so one pushed out of here still never leaks through its owner."""

MIN_REMEMBERED = 8
"""Shorter secrets (demo and test values such as ``t``) are masked by their owners only, not
process-wide, where they would mask that word in every later text."""

SHORT_SECRET = 16
"""Secrets shorter than this are masked only as whole words, so a short test key such as ``x``
does not shred ``Max retries exceeded``; longer ones are masked wherever they appear."""


class Secret:
    """A credential that only reveals itself on purpose, through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        # A URL is not itself the credential: the token or key in it is remembered on its own,
        # and credential parameters are masked by name.
        if "://" not in value and len(value) >= MIN_REMEMBERED:
            remember(value)

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


def remember(*secrets: Optional[str]) -> None:
    """Have :func:`redact_text` mask these secrets from now on, wherever it is called."""
    with _lock:
        for secret in secrets:
            if secret:
                _remembered[secret] = _forms(secret)
                _remembered.move_to_end(secret)
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)
        _compiled.clear()


def redact_text(text: str, *secrets: Optional[str]) -> str:
    """``text`` with every secret masked: those given, every remembered one, and the values of
    credential query parameters (``?token=...``) and bearer headers.

    A secret is masked whole, also in its percent-encoded form; short ones only where they stand
    as a word of their own (see :data:`SHORT_SECRET`).
    """
    if not text:
        return text
    with _lock:
        known = list(_remembered.items())
    given = [(s, _forms(s)) for s in secrets if s]
    candidates = [s for s, forms in (*given, *known) if any(f in text for f in forms)]
    if candidates:
        text = _pattern_for(candidates).sub(MASK, text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text


def redact_json(value: Any, *secrets: Optional[str]) -> Any:
    """A copy of a decoded JSON value with :func:`redact_text` applied to every string in it.

    Nesting deeper than :data:`MAX_JSON_DEPTH` is replaced by a marker rather than walked: a
    hostile body cannot make redaction itself fail.
    """
    # One pass over the value as JSON text costs one scan per secret; walking it string by string
    # would cost that for every string, which a large hostile value makes seconds.
    if any(s and _JSON_ESCAPED.search(s) for s in secrets):
        return _redact_json(value, secrets, MAX_JSON_DEPTH)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return _redact_json(value, secrets, MAX_JSON_DEPTH)
    clean = redact_text(text, *secrets)
    if clean != text:
        try:
            value = json.loads(clean)
        except (ValueError, RecursionError):  # a mask that spanned JSON syntax: string by string
            return _redact_json(value, secrets, MAX_JSON_DEPTH)
    return _trimmed(value, MAX_JSON_DEPTH)


MAX_JSON_DEPTH = 64
"""How deep :func:`redact_json` walks; below that a value becomes :data:`TOO_DEEP`."""

TOO_DEEP = "[nested too deep]"


def _trimmed(value: Any, depth: int) -> Any:
    """A copy of ``value`` with what is nested deeper than ``depth`` replaced by the marker."""
    if not isinstance(value, (dict, list)):
        return value
    if depth <= 0:
        return TOO_DEEP
    if isinstance(value, dict):
        return {k: _trimmed(v, depth - 1) for k, v in value.items()}
    return [_trimmed(v, depth - 1) for v in value]


def _redact_json(value: Any, secrets: "tuple[Optional[str], ...]", depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value, *secrets)
    if not isinstance(value, (dict, list)):
        return value
    if depth <= 0:
        return TOO_DEEP
    if isinstance(value, dict):
        return {
            redact_text(str(k), *secrets): _redact_json(v, secrets, depth - 1)
            for k, v in value.items()
        }
    return [_redact_json(v, secrets, depth - 1) for v in value]


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message and exception text before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class RedactingHandler(logging.NullHandler):
    """Sits on the library's top logger, ``blackbox_sync``, and emits nothing: it masks secrets in
    every record logged below that logger, in place, on the record's way up to the handlers of
    the application (a record meets the handlers of its own logger and then of each parent, all
    on the same object, and this one is met before the root logger's)."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RedactingFilter())

    def handle(self, record: logging.LogRecord) -> bool:
        self.filter(record)
        return True


def _pattern_for(secrets: Iterable[str]) -> "Pattern[str]":
    key = tuple(sorted(set(secrets), key=len, reverse=True))
    with _lock:
        pattern = _compiled.get(key)
    if pattern is None:
        pattern = re.compile("|".join(_alternatives(key)))
        with _lock:
            if len(_compiled) > 64:
                _compiled.clear()
            _compiled[key] = pattern
    return pattern


def _forms(secret: str) -> "tuple[str, ...]":
    """The secret as it is, and as it reads percent-encoded in a URL, if that differs."""
    return tuple(dict.fromkeys((secret, quote(secret, safe=""))))


def _alternatives(secrets: Iterable[str]) -> Iterable[str]:
    for secret in secrets:
        for form in _forms(secret):
            escaped = re.escape(form)
            yield escaped if len(secret) >= SHORT_SECRET else rf"(?<![\w]){escaped}(?![\w])"


# Characters json.dumps writes escaped: a secret holding one would not be found in JSON text.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
_lock = threading.Lock()
_remembered: "OrderedDict[str, tuple[str, ...]]" = OrderedDict()
_compiled: "dict[tuple[str, ...], Pattern[str]]" = {}
_BEARER = re.compile(r"(?i)(Bearer)\s+[^\s\"',]+")
# `name=value` as a URL parameter (after `?` or `&`); the unmistakable names also after a space,
# a quote or a bracket, as in prose. `idempotency_key=` does not match `key=`, nor does the
# placeholder in "expects KEY=VALUE".
_ANYWHERE = "|".join(sorted(SECRET_PARAMS - {"key"}))
_SECRET_NAMES = "|".join(sorted(SECRET_PARAMS))
_QUERY_SECRET = re.compile(
    rf"(?i)((?:(?<=[?&])(?:{_SECRET_NAMES})|(?:^|(?<=[\s\"'(]))(?:{_ANYWHERE}))=)[^&\s\"'#),;:]+"
)
