"""QA voice cases: ``call_type: webCall`` with ``user_audio`` steps, checked by the loader and run
through the QA runner over a real loopback WebRTC call against the emulator's voice mode.

The clips are tones written at test time with the ``wave`` module. The emulator cannot
recognise speech; its transcriber here names each clip by its length.
"""

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator

import pytest
from testkit import ROOT, suite_problems, write

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")

import jsonschema

from blackbox_sync import qa
from blackbox_sync.qa.reports.common import attempt_text
from blackbox_sync.qa.results import CaseResult, Status
from blackbox_sync.qa.store import read_jsonl

if TYPE_CHECKING:
    from blackbox_sync.testing import Emulator

EXAMPLES = ROOT / "examples" / "qa"
RATE = 8000

needs_voice = pytest.mark.skipif(
    importlib.util.find_spec("aiortc") is None or importlib.util.find_spec("numpy") is None,
    reason="voice calls need the 'voice' extra (aiortc, Python >= 3.10) and numpy",
)


def write_tone(path: Path, seconds: float, hz: float = 440.0) -> Path:
    """A sine tone with short fades, as a 16-bit mono 8 kHz WAV."""
    np: Any = importlib.import_module("numpy")
    t = np.arange(int(seconds * RATE)) / RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    samples = (0.5 * 32767 * fade * np.sin(2 * np.pi * hz * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


def write_silent_wav(path: Path) -> Path:
    """A valid WAV without numpy (for the loader tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"\0\0" * 800)
    return path


# --- the loader ----------------------------------------------------------------------------------

VOICE_SUITE = """\
defaults:
  call_type: webCall
conversations:
  - id: spoken
    steps:
      - expect_agent: true
      - user_audio: clips/q.wav
        quiet_ms: 300
        expect: [{first_audio_ms: 2000}, {contains: x}]
  - id: typed
    call_type: chat
    steps: [{user: hi}]
"""


class TestLoader:
    def test_a_voice_suite_validates_against_the_shipped_schema(self, tmp_path: Path) -> None:
        yaml: Any = importlib.import_module("yaml")
        jsonschema.Draft202012Validator(qa.SUITE_SCHEMA).validate(yaml.safe_load(VOICE_SUITE))
        write_silent_wav(tmp_path / "clips" / "q.wav")
        suite = qa.load_suite(write(tmp_path, "s.yaml", VOICE_SUITE))
        spoken, typed = suite.cases
        assert spoken.settings.call_type == "webCall"
        assert spoken.settings.turn_end.describe()["rule"] == "audio_quiet"
        step = spoken.steps[1]
        assert step.kind == "user_audio"
        assert step.audio == str((tmp_path / "clips" / "q.wav").resolve())
        assert [c.kind for c in step.expect] == ["first_audio_ms", "contains"]
        assert typed.settings.call_type == "chat"  # a conversation overrides the defaults
        assert typed.settings.turn_end.describe()["rule"] == "quiet"

    def test_a_missing_clip_is_a_line_numbered_error(self, tmp_path: Path) -> None:
        found = suite_problems(write(tmp_path, "s.yaml", VOICE_SUITE))
        assert len(found) == 1, found
        assert found[0].startswith("s.yaml:7:"), found
        assert "user_audio 'clips/q.wav': no such file" in found[0]
        assert "relative to the suite file" in found[0]

    def test_a_clip_that_is_not_a_wav_is_a_line_numbered_error(self, tmp_path: Path) -> None:
        (tmp_path / "clips").mkdir()
        (tmp_path / "clips" / "q.wav").write_bytes(b"ID3 this is an mp3, honest")
        (line,) = suite_problems(write(tmp_path, "s.yaml", VOICE_SUITE))
        assert line.startswith("s.yaml:7:")
        assert "not a PCM WAV file" in line

    def test_user_audio_needs_a_web_call(self, tmp_path: Path) -> None:
        write_silent_wav(tmp_path / "q.wav")
        path = write(
            tmp_path,
            "s.yaml",
            "conversations:\n"  # 1
            "  - id: a\n"  # 2
            "    steps:\n"  # 3
            "      - user_audio: q.wav\n"  # 4
            "        expect: [{first_audio_ms: 100}]\n",  # 5
        )
        found = suite_problems(path)
        assert any(
            p.startswith("s.yaml:4:") and "user_audio needs a voice call" in p for p in found
        ), found
        assert any(
            p.startswith("s.yaml:5:") and "'first_audio_ms' times agent audio" in p for p in found
        ), found

    def test_text_steps_and_unknown_call_types_are_refused(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "conversations:\n"  # 1
            "  - id: a\n"  # 2
            "    call_type: webCall\n"  # 3
            "    steps: [{user: hi}]\n"  # 4
            "  - id: b\n"  # 5
            "    call_type: phone\n"  # 6
            "    steps: [{user: hi}]\n",  # 7
        )
        found = suite_problems(path)
        assert any(p.startswith("s.yaml:6:") and "'phone' is not one of" in p for p in found)
        # The schema problem stops the load before the builder's checks; fix it and look again.
        path.write_text(path.read_text().replace("phone", "chat"))
        (line,) = suite_problems(path)
        assert line.startswith("s.yaml:4:")
        assert "speaks with user_audio steps" in line


# --- the per-step turn-end rule ------------------------------------------------------------------


def test_each_turn_records_the_turn_end_rule_it_used(tmp_path: Path) -> None:
    from blackbox_sync.testing import Emulator, ScriptedAgent

    suite = qa.load_suite_data(
        {
            "defaults": {"turn_end": {"quiet_ms": 100}, "retries": 0},
            "conversations": [
                {"id": "a", "steps": [{"user": "one"}, {"user": "two", "quiet_ms": 50}]}
            ],
        }
    )
    with Emulator(ScriptedAgent()) as emu:
        report = qa.run(suite, target=emu)
        overridden = qa.run(suite, target=emu, quiet_ms=80)  # --quiet-ms: every turn's
    assert [t.turn_end["quiet_ms"] for t in overridden.cases[0].shown.turns] == [80.0, 80.0]
    (case,) = report.cases
    assert case.status is Status.PASSED, case.summary
    assert case.turn_end["quiet_ms"] == 100
    first, second = case.shown.turns
    assert first.turn_end == case.turn_end
    assert second.turn_end == {"rule": "quiet", "quiet_ms": 50.0, "fillers": ["um"]}
    text = attempt_text(case, case.shown)
    assert "turn end: quiet 100 ms" in text  # the case's rule, as before
    assert "reason quiet, turn end: quiet 50 ms" in text  # and the step's own


# --- real voice calls ------------------------------------------------------------------------


def by_length(pcm: bytes) -> str:
    """The emulator's "speech recognition": short clips ask, long ones say goodbye."""
    return "where is my order" if len(pcm) / (2 * RATE) < 1.0 else "thanks, bye"


@pytest.fixture
def voice_emulator() -> Iterator["Emulator"]:
    from blackbox_sync.testing import Emulator, EmulatorVoice, Rule, ScriptedAgent

    agent = ScriptedAgent(
        [Rule("order", "It shipped yesterday."), Rule("bye", "Bye!", end_conversation=True)],
        greeting="Hello! How can I help?",
    )
    with Emulator(agent, voice=EmulatorVoice(transcribe=by_length)) as emu:
        yield emu


VOICE_CASES = """\
defaults:
  call_type: webCall
  turn_end: {quiet_ms: 400}
  timeouts: {connect_s: 10, turn_s: 10}
  retries: 0
conversations:
  - id: spoken-order
    steps:
      - expect_agent: [{contains: Hello}]
      - user_audio: clips/order.wav
        quiet_ms: 300
        expect:
          - contains: shipped
          - first_audio_ms: 8000
      - user_audio: clips/bye.wav
        expect: [{contains: Bye}]
    expect_conversation:
      - result: {status: Completed}
      - first_audio_ms: 8000
  - id: impossibly-fast
    talk_first: true
    steps:
      - user_audio: clips/order.wav
        expect: [{first_audio_ms: 1}]
      - user_audio: clips/bye.wav
"""


@needs_voice
def test_voice_cases_run_over_webrtc_and_time_the_first_audio(
    voice_emulator: "Emulator", tmp_path: Path
) -> None:
    write_tone(tmp_path / "clips" / "order.wav", 0.6, 440)
    write_tone(tmp_path / "clips" / "bye.wav", 1.4, 660)
    suite = qa.load_suite(write(tmp_path, "voice.yaml", VOICE_CASES))
    target = qa.EmulatorTarget.of(voice_emulator, record_dir=str(tmp_path / "audio"))
    jsonl = tmp_path / "results.jsonl"
    report = qa.run(suite, target=target, jsonl=jsonl, max_in_flight=2)
    cases: Dict[str, CaseResult] = {c.id: c for c in report.cases}

    spoken = cases["spoken-order"]
    assert spoken.status is Status.PASSED, attempt_text(spoken, spoken.shown)
    assert spoken.turn_end["rule"] == "audio_quiet"
    greeting, order, bye = spoken.shown.turns
    assert greeting.reply == "Hello! How can I help?"
    assert order.user_audio == "order.wav"
    assert order.reply == "It shipped yesterday."
    assert bye.reply == "Bye!"
    for turn in (greeting, order, bye):
        assert turn.first_audio_ms is not None
        assert turn.first_audio_ms > 0
        assert turn.audio is not None  # the agent's audio in the turn, as a WAV
        with wave.open(turn.audio, "rb") as recording:
            assert recording.getnframes() > 0
    # The emulator answers after 0.6 s of silence at the end of a clip: never sooner.
    assert order.first_audio_ms is not None
    assert order.first_audio_ms > 600
    assert order.turn_end == {"rule": "audio_quiet", "quiet_ms": 300.0, "fillers": ["um"]}
    assert bye.turn_end == spoken.turn_end
    transcript = [(e.role, e.text, e.flags) for e in spoken.shown.transcript]
    assert ("user", "order.wav", ("audio",)) in transcript
    assert ("user", "where is my order", ()) in transcript  # what the service heard
    assert spoken.shown.ended_by == "agent"

    slow = cases["impossibly-fast"]
    assert slow.status is Status.FAILED, attempt_text(slow, slow.shown)
    (failed,) = slow.shown.failed_checks
    assert failed.kind == "first_audio_ms"
    assert "(max 1 ms)" in failed.message

    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_id = {r["id"]: r for r in records if r.get("record") == "case"}
    turns = by_id["spoken-order"]["repeats"][0]["attempts"][0]["turns"]
    assert all(t["first_audio_ms"] > 0 for t in turns)
    assert turns[1]["turn_end"]["quiet_ms"] == 300.0

    assert voice_emulator.voice is not None
    heard = voice_emulator.voice.calls
    assert len(heard) == 2
    assert all(call.connected and call.ended and not call.errors for call in heard)


@needs_voice
def test_the_example_voice_suite_runs_on_the_hosted_emulator(tmp_path: Path) -> None:
    for name in ("voice_suite.yaml", "voice_agent.yaml", "make_voice_clips.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    made = subprocess.run(
        [sys.executable, str(tmp_path / "make_voice_clips.py")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert made.returncode == 0, made.stderr
    # As a user runs it: the command line, every report into one folder, the emulator in voice
    # mode because the suite has a webCall case.
    out = tmp_path / "out"
    ran = subprocess.run(
        [sys.executable, "-m", "blackbox_sync", "qa", "run", "voice_suite.yaml", "-o", "out"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    _, (case,) = read_jsonl(out / "results.jsonl")
    assert case.status is Status.PASSED, attempt_text(case, case.shown)
    assert [t.user_audio for t in case.shown.turns] == [None, "order.wav", "goodbye.wav"]
    assert case.shown.turns[2].turn_end["quiet_ms"] == 300.0
    # The agent's audio of each turn, recorded under OUT_DIR/audio, named in the results.
    recorded = [Path(t.audio) for t in case.shown.turns if t.audio]
    assert len(recorded) == 3
    assert all(out / "audio" in path.parents and path.stat().st_size > 44 for path in recorded)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "first audio" in html
    assert "turn end: audio_quiet 300 ms" in html  # the step's own rule, next to its timings
    assert "max_first_audio_ms" in (out / "results.csv").read_text(encoding="utf-8")


WITHOUT_AIORTC = """
import sys
sys.modules["aiortc"] = None  # as if the voice extra were not installed
from blackbox_sync import qa
from blackbox_sync.testing import Emulator, ScriptedAgent

suite = qa.load_suite(sys.argv[1])
with Emulator(ScriptedAgent()) as emu:
    report = qa.run(suite, target=emu)
(case,) = report.cases
print(case.status.value, case.attempts, case.shown.error.kind, case.shown.error.message)
"""


def test_without_the_voice_extra_a_voice_case_is_an_error(tmp_path: Path) -> None:
    write_silent_wav(tmp_path / "q.wav")
    suite = write(
        tmp_path,
        "s.yaml",
        "defaults: {call_type: webCall, retries: 2}\n"
        "conversations:\n  - id: a\n    steps: [{user_audio: q.wav}]\n",
    )
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_AIORTC, str(suite)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    status, attempts, kind, message = out.stdout.strip().splitlines()[-1].split(" ", 3)
    assert (status, attempts, kind) == ("error", "1", "voice")  # not retried: it cannot help
    assert "pip install 'blackbox-sync[voice]'" in message
