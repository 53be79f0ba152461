"""The opt-in reconnect policy: a dropped conversation is replaced by a NEW one, and says so."""

import threading
from typing import List

import pytest

import blackbox_sync as bb
from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

FAST = bb.ReconnectPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, jitter=0)


def test_backoff_doubles_up_to_the_cap_with_jitter_in_bounds() -> None:
    policy = bb.ReconnectPolicy()
    assert [policy.delay(n, rand=lambda: 0.5) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    low = policy.delay(3, rand=lambda: 0.0)
    high = policy.delay(3, rand=lambda: 0.999999)
    assert low == pytest.approx(3.6)
    assert high == pytest.approx(4.4, abs=1e-4)
    with pytest.raises(ValueError, match="initial_delay"):
        bb.ReconnectPolicy(initial_delay=0)


def test_a_drop_opens_a_new_conversation_and_fires_reconnected(emulator: Emulator) -> None:
    emulator.default_agent = ScriptedAgent([Rule("hold", steps=[])], default="ok")
    conv = bb.Conversation(
        token=emulator.token, base_url=emulator.base_url, quiet_period=0.05, reconnect=FAST
    )
    events: List[bb.Reconnected] = []
    reconnected = threading.Event()

    @conv.on("reconnected")
    def note(event: bb.Reconnected) -> None:
        events.append(event)
        reconnected.set()

    with conv:
        first = conv.record_id
        emulator.drop_next_connection_after(1, direction="client")
        with pytest.raises(bb.ConnectionClosedError):
            conv.ask("hold", timeout=5)  # the turn in flight is lost, never silently resumed
        assert reconnected.wait(5)
        assert conv.ask("hello again", timeout=5).text == "ok"
        assert conv.record_id != first
    (event,) = events
    assert (event.attempt, event.previous_record_id, event.record_id) == (1, first, conv.record_id)
    assert len(emulator.conversations) == 2
    assert conv.closed


def test_no_reconnect_after_a_normal_end_or_close(emulator: Emulator) -> None:
    emulator.default_agent = ScriptedAgent([Rule("bye", "Bye", end_conversation=True)])
    conv = bb.Conversation(
        token=emulator.token, base_url=emulator.base_url, quiet_period=0.05, reconnect=FAST
    )
    events: List[bb.Message] = []
    conv.on(bb.Reconnected, events.append)
    with conv:
        conv.ask("bye", timeout=5)
    assert not events
    assert len(emulator.conversations) == 1


def test_giving_up_is_reported(emulator: Emulator) -> None:
    conv = bb.Conversation(
        token=emulator.token, base_url=emulator.base_url, quiet_period=0.05, reconnect=FAST
    )
    errors: List[bb.BlackBoxError] = []
    gave_up = threading.Event()

    def collect(error: bb.BlackBoxError) -> None:
        errors.append(error)
        if "gave up" in str(error):
            gave_up.set()

    conv.on_error(collect)
    conv.connect(timeout=5)
    emulator.remove_token(emulator.token)  # every new attempt is refused
    emulator.drop_connection()
    assert gave_up.wait(10)
    conv.close()
    assert sum(isinstance(e, bb.AuthenticationError) for e in errors) == FAST.max_attempts
    assert conv.phase is bb.Phase.ENDED


def test_close_during_backoff_returns_promptly(emulator: Emulator) -> None:
    slow = bb.ReconnectPolicy(initial_delay=30, max_delay=30)
    conv = bb.Conversation(
        token=emulator.token, base_url=emulator.base_url, reconnect=slow, close_timeout=1
    )
    closed = threading.Event()
    conv.on_close(lambda code, reason: closed.set())
    conv.connect(timeout=5)
    emulator.drop_connection()
    assert closed.wait(5)
    conv.close()  # the reader is waiting out a 30 s backoff: close() must cut it short
    assert conv.closed
