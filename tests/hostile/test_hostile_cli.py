"""``blackbox-sync chat`` against a peer that echoes the token, and against nobody at all."""

import io
import socket
from typing import Iterator, List, Tuple

import pytest
from qa_peer import Peer

from blackbox_sync.cli.app import main

TOKEN = "tok-" + "c0de" * 6


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as running:
        yield running


def chat(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> Tuple[int, List[str], str]:
    """Run ``chat`` in-process with one piped line; its status, stdout lines and stderr."""
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    status = main(["chat", "--token", TOKEN, "--quiet-period", "0.1", "--timeout", "2", *args])
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err
    assert "Traceback" not in printed.err
    return status, printed.out.splitlines(), printed.err


def test_server_text_that_echoes_the_token_is_masked(
    peer: Peer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, lines, _ = chat(capsys, monkeypatch, "--base-url", peer.base_url, "--data", "mode=talk")
    assert status == 0
    assert "agent: hi *** key" in lines
    assert "[conversation ended: failed: token *** key expired]" in lines


@pytest.mark.parametrize(
    ("mode", "why"),
    [("error", "Invalid token *** key"), ("close", "close code 4001, token *** revoked")],
)
def test_a_rejected_token_is_one_line(
    peer: Peer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    why: str,
) -> None:
    status, lines, _ = chat(capsys, monkeypatch, "--base-url", peer.base_url, f"--data=mode={mode}")
    assert status == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("could not start the conversation: ")
    assert why in lines[0]


def test_a_refused_port_says_it_could_not_connect(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        status, lines, _ = chat(capsys, monkeypatch, "--base-url", f"http://127.0.0.1:{port}")
    assert status == 1
    assert len(lines) == 1, lines
    assert "cannot connect to ws://127.0.0.1" in lines[0]
    assert "refused" in lines[0].lower()
    assert "connection closed" not in lines[0]
