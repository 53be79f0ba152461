"""Helpers shared by several test modules (imported as ``testkit``: setup.cfg puts tests/support
on the path)."""

import subprocess
from pathlib import Path
from typing import Any, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
"""The project's top folder (README.md, examples/, docs/)."""


def stop_process(proc: "subprocess.Popen[Any]", reader: Optional[Any] = None) -> None:
    """End ``proc`` (politely, then by force), join its output ``reader``, close its pipe."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if reader is not None:
        reader.join(5)
    if proc.stdout is not None:
        proc.stdout.close()


def write(folder: Path, name: str, text: str) -> Path:
    """A UTF-8 text file ``name`` in ``folder``."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def suite_problems(path: Path) -> List[str]:
    """The problems loading the QA suite at ``path`` reports, each with its file name."""
    from blackbox_sync import qa

    with pytest.raises(qa.SuiteFileError) as info:
        qa.load_suite(path)
    return [p.format(path.name) for p in info.value.problems]
