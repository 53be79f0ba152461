"""The attempt's recording keeps turn activity by the protocol state's one rule."""

import pytest

from blackbox_sync.protocol.codec import LooseStr
from blackbox_sync.protocol.messages import (
    Event,
    Message,
    TextMessage,
    ToolCall,
    ToolCallResult,
    ToolRequest,
)
from blackbox_sync.protocol.state import ConversationState, TurnRule, counts_as_activity
from blackbox_sync.qa.attempt.recording import Recorder
from blackbox_sync.qa.results import ms_since

RULE = TurnRule(quiet_period=1.0, fillers=("um",))


@pytest.mark.parametrize(
    ("message", "active"),
    [
        (TextMessage(source=LooseStr("assistant"), text="Hello"), True),
        (TextMessage(source=LooseStr("assistant"), text=" UM "), False),  # a filler
        (
            TextMessage(source=LooseStr("assistant"), text="Hel", kind=LooseStr("potential")),
            False,
        ),  # partial
        (TextMessage(source=LooseStr("user"), text="Hello"), False),  # the user's echo
        (ToolRequest(id=LooseStr("1"), tool_name=LooseStr("lookup")), True),
        (ToolCall(id=LooseStr("1"), tool_name=LooseStr("lookup")), True),
        (ToolCallResult(), True),
        (Event(name=LooseStr("connection")), False),
    ],
)
def test_one_activity_rule_for_the_state_and_the_qa_recording(
    message: Message, active: bool
) -> None:
    assert counts_as_activity(message, RULE) is active
    state = ConversationState(rule=RULE)
    state.receive(message, now=5.0)
    assert (state.turn.last_activity == 5.0) is active
    recorder = Recorder(t0=0.0, rule=RULE)
    recorder.on_frame(message)
    assert (recorder.last_activity(since=0.0) is not None) is active


def test_a_tool_call_frame_holds_a_voice_turn_open() -> None:
    """The service's toolCall moves the turn (the QA copy of the rule once left it out)."""
    recorder = Recorder(t0=0.0, rule=RULE)
    recorder.on_frame(TextMessage(source=LooseStr("assistant"), text="Let me check"))
    first = recorder.last_activity(since=0.0)
    recorder.on_frame(ToolCall(id=LooseStr("7"), tool_name=LooseStr("lookup")))
    last = recorder.last_activity(since=0.0)
    assert first is not None
    assert last is not None
    assert last >= first
    assert [t for t, m in recorder.frames() if isinstance(m, ToolCall)] == [last]


def test_timings_are_milliseconds_to_a_tenth() -> None:
    assert ms_since(1.0, 1.23456) == 234.6
    assert ms_since(1.0, None) is None
