"""The opt-in reconnect policy: after an unexpected drop, open a NEW conversation, with backoff.

A BlackBox conversation cannot be resumed (one conversation per socket, PROTOCOL.md §5), so a
reconnect always starts over; the conversation says so with a :class:`~.messages.Reconnected`
event, and a turn that was waiting when the socket dropped fails as it would without a policy.
"""

import random
from typing import Any, Callable

import attrs


def _positive(_: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class ReconnectPolicy:
    """Exponential backoff: ``initial_delay`` × ``multiplier`` ** (attempt − 1), capped at
    ``max_delay``, spread by ±``jitter`` (a fraction) so many clients do not retry in step.
    The documented recovery is 1 s → 2 s → 4 s, at most 30 s."""

    max_attempts: int = attrs.field(default=5, validator=_positive)
    initial_delay: float = attrs.field(default=1.0, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(
        default=0.1, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.lt(1))
    )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return min(self.max_delay, base * (1 + self.jitter * (2 * rand() - 1)))
