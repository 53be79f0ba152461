"""The documentation site builds with warnings as errors, and does not drift from the code: every
CLI option is in the CLI reference, and every example file the pages name exists."""

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from testkit import ROOT

from blackbox_sync.cli import app as cli

DOCS = ROOT / "docs"
BUILD_COMMAND = ["-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    out = subprocess.run(
        [sys.executable, *BUILD_COMMAND, str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=str(ROOT),
    )
    assert out.returncode == 0, out.stderr[-6000:]
    html = tmp_path / "html"
    for page in ("index", "quickstart", "fidelity", "protocol", "reference/conversation"):
        assert (html / f"{page}.html").is_file(), page
    api = (html / "reference" / "conversation.html").read_text(encoding="utf-8")
    assert "wait_for_reply" in api  # autodoc really ran


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for child, grandchild in _subcommands(sub):
                    yield f"{name} {child}", grandchild


def _options(parser: argparse.ArgumentParser) -> List[str]:
    return [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]


def test_the_cli_reference_names_every_command_and_option() -> None:
    reference = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    parser = cli.build_parser(["chat"])  # everything but qa, which documents itself
    assert set(_options(parser)) <= set(re.findall(r"--[a-z-]+", reference))
    for name, sub in _subcommands(parser):
        assert f"`{name.split()[0]}" in reference or f"{name}" in reference, name
        missing = [o for o in _options(sub) if o not in reference]
        assert not missing, f"{name}: {missing} are not in docs/reference/cli.md"


def test_every_file_the_docs_name_exists() -> None:
    named = set()
    for page in DOCS.rglob("*.md"):
        named.update(re.findall(r"examples/[\w./-]+\w", page.read_text(encoding="utf-8")))
    assert named, "the docs name no example files?"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing
