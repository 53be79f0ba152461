"""Real WebRTC voice calls between the client's VoiceCall and the emulator, over loopback.

Both sides run aiortc: the emulator offers a live-looking SDP (RTP/SAVP, G.711, DTLS-SRTP),
the client answers after gathering, and audio goes both ways through G.711. Recordings are
checked by duration and by normalized cross-correlation with the generated source.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

pytest.importorskip("aiortc", reason="voice calls need the 'voice' extra (aiortc)")
np = pytest.importorskip("numpy", reason="the recordings are compared with numpy")


from testkit import ROOT  # noqa: E402

import blackbox_sync as bb  # noqa: E402
from blackbox_sync.testing import (  # noqa: E402
    CallTool,
    Emulator,
    EmulatorVoice,
    Rule,
    ScriptedAgent,
)
from blackbox_sync.voice import (  # noqa: E402
    SAMPLE_RATE,
    AudioSource,
    CallState,
    VoiceCall,
    VoiceError,
    WavSequence,
    WavSource,
    level_dbfs,
    load_audio,
    sweep,
    tone,
    write_wav,
)

# G.711 keeps a sweep's waveform to within about 38 dB SNR; 0.9 leaves room for jitter-buffer
# and packet-boundary effects while still failing on anything but the same signal.
MIN_CORRELATION = 0.9
FRAME = SAMPLE_RATE // 50  # 20 ms


def best_match(recording: bytes, source: bytes) -> Tuple[float, float]:
    """(peak normalized cross-correlation, offset in seconds) of ``source`` in ``recording``."""
    x = np.frombuffer(recording, "<i2").astype(np.float64)
    s = np.frombuffer(source, "<i2").astype(np.float64)
    n = len(s)
    if len(x) < n:
        x = np.concatenate([x, np.zeros(n - len(x))])
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    num = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(s, size)), size)
    num = num[: len(x) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    window = energy[n:] - energy[:-n]
    reference = float(s @ s)
    # Near-silent windows would divide rounding noise by almost nothing: they cannot match.
    ncc = np.where(
        window > 0.01 * reference, num / np.sqrt(np.maximum(window, 1e-9) * reference), 0
    )
    best = int(np.argmax(ncc))
    return float(ncc[best]), best / SAMPLE_RATE


def active_seconds(pcm: bytes, start: float, length: float, threshold_db: float = -45.0) -> float:
    """Seconds from the first to the last 20 ms frame above ``threshold_db`` around a match."""
    lo = max(0, int((start - 0.2) * SAMPLE_RATE))
    hi = int((start + length + 0.2) * SAMPLE_RATE)
    samples = pcm[lo * 2 : hi * 2]
    loud = [
        i
        for i in range(0, len(samples) // 2 - FRAME + 1, FRAME)
        if level_dbfs(samples[i * 2 : (i + FRAME) * 2]) > threshold_db
    ]
    return 0.0 if not loud else (loud[-1] - loud[0] + FRAME) / SAMPLE_RATE


@pytest.fixture
def voice() -> EmulatorVoice:
    return EmulatorVoice(greeting=sweep(500, 1500, 1.5))


@pytest.fixture
def voice_emulator(voice: EmulatorVoice) -> Iterator[Emulator]:
    agent = ScriptedAgent(
        [Rule("order", "It shipped yesterday."), Rule("thanks", "Bye!", end_conversation=True)],
        greeting="Hello! How can I help?",
    )
    with Emulator(agent, voice=voice) as emu:
        yield emu


def web_call(emu: Emulator) -> bb.Conversation:
    return bb.Conversation(
        token=emu.token, base_url=emu.base_url, call_type="webCall", quiet_period=0.25
    )


def test_round_trip_audio_both_ways(
    voice_emulator: Emulator, voice: EmulatorVoice, tmp_path: Path
) -> None:
    """The done-means test: each side records the other's generated audio, and it ends clean."""
    question = sweep(1800, 600, 2.0)
    write_wav(tmp_path / "question.wav", question)
    started = time.monotonic()
    conv = web_call(voice_emulator)
    call = VoiceCall(conv, audio=WavSource(tmp_path / "question.wav"), record=tmp_path / "a.wav")
    with conv:
        call.wait_connected(timeout=10)
        call.wait_done(timeout=10)  # the question went out in full
        reply = call.wait_for_reply(timeout=10)  # the agent's answer to it
        result = conv.terminate(timeout=10)
    assert result is not None
    assert result.status == "Completed"
    assert call.state is CallState.ENDED
    state: str = call.state
    assert state == "ended"  # a str, as the docs compared it before
    assert reply.text == "You said: (user audio 2.0 s)"
    assert reply.latency is not None
    assert 0.3 < reply.latency < 3.0

    heard = voice.wait_for_call(timeout=10)
    assert heard.connected
    assert heard.ended
    assert not heard.errors
    assert "RTP/SAVP" in heard.offer
    assert "a=mid" not in heard.offer
    assert heard.answer is not None
    assert "m=audio" in heard.answer
    # The emulator got the client's question: found by correlation, and as long as it was.
    heard_corr, at = best_match(heard.received, question)
    assert heard_corr > MIN_CORRELATION, heard_corr
    heard_seconds = active_seconds(heard.received, at, 2.0)
    assert abs(heard_seconds - 2.0) < 0.1
    [utterance] = heard.utterances
    assert abs((utterance.end - utterance.start) / SAMPLE_RATE - 2.0) < 0.1

    # The client recorded the emulator's greeting, in the WAV file too.
    recorded = load_audio(tmp_path / "a.wav")
    assert abs(len(recorded) - len(call.agent_audio)) <= 2 * FRAME * 2
    recorded_corr, at = best_match(recorded, voice.greeting or b"")
    assert recorded_corr > MIN_CORRELATION, recorded_corr
    recorded_seconds = active_seconds(recorded, at, 1.5)
    assert abs(recorded_seconds - 1.5) < 0.1
    assert time.monotonic() - started < 20
    print(
        f"\nquestion heard: r={heard_corr:.4f}, {heard_seconds:.2f} s; greeting recorded: "
        f"r={recorded_corr:.4f}, {recorded_seconds:.2f} s; reply latency {reply.latency:.3f} s"
    )


def test_turns_latency_and_agent_hangup(voice: EmulatorVoice, tmp_path: Path) -> None:
    """ask() per user turn: texts, latency; the agent ends the call, the socket drops (1006)."""
    voice.transcribe = ["where is my order", "thanks"]
    voice.profile = "UDP/TLS/RTP/SAVPF"  # aiortc's own offer: mid, BUNDLE, SAVPF
    agent = ScriptedAgent(
        [Rule("order", "It shipped yesterday."), Rule("thanks", "Bye!", end_conversation=True)],
        greeting="Hi!",
    )
    with Emulator(agent, voice=voice) as emu:
        conv = web_call(emu)
        call = VoiceCall(conv, record_turns=str(tmp_path / "turn-{turn}.wav"), reply_silence=0.5)
        with conv:
            greeting = call.wait_for_reply(timeout=10)
            order = call.ask(tone(440, 0.6), timeout=10)
            bye = call.ask(tone(660, 0.6), timeout=10)
            call.wait_ended(timeout=10)
        assert conv.result is not None
        assert conv.result.status == "Completed"
        assert conv.close_code in (None, 1006)
    assert "UDP/TLS/RTP/SAVPF" in (call.answer_sdp or "")
    assert "a=mid:" in (call.answer_sdp or "")
    assert greeting.index == 0
    assert greeting.text == "Hi!"
    assert order.text == "It shipped yesterday."
    assert order.user_texts == ["where is my order"]
    assert bye.text == "Bye!"
    for turn in (greeting, order, bye):
        assert turn.latency is not None, turn
        assert 0.0 < turn.latency < 3.0, turn
    # Each answer came after the emulator heard 0.6 s of silence at the end of the clip.
    assert order.latency is not None
    assert order.latency > voice.end_silence
    files = sorted(p.name for p in tmp_path.glob("turn-*.wav"))
    assert files == ["turn-0.wav", "turn-1.wav", "turn-2.wav"]
    assert [t.index for t in call.turns] == [0, 1, 2]


class Generated(AudioSource):
    """A user-written source: PCM handed out 20 ms at a time, as a TTS stream would."""

    name = "generated"

    def __init__(self, pcm: bytes) -> None:
        self._chunks = iter([pcm[i : i + FRAME * 2] for i in range(0, len(pcm), FRAME * 2)])
        self.exhausted = False

    def read(self, samples: int) -> Optional[bytes]:
        chunk = next(self._chunks, None)
        self.exhausted = chunk is None
        return chunk


def test_a_clip_sequence_with_a_source_of_ones_own_and_a_tool_mid_call(
    voice: EmulatorVoice, tmp_path: Path
) -> None:
    """One clip per turn (a user-written source, then a WAV file); the agent calls a
    client-side tool during the call, and its result reaches the spoken reply."""
    voice.transcribe = ["where is my order", "thanks"]
    agent = ScriptedAgent(
        [
            Rule(
                "order",
                "It is {result[status]}.",
                tools=[CallTool("checkOrderStatus", {"orderNumber": "ORD-1"})],
            ),
            Rule("thanks", "Bye!", end_conversation=True),
        ],
        greeting="Hi!",
    )
    write_wav(tmp_path / "thanks.wav", tone(660, 0.6))
    first = Generated(tone(440, 0.8))
    with Emulator(agent, voice=voice) as emu:
        conv = web_call(emu)
        asked: List[str] = []

        @conv.tool
        def checkOrderStatus(orderNumber: str) -> Dict[str, str]:
            asked.append(orderNumber)
            return {"status": "shipped"}

        call = VoiceCall(
            conv, audio=WavSequence([first, tmp_path / "thanks.wav"]), reply_silence=0.5
        )
        with conv:
            call.wait_ended(timeout=20)
        assert conv.result is not None
        assert conv.result.status == "Completed"
    assert asked == ["ORD-1"]
    assert first.exhausted
    assert [t.text for t in call.turns] == ["Hi!", "It is shipped.", "Bye!"]
    heard = voice.wait_for_call(timeout=10)
    lengths = [(u.end - u.start) / SAMPLE_RATE for u in heard.utterances]
    assert len(lengths) == 2, lengths
    assert abs(lengths[0] - 0.8) < 0.1, lengths
    assert abs(lengths[1] - 0.6) < 0.1, lengths


def test_server_drop_ends_the_call(voice_emulator: Emulator) -> None:
    conv = web_call(voice_emulator)
    call = VoiceCall(conv)
    with conv:
        call.wait_connected(timeout=10)
        assert voice_emulator.drop_connection() == 1
        call.wait_ended(timeout=10)
        with pytest.raises(VoiceError):
            call.play(tone(440, 0.2))
    assert call.state == "ended"
    call.close()  # idempotent after the conversation closed it


def test_attach_after_connect_answers_from_history(voice_emulator: Emulator) -> None:
    conv = web_call(voice_emulator).connect(timeout=5)
    try:
        conv_invites = [m for m in conv.history if isinstance(m, bb.SdpInvite)]
        call = VoiceCall(conv)
        call.wait_connected(timeout=10)
        assert conv_invites or call.offer_sdp
        turn = call.wait_for_reply(timeout=10)
        assert turn.text == "Hello! How can I help?"
    finally:
        conv.close()
    assert call.state == "ended"


def test_unusable_offer_fails_the_call_not_the_conversation() -> None:
    """Without voice mode the emulator sends a fake offer (no ICE, no DTLS): the call fails
    with a clear error, and the chat side goes on."""
    with Emulator(ScriptedAgent()) as emu:
        conv = web_call(emu)
        call = VoiceCall(conv)
        with conv:
            with pytest.raises(VoiceError, match=r"ICE|offer"):
                call.wait_connected(timeout=10)
            assert call.state is CallState.FAILED
            assert conv.ask("hello", timeout=5).text == "You said: hello"


def test_import_blackbox_sync_does_not_load_aiortc() -> None:
    code = (
        "import sys, blackbox_sync, blackbox_sync.voice, blackbox_sync.testing.voice;"
        "assert 'aiortc' not in sys.modules and 'av' not in sys.modules, 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_example_script_runs_against_the_emulator(tmp_path: Path) -> None:
    example = ROOT / "examples" / "voice_call.py"
    done = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "turn 1:" in done.stdout
    assert "result: Completed" in done.stdout
    assert (tmp_path / "voice-out" / "agent.wav").stat().st_size > 1000
