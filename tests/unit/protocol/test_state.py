"""Layer 2: the end-of-turn rule and the conversation phases, driven by a fake clock."""

from typing import Optional, cast

import pytest
from testkit import phase_now

import blackbox_sync as bb
from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.state import ConversationState, TurnRule


def assistant(text: str, kind: Optional[str] = None) -> bb.TextMessage:
    loose_kind = None if kind is None else LooseStr(kind)
    return bb.TextMessage(source=LooseStr("assistant"), text=text, kind=loose_kind)


def ready_state(quiet: float = 1.5) -> ConversationState:
    state = ConversationState(rule=TurnRule(quiet_period=quiet))
    state.receive(bb.Event(name=LooseStr("connection"), data={"recordId": "r-1"}), 0.0)
    state.begin_turn(10.0)
    return state


def test_phases_and_record_id() -> None:
    state = ConversationState()
    assert state.phase is bb.Phase.CONNECTING
    state.receive(bb.Event(name=LooseStr("connection"), data={"jobId": "j-9"}), 0.0)
    assert (state.phase, state.record_id) == (bb.Phase.READY, "j-9")
    state.receive(bb.ConversationResult(status=LooseStr("Completed")), 1.0)
    assert phase_now(state) is bb.Phase.ENDED
    assert state.ended_normally


def test_turn_completes_after_the_quiet_period_following_the_last_text() -> None:
    state = ready_state()
    state.receive(assistant("Got it."), 10.2)
    state.receive(assistant("Which dates?"), 11.0)
    assert state.turn_end(12.4) is None
    assert state.wake_at() == pytest.approx(12.5)
    assert state.turn_end(12.5) is bb.TurnEnd.QUIET
    reply = state.reply(12.5, bb.TurnEnd.QUIET)
    assert reply.text == "Got it. Which dates?"
    assert reply.texts == ["Got it.", "Which dates?"]
    assert reply.latency == pytest.approx(0.2)
    assert reply.duration == pytest.approx(2.5)


def test_no_reply_text_means_no_completion_however_long_the_wait() -> None:
    state = ready_state()
    state.receive(bb.TextMessage(source=LooseStr("user"), text="hello"), 10.1)
    assert state.turn_end(100.0) is None
    assert state.wake_at() is None


def test_fillers_and_partials_are_not_reply_text_and_do_not_extend_the_turn() -> None:
    state = ready_state()
    state.receive(assistant("um"), 10.1)
    state.receive(assistant(" UM "), 10.2)
    assert state.turn_end(50.0) is None
    state.receive(assistant("Your order", kind="potential"), 10.3)
    assert state.turn_end(50.0) is None
    state.receive(assistant("Your order shipped."), 10.5)
    state.receive(assistant("um"), 11.9)
    assert state.turn_end(12.0) is bb.TurnEnd.QUIET
    reply = state.reply(12.0, bb.TurnEnd.QUIET)
    assert reply.text == "Your order shipped."
    assert reply.latency == pytest.approx(0.1)
    assert len(reply.messages) == 5


def test_custom_fillers() -> None:
    state = ConversationState(rule=TurnRule(quiet_period=1.0, fillers=("hmm", "let me see")))
    state.begin_turn(0.0)
    state.receive(assistant("Let me see"), 0.1)
    state.receive(assistant("um"), 0.2)
    assert state.turn.texts == ["um"]


def test_outstanding_tool_requests_hold_the_turn_open() -> None:
    state = ready_state()
    state.receive(assistant("Let me check."), 10.1)
    state.receive(bb.ToolRequest(id="t1", tool_name="check", args={}), 10.2)
    assert state.turn_end(30.0) is None
    state.tool_answered("t1", 30.0)
    assert state.turn_end(31.0) is None
    assert state.turn_end(31.5) is bb.TurnEnd.QUIET


def test_a_repeated_tool_request_does_not_wait_for_a_second_answer() -> None:
    state = ready_state()
    state.receive(bb.ToolRequest(id="t1", tool_name="check"), 10.0)
    state.tool_answered("t1", 10.1)
    state.receive(bb.ToolRequest(id="t1", tool_name="check"), 10.2)
    state.receive(assistant("Done."), 10.3)
    assert state.turn_end(11.8) is bb.TurnEnd.QUIET


def test_tool_call_result_counts_as_activity() -> None:
    state = ready_state()
    state.receive(assistant("Checking"), 10.0)
    state.receive(bb.ToolCallResult(id=LooseStr("t1")), 11.0)
    assert state.turn_end(12.0) is None
    assert state.turn_end(12.5) is bb.TurnEnd.QUIET


def test_per_call_quiet_period() -> None:
    state = ready_state()
    state.receive(assistant("Hi"), 10.0)
    assert state.turn_end(10.3, quiet_period=0.25) is bb.TurnEnd.QUIET
    assert state.turn_end(10.3) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (bb.ConversationResult(status=LooseStr("Completed")), bb.TurnEnd.CONVERSATION_RESULT),
        (bb.Event(name=LooseStr("closed")), bb.TurnEnd.CLOSED_EVENT),
        (bb.ErrorMessage(message=LooseStr("Too large message")), bb.TurnEnd.ERROR),
    ],
)
def test_end_signals_complete_the_turn_at_once(message: bb.Message, reason: bb.TurnEnd) -> None:
    state = ready_state()
    state.receive(bb.ToolRequest(id="t1", tool_name="x"), 10.0)
    state.receive(message, 10.1)
    assert state.turn_end(10.1) is reason
    assert state.wake_at() is not None


def test_socket_close_completes_the_turn_and_ends_the_conversation() -> None:
    state = ready_state()
    state.closed(None, "")
    assert state.turn_end(10.0) is bb.TurnEnd.SOCKET_CLOSED
    assert state.phase is bb.Phase.ENDED
    assert not state.ended_normally


def test_result_before_the_close_is_a_normal_end() -> None:
    state = ready_state()
    state.receive(assistant("Bye"), 10.0)
    state.receive(bb.ConversationResult(status=LooseStr("Completed")), 10.1)
    state.closed(1006, "")
    assert state.turn_end(10.2) is bb.TurnEnd.CONVERSATION_RESULT
    assert state.ended_normally
    reply = state.reply(10.2, bb.TurnEnd.CONVERSATION_RESULT)
    assert reply.ended
    assert reply.result is state.result


def test_an_error_ends_only_its_own_turn() -> None:
    state = ready_state()
    state.receive(bb.ErrorMessage(message=LooseStr("Too large message")), 10.0)
    assert state.turn_end(10.0) is bb.TurnEnd.ERROR
    state.begin_turn(11.0)
    assert state.turn_end(11.0) is None
    assert state.error is not None


def test_failed_open_ends_the_conversation_with_an_error() -> None:
    state = ConversationState()
    state.receive(bb.Event(name=LooseStr("failedOpen"), data={"reason": "agent disabled"}), 0.0)
    assert state.phase is bb.Phase.ENDED
    assert state.error is not None
    assert "agent disabled" in state.error.message


def test_greeting_before_the_first_turn_belongs_to_the_opening_turn() -> None:
    state = ConversationState(rule=TurnRule(quiet_period=1.0))
    state.receive(bb.Event(name=LooseStr("connection")), 0.0)
    state.receive(assistant("Hello! How can I help?"), 0.5)
    assert state.turn_end(1.5) is bb.TurnEnd.QUIET
    state.begin_turn(2.0)
    assert state.turn.texts == []


def test_turn_rule_validation() -> None:
    with pytest.raises(ValueError, match="quiet_period"):
        TurnRule(quiet_period=-1)
    assert TurnRule(fillers=["Um ", "UH"]).fillers == ("uh", "um")


def test_texts_before_the_echo_finish_the_previous_turn() -> None:
    state = ConversationState(rule=TurnRule(quiet_period=1.0))
    state.receive(bb.Event(name=LooseStr("connection")), 5.0)
    state.receive(assistant("Hello!"), 5.2)
    state.begin_turn(5.3, "where is my order?")
    state.receive(assistant("How can I help?"), 5.4)  # the greeting's second half
    state.receive(bb.TextMessage(source=LooseStr("user"), text="where is my order?"), 5.5)
    assert state.turn_end(7.0) is None
    state.receive(assistant("It shipped."), 6.0)
    reply = state.reply(7.0, bb.TurnEnd.QUIET)
    assert state.turn_end(7.0) is bb.TurnEnd.QUIET
    assert reply.text == "It shipped."
    assert reply.latency == pytest.approx(0.7)


def test_without_an_echo_nothing_is_dropped() -> None:
    state = ready_state()
    state.begin_turn(10.0, "hi")
    state.receive(assistant("Hello there."), 10.1)
    state.receive(bb.TextMessage(source=LooseStr("user"), text="something else"), 10.2)
    assert state.turn.texts == ["Hello there."]


def test_the_opening_turn_is_timed_from_the_connection_event() -> None:
    state = ConversationState()
    state.receive(bb.Event(name=LooseStr("connection")), 100.0)
    state.receive(assistant("Hi!"), 100.4)
    assert state.reply(102.0, bb.TurnEnd.QUIET).latency == pytest.approx(0.4)


def test_history_and_turn_keep_a_byte_budget_oldest_first() -> None:
    state = ConversationState(max_history_bytes=1000)
    state.receive(bb.Event(name=LooseStr("connection")), 0.0, size=10)
    for i in range(20):
        state.receive(assistant(f"{i:02d}" + "x" * 298), float(i), size=300)
    assert [cast(bb.TextMessage, m).text for m in state.history] == [
        f"{i:02d}" + "x" * 298 for i in (17, 18, 19)
    ]
    assert len(state.turn.messages) == 3
    assert sum(len(t) for t in state.turn.texts) <= 1000
    assert state.turn.texts[-1].startswith("19")


def test_a_frame_larger_than_the_budget_is_still_the_newest_kept() -> None:
    state = ConversationState(max_history_bytes=100)
    state.receive(assistant("small"), 0.0, size=20)
    state.receive(assistant("y" * 500), 1.0, size=520)
    assert [cast(bb.TextMessage, m).text for m in state.history] == ["y" * 500]
    state.sent(bb.IncomingChatMessage("hi"), size=30)
    assert len(state.history) == 1  # the big one went once the budget needed room


def test_answered_tool_ids_are_bounded() -> None:
    state = ready_state()
    for i in range(5000):
        state.tool_answered(f"t-{i}", float(i))
    state.tool_answered("x" * 100_000, 1.0)
    assert len(state.answered_tools) <= 1024
    assert "t-4999" in state.answered_tools
    assert "t-0" not in state.answered_tools
    assert "x" * 100_000 in state.answered_tools
