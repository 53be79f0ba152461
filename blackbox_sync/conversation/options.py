"""A conversation's grouped options: :class:`Timeouts` and :class:`Limits` (the end-of-turn rule
is :class:`~blackbox_sync.TurnRule`), each the one place its defaults are written.

``Conversation`` also takes each field as a flat keyword (``connect_timeout=``, ``max_history=``
…), a documented shortcut: :func:`resolve` builds the group from either, and refuses both.
"""

import enum
from typing import Any, Dict, Mapping, Optional, Type, TypeVar, Union

import attrs

from blackbox_sync.errors import UsageError
from blackbox_sync.protocol.state import (
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_HISTORY_BYTES,
    TurnRule,
)
from blackbox_sync.settings import DEFAULT_FILLERS, DEFAULT_QUIET_PERIOD

__all__ = ["UNSET", "Limits", "Timeouts", "Unset", "resolve", "turn_rule"]


def _positive(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{attribute.name} must be more than 0 (got {value!r})")


def _not_negative(instance: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not value >= 0:
        raise UsageError(f"{attribute.name} must not be negative (got {value!r})")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"a timeout must be a number of seconds, not {value!r}")
    return float(value)


def _optional_number(value: Any) -> Optional[float]:
    return None if value is None else _number(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"a limit must be a whole number, not {value!r}")
    return value


def _optional_count(value: Any) -> Optional[int]:
    return None if value is None else _count(value)


@attrs.frozen
class Timeouts:
    """How long a conversation waits, in seconds.

    ``None`` turns ``ping_interval`` (keepalive pings) and ``tool`` (the tool handlers' bound)
    off.
    """

    connect: float = attrs.field(default=15.0, converter=_number, validator=_positive)
    """The opening: TCP, TLS, the handshake, ``initialize`` and the ``connection`` event."""
    close: float = attrs.field(default=5.0, converter=_number, validator=_not_negative)
    """The close handshake, then the wait for running tools."""
    send: float = attrs.field(default=10.0, converter=_number, validator=_positive)
    """One frame's write, against a peer that stopped reading (the connection then breaks)."""
    ping_interval: Optional[float] = attrs.field(
        default=20.0, converter=_optional_number, validator=_positive
    )
    """Quiet seconds before a keepalive ping."""
    ping_timeout: float = attrs.field(default=10.0, converter=_number, validator=_positive)
    """Seconds a keepalive ping may wait for any frame back before the connection counts lost."""
    tool: Optional[float] = attrs.field(
        default=30.0, converter=_optional_number, validator=_positive
    )
    """Seconds a tool handler may take before the service gets an error answer."""


@attrs.frozen
class Limits:
    """The bounds that keep a conversation's memory and frames in check."""

    max_message_size: int = attrs.field(
        default=8 * 1024 * 1024, converter=_count, validator=_positive
    )
    """The largest message accepted from the service, in bytes (a bigger one closes with 1009)."""
    max_frame_bytes: int = attrs.field(default=64 * 1024, converter=_count, validator=_positive)
    """The largest frame this client sends, in bytes (a bigger one is a ``UsageError``)."""
    max_pending_tools: int = attrs.field(default=64, converter=_count, validator=_positive)
    """Tool requests in flight; past it a request is answered with an error at once."""
    max_history: int = attrs.field(
        default=DEFAULT_MAX_HISTORY, converter=_count, validator=_positive
    )
    """Frames kept in ``history``, and in each turn."""
    max_history_bytes: Optional[int] = attrs.field(
        default=DEFAULT_MAX_HISTORY_BYTES, converter=_optional_count, validator=_positive
    )
    """Characters of frame text kept there too (``None``: no byte limit)."""
    tool_workers: int = attrs.field(default=8, converter=_count, validator=_positive)
    """Threads that run tool handlers at once."""


class Unset(enum.Enum):
    """The type of :data:`UNSET`: a flat keyword that was not given (``None`` may be a value)."""

    UNSET = "unset"


UNSET = Unset.UNSET
"""The default of every flat keyword: take the value from the group (or its default)."""

G = TypeVar("G", Timeouts, Limits)


def resolve(
    kind: Type[G], group: Optional[G], keyword: str, flat: Mapping[str, "Union[Any, Unset]"]
) -> G:
    """The ``kind`` option group from ``group`` (given as ``keyword=``) or from the flat
    keywords (``flat`` maps each keyword's name to its field and value); a UsageError when
    both are given."""
    given: Dict[str, Any] = {}
    for name, value in flat.items():
        if value is UNSET:
            continue
        if group is not None:
            raise UsageError(
                f"give {name}= or {keyword}=, not both ({keyword} holds {name}'s value)"
            )
        given[_FIELDS[kind][name]] = value
    if group is not None:
        if not isinstance(group, kind):
            raise UsageError(f"{keyword}= takes a bb.{kind.__name__}, not {group!r}")
        return group
    return kind(**given)


def turn_rule(
    group: Optional[TurnRule],
    quiet_period: "Union[float, Unset]",
    fillers: "Union[Any, Unset]",
) -> TurnRule:
    """The end-of-turn rule from ``turn_rule=`` or from ``quiet_period=`` and ``fillers=``."""
    flat = {"quiet_period": quiet_period, "fillers": fillers}
    if group is not None:
        given = [name for name, value in flat.items() if value is not UNSET]
        if given:
            raise UsageError(f"give {given[0]}= or turn_rule=, not both")
        if not isinstance(group, TurnRule):
            raise UsageError(f"turn_rule= takes a bb.TurnRule, not {group!r}")
        return group
    try:
        return TurnRule(
            quiet_period=DEFAULT_QUIET_PERIOD if quiet_period is UNSET else quiet_period,
            fillers=DEFAULT_FILLERS if fillers is UNSET else fillers,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


_FIELDS: Dict[type, Dict[str, str]] = {
    Timeouts: {
        "connect_timeout": "connect",
        "close_timeout": "close",
        "send_timeout": "send",
        "ping_interval": "ping_interval",
        "ping_timeout": "ping_timeout",
        "tool_timeout": "tool",
    },
    Limits: {name: name for name in attrs.fields_dict(Limits)},
}
"""Each flat keyword of ``Conversation`` → its field in the group."""
