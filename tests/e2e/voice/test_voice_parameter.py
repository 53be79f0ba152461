"""``Conversation(voice=VoiceCall(...))``: the call attaches itself and implies ``webCall``."""

from typing import Iterator

import pytest

pytest.importorskip("aiortc", reason="voice calls need the 'voice' extra (aiortc)")

import blackbox_sync as bb
from blackbox_sync.testing import Emulator, EmulatorVoice, ScriptedAgent
from blackbox_sync.voice import sweep


@pytest.fixture
def voice_emulator() -> Iterator[Emulator]:
    agent = ScriptedAgent(greeting="Hello!")
    with Emulator(agent, voice=EmulatorVoice(greeting=sweep(500, 1500, 0.5))) as emu:
        yield emu


def test_voice_parameter_attaches_the_call_and_picks_webcall(voice_emulator: Emulator) -> None:
    call = bb.VoiceCall()
    conv = bb.Conversation(
        token=voice_emulator.token, base_url=voice_emulator.base_url, voice=call, quiet_period=0.2
    )
    assert conv.call_type == "webCall"
    assert conv.voice is call
    with conv:
        greeting = call.wait_for_reply(timeout=10)
    assert greeting.text == "Hello!"
    assert greeting.audio
    init = voice_emulator.conversations[-1].client_frames[0]
    assert init["request"]["callType"] == "webCall"
    assert voice_emulator.conversations[-1].client_frames[1]["type"] == "sdpAnswer"
