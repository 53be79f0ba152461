"""The voice package's pure parts: SDP rewriting, audio helpers, turn tracking (no network)."""

import asyncio
import importlib.util
import math
import shutil
import wave
from pathlib import Path

import pytest

from blackbox_sync.voice import (
    SAMPLE_RATE,
    PcmSource,
    Silence,
    WavSequence,
    WavSource,
    espeak,
    level_dbfs,
    load_audio,
    speech_like,
    sweep,
    tone,
    write_wav,
)
from blackbox_sync.voice import sdp as sdp_mod
from blackbox_sync.voice.audio import duration
from blackbox_sync.voice.state import CallEvent, CallState, next_state
from blackbox_sync.voice.turns import TurnTracker

FINGERPRINT = ":".join(["AB"] * 32)

# Shaped like a pjmedia offer: session-level ICE and DTLS, no rtpmap for the static payload
# types, an RTCP candidate, telephone-event, no mid and no BUNDLE.
PJMEDIA_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 3900000000 3900000001 IN IP4 127.0.0.1",
        "s=pjmedia",
        "b=AS:84",
        "t=0 0",
        "a=X-nat:0",
        "a=ice-ufrag:2b4c5d6e",
        "a=ice-pwd:0123456789abcdef01234567",
        f"a=fingerprint:SHA-256 {FINGERPRINT}",
        "a=setup:actpass",
        "m=audio 4000 RTP/SAVP 0 8 101",
        "c=IN IP4 127.0.0.1",
        "b=TIAS:64000",
        "a=rtcp:4001 IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=candidate:Hc0a80001 1 UDP 2130706431 127.0.0.1 4000 typ host",
        "a=candidate:Hc0a80001 2 UDP 2130706430 127.0.0.1 4001 typ host",
        "a=rtcp-mux",
        "a=ssrc:123456 cname:pjmedia-test",
        "",
    ]
)


class TestSdp:
    def test_inspect_reads_profile_codecs_and_mids(self) -> None:
        info = sdp_mod.inspect_offer(PJMEDIA_OFFER)
        assert info.profiles == ("RTP/SAVP",)
        assert info.codecs == ("PCMU", "PCMA", "telephone-event")
        assert not info.has_mid

    @pytest.mark.parametrize("bad", ["", "hello", "v=0\r\ns=-\r\nm=video 9 RTP/AVP 96\r\n"])
    def test_inspect_refuses_what_cannot_carry_a_call(self, bad: str) -> None:
        with pytest.raises(sdp_mod.SdpError):
            sdp_mod.inspect_offer(bad)

    def test_prepare_names_static_types_adds_mid_lowers_fingerprint(self) -> None:
        prepared = sdp_mod.prepare_offer(PJMEDIA_OFFER)
        lines = sdp_mod.split_lines(prepared)
        assert "a=rtpmap:0 PCMU/8000" in lines
        assert "a=rtpmap:8 PCMA/8000" in lines
        assert "a=mid:0" in lines
        assert f"a=fingerprint:sha-256 {FINGERPRINT}" in lines
        assert prepared.endswith("\r\n")
        assert "\n" not in prepared.replace("\r\n", "")

    def test_prepare_keeps_existing_mids_and_rtpmaps(self) -> None:
        offer = (
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:audio\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        lines = sdp_mod.split_lines(sdp_mod.prepare_offer(offer))
        assert [line for line in lines if line.startswith("a=mid")] == ["a=mid:audio"]
        assert lines.count("a=rtpmap:0 PCMU/8000") == 1

    def test_shape_answer_echoes_profile_and_drops_invented_mids(self) -> None:
        answer = (
            "v=0\r\ns=-\r\na=group:BUNDLE 0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0 8\r\n"
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:0\r\na=setup:active\r\n"
        )
        shaped = sdp_mod.shape_answer(answer, sdp_mod.inspect_offer(PJMEDIA_OFFER))
        lines = sdp_mod.split_lines(shaped)
        assert "m=audio 5000 RTP/SAVP 0 8" in lines
        assert not [line for line in lines if "mid" in line or "BUNDLE" in line]
        assert "a=setup:active" in lines

    def test_shape_answer_keeps_mids_the_offer_had(self) -> None:
        offer = sdp_mod.OfferInfo(profiles=("UDP/TLS/RTP/SAVPF",), has_mid=True, codecs=("PCMU",))
        answer = "v=0\r\na=group:BUNDLE 0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
        assert sdp_mod.shape_answer(answer, offer) == answer

    def test_pjmedia_style_and_restore_mids(self) -> None:
        native = (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
            "a=msid-semantic:WMS *\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0 8\r\nc=IN IP4 127.0.0.1\r\n"
            "a=sendrecv\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:0\r\n"
            "a=msid:a b\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
            "a=ice-ufrag:u\r\na=ice-pwd:p\r\na=setup:actpass\r\n"
        )
        live = sdp_mod.pjmedia_style(native)
        lines = sdp_mod.split_lines(live)
        assert "m=audio 5000 RTP/SAVP 0 8 101" in lines
        assert "s=pjmedia" in lines
        at = lines.index("a=rtpmap:8 PCMA/8000") + 1  # telephone-event follows the codecs
        assert lines[at : at + 3] == [
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
        ]
        assert not [line for line in lines if line.startswith(("a=mid", "a=group", "a=msid"))]
        assert sdp_mod.candidates(live) == ["1 1 udp 2130706431 127.0.0.1 5000 typ host"]
        restored = sdp_mod.split_lines(sdp_mod.restore_mids(live, ["0"]))
        assert restored[-1] == "a=mid:0"

    def test_aiortc_answers_a_pjmedia_offer(self) -> None:
        """aiortc takes the prepared live-shaped offer, and the shaped answer fits it."""
        pytest.importorskip("aiortc", reason="needs the 'voice' extra (aiortc)")
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from blackbox_sync.voice import ice as _ice
        from blackbox_sync.voice.media import PacedTrack, prefer_g711

        async def answer() -> str:
            _ice.restrict(_ice.LOOPBACK)
            pc = RTCPeerConnection()
            try:
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp_mod.prepare_offer(PJMEDIA_OFFER), "offer")
                )
                pc.addTrack(PacedTrack(lambda: b""))
                prefer_g711(pc)
                await pc.setLocalDescription(await pc.createAnswer())
                info = sdp_mod.inspect_offer(PJMEDIA_OFFER)
                return sdp_mod.shape_answer(pc.localDescription.sdp, info)
            finally:
                await pc.close()

        lines = sdp_mod.split_lines(asyncio.run(answer()))
        [m_line] = [line for line in lines if line.startswith("m=audio")]
        assert m_line.split()[2:] == ["RTP/SAVP", "0", "8"]
        assert "a=setup:active" in lines
        assert "a=rtcp-mux" in lines
        assert "a=sendrecv" in lines
        assert not [line for line in lines if "mid" in line or "BUNDLE" in line]
        [candidate] = [line for line in lines if line.startswith("a=candidate:")]
        assert " 127.0.0.1 " in candidate  # loopback only, as asked
        assert [line for line in lines if line.startswith("a=fingerprint:sha-256 ")]


class TestAudio:
    def test_sweep_and_tone_lengths_and_levels(self) -> None:
        chirp = sweep(300, 3000, 1.25, amplitude=0.5)
        assert duration(chirp) == pytest.approx(1.25)
        assert level_dbfs(chirp) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.3)
        assert duration(tone(440, 0.5)) == pytest.approx(0.5)
        assert level_dbfs(bytes(320)) == -math.inf

    def test_speech_like_is_deterministic_and_bounded(self) -> None:
        assert speech_like("Hello there") == speech_like("Hello there")
        assert speech_like("Hello there") != speech_like("Goodbye now")
        assert 0.3 <= duration(speech_like("Hi")) <= 0.5
        assert duration(speech_like("word " * 200)) <= 4.5

    def test_sources_read_in_frames_then_end(self) -> None:
        source = PcmSource(bytes(range(200)) * 2)
        assert len(source.read(160) or b"") == 320
        assert len(source.read(160) or b"") == 80
        assert source.read(160) is None
        finite = Silence(0.03)
        assert finite.read(160) == bytes(320)
        assert finite.read(160) == bytes(160)
        assert finite.read(160) is None
        assert Silence().read(160) == bytes(320)
        with pytest.raises(ValueError, match="whole"):
            PcmSource(b"\x00")

    def test_wav_round_trip_and_conversions(self, tmp_path: Path) -> None:
        pcm = sweep(200, 2000, 0.5)
        write_wav(tmp_path / "a.wav", pcm)
        assert load_audio(tmp_path / "a.wav") == pcm
        assert WavSource(tmp_path / "a.wav").pcm == pcm
        # 8-bit stereo at 8 kHz: converted in pure Python
        with wave.open(str(tmp_path / "b.wav"), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(1)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(bytes([128, 128, 255, 1] * 100))
        converted = load_audio(tmp_path / "b.wav")
        assert len(converted) == 400
        assert converted[:2] == b"\x00\x00"
        sequence = WavSequence([tmp_path / "a.wav", pcm])
        assert len(sequence) == 2
        assert all(isinstance(c, PcmSource) for c in sequence)

    def test_other_rates_are_resampled(self, tmp_path: Path) -> None:
        pytest.importorskip("av", reason="resampling needs PyAV")
        import array

        rate = 44100
        samples = array.array(
            "h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate))
        )
        with wave.open(str(tmp_path / "cd.wav"), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(array.array("h", (v for s in samples for v in (s, s))).tobytes())
        pcm = load_audio(tmp_path / "cd.wav")
        assert duration(pcm) == pytest.approx(1.0, abs=0.02)
        assert level_dbfs(pcm) == pytest.approx(level_dbfs(samples.tobytes()), abs=0.5)

    def test_garbage_is_refused(self, tmp_path: Path) -> None:
        pytest.importorskip("av", reason="decoding needs PyAV")
        (tmp_path / "x.wav").write_bytes(b"not audio at all" * 10)
        with pytest.raises(ValueError, match="no audio"):
            load_audio(tmp_path / "x.wav")

    @pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng is not installed")
    @pytest.mark.skipif(
        importlib.util.find_spec("av") is None, reason="espeak's 22 kHz output needs PyAV"
    )
    def test_espeak_speaks(self) -> None:
        pcm = espeak("Where is my order?")
        assert 0.5 < duration(pcm) < 5
        assert level_dbfs(pcm) > -40


class TestTurns:
    def test_greeting_latency_counts_from_the_answer(self) -> None:
        tracker = TurnTracker(now=0.0)
        tracker.answer_sent(1.0)
        tracker.agent_text("Hello!")
        tracker.agent_audio(1.3, speech=False)
        tracker.agent_audio(1.5, speech=True)
        tracker.agent_audio(2.5, speech=True)
        assert not tracker.reply_done(3.0, silence=1.0)
        assert tracker.reply_done(3.5, silence=1.0)
        turn = tracker.current
        assert turn.latency == pytest.approx(0.5)
        assert turn.text == "Hello!"

    def test_clips_open_turns_and_speech_over_the_user_is_not_the_answer(self) -> None:
        tracker = TurnTracker(now=0.0)
        tracker.answer_sent(0.0)
        tracker.user_started(1.0, sample=8000)
        tracker.agent_audio(1.5, speech=True)  # the agent talks over the clip
        assert not tracker.reply_done(10.0, silence=1.0)
        tracker.user_finished(3.0)
        tracker.user_text(3.2, "where is my order", sample=24000)  # transcript of the clip
        tracker.agent_audio(3.8, speech=True)
        tracker.finish(6.0, sample=48000)
        greeting, answer = tracker.turns
        assert greeting.closed_at == 1.0
        assert greeting.end_sample == 8000
        assert answer.spoke_over_user
        assert answer.latency == pytest.approx(0.8)
        assert answer.user_texts == ["where is my order"]
        assert answer.end_sample == 48000
        tracker.agent_audio(7.0, speech=True)  # after the end: ignored
        assert answer.last_audio_at == 3.8

    def test_without_clips_user_texts_open_turns(self) -> None:
        tracker = TurnTracker(now=0.0)
        tracker.user_text(2.0, "hello", sample=16000)
        tracker.user_text(5.0, "thanks", sample=40000)
        assert [t.index for t in tracker.turns] == [0, 1, 2]
        assert tracker.turns[1].user_texts == ["hello"]
        assert tracker.turns[1].reference_at == 2.0


class TestCallState:
    """The call's lifecycle: one table in voice/state.py, and string comparisons still work."""

    def test_a_call_that_connects_and_hangs_up(self) -> None:
        state = CallState.IDLE
        path = []
        for event in (CallEvent.INVITED, CallEvent.MEDIA_UP, CallEvent.MEDIA_CLOSED):
            state = next_state(state, event)
            path.append(state)
        assert path == [CallState.ANSWERING, CallState.CONNECTED, CallState.ENDED]
        assert state.over

    def test_media_failing_before_or_after_it_flowed(self) -> None:
        assert next_state(CallState.ANSWERING, CallEvent.MEDIA_FAILED) is CallState.FAILED
        assert next_state(CallState.CONNECTED, CallEvent.MEDIA_FAILED) is CallState.ENDED

    @pytest.mark.parametrize("state", list(CallState))
    def test_stop_ends_a_live_call_and_breaking_fails_any(self, state: CallState) -> None:
        stopped = next_state(state, CallEvent.STOPPED)
        assert stopped is (state if state.over else CallState.ENDED)
        assert next_state(state, CallEvent.BROKE) is CallState.FAILED

    def test_events_that_do_not_apply_change_nothing(self) -> None:
        assert (
            next_state(CallState.ANSWERING, CallEvent.INVITED) is CallState.ANSWERING
        )  # 2nd offer
        assert next_state(CallState.ENDED, CallEvent.MEDIA_UP) is CallState.ENDED
        assert next_state(CallState.IDLE, CallEvent.MEDIA_CLOSED) is CallState.IDLE

    def test_it_is_a_string(self) -> None:
        state: str = CallState.CONNECTED
        assert state == "connected"
        assert f"{CallState.ENDED}" == "ended"
        assert str(CallState.FAILED) == "failed"
        assert [s.value for s in CallState] == ["idle", "answering", "connected", "ended", "failed"]
