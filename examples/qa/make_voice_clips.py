"""Write the WAV clips voice_suite.yaml plays (tones standing in for speech), next to it.

    python examples/qa/make_voice_clips.py

The emulator's voice mode hears a clip as "(user audio N.N s)", so only the lengths matter to
voice_agent.yaml: order.wav is under a second, goodbye.wav over.
"""

from pathlib import Path
from typing import List

from blackbox_sync.voice import speech_like, write_wav

CLIPS = {"order.wav": "where is my order", "goodbye.wav": "thank you very much goodbye"}


def make_clips(folder: Path) -> List[Path]:
    """Write every clip into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in CLIPS.items():
        write_wav(folder / name, speech_like(text))
        paths.append(folder / name)
    return paths


if __name__ == "__main__":
    for path in make_clips(Path(__file__).resolve().parent / "voice_clips"):
        print(path)
