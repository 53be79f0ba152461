"""The close handshake's named states: the moves allowed, and a refused one changes nothing."""

import pytest

from blackbox_sync.transport.closing import CloseHandshake, CloseState


def test_a_connection_starts_open_and_may_send() -> None:
    handshake = CloseHandshake()
    assert handshake.state is CloseState.OPEN
    assert handshake.open
    assert (handshake.deadline, handshake.broken_reason) == (None, None)


def test_close_sent_then_closed() -> None:
    handshake = CloseHandshake()
    assert handshake.move(CloseState.CLOSE_SENT)
    assert not handshake.open
    assert not handshake.move(CloseState.CLOSE_SENT)  # a second close sends nothing more
    assert not handshake.move(CloseState.OPEN)
    assert handshake.move(CloseState.CLOSED)
    assert str(handshake.state) == "closed"


def test_a_send_may_break_a_closing_connection_and_the_first_reason_stays() -> None:
    handshake = CloseHandshake()
    handshake.move(CloseState.CLOSE_SENT)
    assert handshake.move(CloseState.BROKEN, reason="peer not reading")
    assert not handshake.move(CloseState.BROKEN, reason="another")
    assert handshake.broken_reason == "peer not reading"
    assert not handshake.move(CloseState.CLOSE_SENT)  # no close frame after a half-written one


@pytest.mark.parametrize("to", list(CloseState))
def test_closed_is_final(to: CloseState) -> None:
    handshake = CloseHandshake()
    handshake.move(CloseState.CLOSED)
    assert not handshake.move(to)
    assert handshake.state is CloseState.CLOSED
