"""QA runs against a peer that echoes credentials in its errors, close reasons and replies:
no report format, no terminal line and no log record may carry them."""

import contextlib
import http.server
import json
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from qa_peer import MINTED, Peer

from blackbox_sync import qa
from blackbox_sync.cli.qa import main as qa_main

TOKEN = "tok-" + "5e1f" * 6
API_KEY = "key-" + "a7b2" * 6

SUITE = """\
suite: leaky
defaults:
  retries: 0
  timeouts: {connect_s: 2, turn_s: 2, terminate_s: 2}
  turn_end: {quiet_ms: 100}
conversations:
  - id: error-frame
    additional_data: {mode: error}
    steps: [{user: hi}]
  - id: close-reason
    additional_data: {mode: close}
    steps: [{user: hi}]
  - id: talk
    additional_data: {mode: talk}
    steps:
      - user: hi
        expect: [{contains: Paris}]
"""


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as running:
        yield running


def files_text(folder: Path) -> List[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file()]


def run_live(peer: Peer, folder: Path) -> int:
    """``qa run --target live`` in-process against ``peer``, reports into ``folder/out``."""
    suite = folder / "leaky.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    return qa_main(
        [
            "run", str(suite), "--target", "live", "--base-url", peer.base_url,
            "--token", TOKEN, "-o", str(folder / "out"), "--progress", "lines", "-j", "1",
        ]
    )  # fmt: skip


def test_qa_run_live_masks_the_token_everywhere(
    peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_live(peer, tmp_path)
    out = tmp_path / "out"
    printed = capsys.readouterr()
    assert status == 4  # the talk case failed its check, the other two errored
    reports = files_text(out)
    assert {p.name for p in out.iterdir()} >= {
        "results.jsonl", "junit.xml", "report.html", "results.csv", "summary.md",
    }  # fmt: skip
    assert any("***" in text for text in reports)  # the server's text is there, masked
    for text in [*reports, printed.out, printed.err]:
        assert TOKEN not in text
    assert "Invalid token ***" in printed.out


def test_qa_run_live_logs_no_token_at_debug(
    peer: Peer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="blackbox_sync")
    run_live(peer, tmp_path)
    assert "Invalid token" in caplog.text
    assert TOKEN not in caplog.text


def test_minted_tokens_and_the_api_key_never_reach_a_report(peer: Peer, tmp_path: Path) -> None:
    suite = tmp_path / "leaky.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    target = qa.LiveTarget(api_key=API_KEY, integration_id="int-1", base_url=peer.base_url)
    report = qa.run(str(suite), target=target, max_in_flight=1, jsonl=tmp_path / "r.jsonl")
    report.write(
        junit=tmp_path / "j.xml",
        html=tmp_path / "r.html",
        csv=tmp_path / "r.csv",
        markdown=tmp_path / "r.md",
    )
    assert peer.api_key == API_KEY  # the peer did see the key, and echoed it back
    assert len(report.cases) == 3
    for text in [*files_text(tmp_path), repr(report), report.markdown()]:
        assert MINTED not in text
        assert API_KEY not in text


class _StatusServer(http.server.ThreadingHTTPServer):
    """A server whose every answer has ``status``; ``requests`` counts what it answered."""

    status: int
    requests: int


class _Status(http.server.BaseHTTPRequestHandler):
    """Answers every request (REST or WebSocket upgrade) with the server's ``status``."""

    server: _StatusServer

    def answer(self) -> None:
        server = self.server
        server.requests += 1
        self.send_response(server.status)
        self.send_header("Content-Type", "application/problem+json")
        body = json.dumps({"title": "nope", "status": server.status}).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = answer

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def answering(status: int) -> Iterator[_StatusServer]:
    server = _StatusServer(("127.0.0.1", 0), _Status)
    server.status, server.requests = status, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


RETRIED = """\
defaults: {retries: 2, retry_backoff_s: 0.01, timeouts: {connect_s: 2}}
conversations:
  - id: one
    steps: [{user: hi}]
"""


@pytest.mark.parametrize(
    ("status", "minted", "requests"),
    [(404, True, 1), (404, False, 1), (400, False, 1), (429, True, 3), (503, False, 3)],
)
def test_only_hiccups_are_retried(tmp_path: Path, status: int, minted: bool, requests: int) -> None:
    """A permanent 4xx (the mint's POST, or the WebSocket handshake) is asked once; 408, 429
    and 5xx answers are retried."""
    suite = tmp_path / "retried.yaml"
    suite.write_text(RETRIED, encoding="utf-8")
    with answering(status) as server:
        target = qa.LiveTarget(
            base_url=f"http://127.0.0.1:{server.server_port}",
            token=None if minted else TOKEN,
            api_key=API_KEY if minted else None,
            integration_id="int-1" if minted else None,
        )
        case = qa.run(str(suite), target=target).get("one")
        assert server.requests == requests
    assert case.status is qa.Status.ERROR
    assert case.attempts == requests
    assert str(status) in case.summary


def test_a_secret_that_matches_a_field_value_still_gives_a_clean_result() -> None:
    from blackbox_sync.qa.results import Attempt, ErrorInfo, Status, redact_attempt

    attempt = Attempt(1, Status.PASSED, "2026-01-01T00:00:00Z", 0.5, ErrorInfo("auth", "passed"))
    cleaned = redact_attempt(attempt, ["passed"])  # matches the status too
    assert cleaned.status is Status.ERROR
    assert cleaned.error is not None
    assert "passed" not in cleaned.error.message
