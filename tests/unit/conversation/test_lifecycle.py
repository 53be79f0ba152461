"""The named states of a conversation: the object's Lifecycle and the service's Phase."""

import pytest

import blackbox_sync as bb
from blackbox_sync.conversation.lifecycle import Lifecycle, is_closing, move
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.state import ConversationState

URL = "ws://127.0.0.1:9/ws"


def test_the_lifecycle_runs_one_way() -> None:
    state = Lifecycle.NEW
    for to in (Lifecycle.CONNECTING, Lifecycle.OPEN, Lifecycle.CLOSING, Lifecycle.CLOSED):
        state, moved = move(state, to)
        assert (moved, state) == (True, to)
    assert move(Lifecycle.CLOSED, Lifecycle.CONNECTING) == (Lifecycle.CLOSED, False)
    assert move(Lifecycle.OPEN, Lifecycle.CONNECTING) == (Lifecycle.OPEN, False)
    assert move(Lifecycle.CLOSING, Lifecycle.CLOSING) == (Lifecycle.CLOSING, False)
    assert [s for s in Lifecycle if is_closing(s)] == [Lifecycle.CLOSING, Lifecycle.CLOSED]


def test_a_conversation_closed_before_connect_cannot_connect() -> None:
    conv = bb.Conversation(url=URL)
    assert not conv.closed
    conv.close()
    conv.close()  # idempotent
    assert conv.closed
    with pytest.raises(bb.UsageError, match="already called"):
        conv.connect(timeout=1)


def test_the_phase_moves_only_forward() -> None:
    state = ConversationState()
    assert not state.enter(bb.Phase.CONNECTING)
    assert state.enter(bb.Phase.READY)
    assert not state.enter(bb.Phase.READY)
    assert state.enter(bb.Phase.ENDED)
    assert not state.enter(bb.Phase.READY)  # an ended conversation never opens again
    state.receive(bb.Event(name=LooseStr("connection"), data={"recordId": "r-2"}), 1.0)
    assert state.phase is bb.Phase.ENDED
    assert [str(p) for p in bb.Phase] == ["connecting", "ready", "ended"]
