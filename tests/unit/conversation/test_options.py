"""The grouped options (bb.Timeouts, bb.Limits, bb.TurnRule) and their flat shortcuts."""

from typing import Any

import attrs
import pytest

import blackbox_sync as bb
from blackbox_sync import settings

URL = "ws://127.0.0.1:9/ws"  # never connected: these tests only build the object


def test_the_defaults_are_written_once_and_read_back_flat() -> None:
    conv = bb.Conversation(url=URL)
    assert conv.timeouts == bb.Timeouts()
    assert conv.limits == bb.Limits()
    assert (conv.connect_timeout, conv.close_timeout, conv.send_timeout) == (15.0, 5.0, 10.0)
    assert (conv.ping_interval, conv.ping_timeout) == (20.0, 10.0)
    assert (conv.max_history, conv.max_frame_bytes) == (10_000, 64 * 1024)
    assert conv.turn_rule == bb.TurnRule()
    assert conv.turn_rule.fillers == settings.DEFAULT_FILLERS
    assert conv.turn_rule.quiet_period == settings.DEFAULT_QUIET_PERIOD


def test_a_group_and_its_flat_keywords_give_the_same_conversation() -> None:
    grouped = bb.Conversation(
        url=URL,
        timeouts=bb.Timeouts(connect=2, close=1, ping_interval=None, tool=None),
        limits=bb.Limits(max_history=5, max_history_bytes=None, tool_workers=2),
        turn_rule=bb.TurnRule(quiet_period=0.5, fillers=("uh",)),
    )
    flat = bb.Conversation(
        url=URL,
        connect_timeout=2,
        close_timeout=1,
        ping_interval=None,
        tool_timeout=None,
        max_history=5,
        max_history_bytes=None,
        tool_workers=2,
        quiet_period=0.5,
        fillers=("uh",),
    )
    assert (grouped.timeouts, grouped.limits, grouped.turn_rule) == (
        flat.timeouts,
        flat.limits,
        flat.turn_rule,
    )
    assert grouped.ping_interval is None
    assert grouped.timeouts.connect == 2.0


@pytest.mark.parametrize(
    ("flat", "group"),
    [
        ({"connect_timeout": 1}, {"timeouts": bb.Timeouts()}),
        ({"ping_interval": None}, {"timeouts": bb.Timeouts()}),
        ({"max_history": 3}, {"limits": bb.Limits()}),
        ({"fillers": ("uh",)}, {"turn_rule": bb.TurnRule()}),
    ],
)
def test_a_flat_keyword_and_its_group_together_are_refused(
    flat: "dict[str, Any]", group: "dict[str, Any]"
) -> None:
    (name,) = flat
    (keyword,) = group
    with pytest.raises(bb.UsageError, match=f"{name}= or {keyword}="):
        bb.Conversation(url=URL, **flat, **group)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: bb.Timeouts(connect=0), "connect must be more than 0"),
        (lambda: bb.Timeouts(close=-1), "close must not be negative"),
        (lambda: bb.Timeouts(send="10"), "number of seconds"),
        (lambda: bb.Timeouts(tool=True), "number of seconds"),
        (lambda: bb.Limits(max_history=0), "max_history must be more than 0"),
        (lambda: bb.Limits(max_history_bytes=0), "max_history_bytes"),
        (lambda: bb.Limits(tool_workers=1.5), "whole number"),
        (lambda: bb.Conversation(url=URL, max_history=0), "max_history"),
        (lambda: bb.Conversation(url=URL, quiet_period=-1), "quiet_period"),
        (
            lambda: bb.Conversation(url=URL, timeouts={"connect": 1}),  # type: ignore[arg-type]
            "takes a bb.Timeouts",
        ),
        (
            lambda: bb.Conversation(url=URL, turn_rule=1.5),  # type: ignore[arg-type]
            "takes a bb.TurnRule",
        ),
    ],
)
def test_bad_options_are_usage_errors(make: Any, match: str) -> None:
    with pytest.raises(bb.UsageError, match=match):
        make()


def test_option_groups_are_frozen() -> None:
    timeouts = bb.Timeouts()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        timeouts.connect = 1  # type: ignore[misc]
    assert attrs.evolve(timeouts, connect=1).connect == 1.0
