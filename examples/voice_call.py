"""A web voice call from a script: play questions, record the agent, print each turn's latency.

With no argument it calls the bundled emulator in voice mode (no account, no network):

    python examples/voice_call.py

With ``--live`` it calls the real service with a web-integration token (``BLACKBOX_TOKEN``,
optionally ``BLACKBOX_BASE_URL``); the integration must allow web calls. Needs the ``voice``
extra (``pip install 'blackbox-sync[voice]'``); the questions are spoken with espeak-ng when it is
installed (``apt-get install espeak-ng``), else they are tones. Files land in ``voice-out/``.
"""

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import blackbox_sync as bb
from blackbox_sync.voice import VoiceCall, espeak, speech_like, sweep, write_wav

QUESTIONS = ["Where is my order?", "Thank you, goodbye."]


def make_question(text: str, path: Path) -> Path:
    try:
        pcm = espeak(text)
    except FileNotFoundError:
        pcm = speech_like(text)
    write_wav(path, pcm)
    return path


def main() -> None:
    out = Path("voice-out")
    out.mkdir(exist_ok=True)
    questions = [make_question(q, out / f"question-{i}.wav") for i, q in enumerate(QUESTIONS, 1)]
    with ExitStack() as stack:
        if "--live" in sys.argv:
            token = os.environ["BLACKBOX_TOKEN"]
            base_url = os.environ.get("BLACKBOX_BASE_URL")
        else:
            from blackbox_sync.testing import Emulator, EmulatorVoice, Rule, ScriptedAgent

            rules = [
                Rule("order", "It shipped yesterday."),
                Rule("thank", "Bye!", end_conversation=True),
            ]
            agent = ScriptedAgent(rules, greeting="Hello! How can I help?")
            # The emulator cannot recognise speech: it "hears" the questions' texts in order.
            voice = EmulatorVoice(greeting=sweep(400, 1200, 1.0), transcribe=QUESTIONS)
            emulator = stack.enter_context(Emulator(agent, voice=voice))
            token, base_url = emulator.token, emulator.base_url

        conv = bb.Conversation(token=token, base_url=base_url, call_type="webCall")
        call = VoiceCall(conv, record=out / "agent.wav", record_turns=str(out / "turn-{turn}.wav"))
        with conv:
            call.wait_connected(timeout=15)
            turns = [call.wait_for_reply(timeout=30)]  # the greeting
            for question in questions:
                turns.append(call.ask(question, timeout=30))
        # Leaving the block ended the conversation (terminate, unless the agent hung up) and
        # with it the call: its thread is gone and the recordings are closed.
    for turn in turns:
        latency = "silent" if turn.latency is None else f"{turn.latency * 1000:.0f} ms"
        print(f"turn {turn.index}: {latency:>8}  {turn.duration:5.1f} s  {turn.text!r}")
    print(f"result: {conv.result.status if conv.result else None}; audio in {out}/")


if __name__ == "__main__":
    main()
