"""``blackbox-sync qa run`` as a process: ``--rerun``, ``--resume`` with another selection,
``--target live`` against the emulator (token and minted tokens), and Ctrl-C mid-run."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import pytest
from testkit import ROOT

import blackbox_sync as bb
from blackbox_sync import qa
from blackbox_sync.qa.store import read_jsonl
from blackbox_sync.testing import Emulator, Rule, ScriptedAgent

TIMEOUT = 30
"""A hang detector for a whole command; each run here takes a few seconds."""


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    return {**env, **extra}


def command(*args: str) -> List[str]:
    return [sys.executable, "-m", "blackbox_sync", "qa", "run", *args, "--progress", "lines"]


def qa_run(*args: str, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env or clean_env(),
        cwd=ROOT,
        check=False,
    )


def write_suite(folder: Path, conversations: str, timeouts: str = "{turn_s: 5}") -> Path:
    path = folder / "suite.yaml"
    path.write_text(
        "suite: cli\n"
        f"defaults: {{turn_end: {{quiet_ms: 100}}, timeouts: {timeouts}, retries: 0}}\n"
        "conversations:\n" + conversations,
        encoding="utf-8",
    )
    return path


def ran(out: "subprocess.CompletedProcess[str]") -> Set[str]:
    """The ids of the conversations a ``--progress lines`` run printed."""
    words = [line.split() for line in out.stdout.splitlines()]
    return {w[3] for w in words if w and w[0] in ("PASSED", "FAILED", "ERROR")}


GOOD_AND_BAD = (
    "  - {id: good, tags: [smoke], steps: [{user: ping, expect: [{contains: ping}]}]}\n"
    "  - {id: bad, tags: [slow], steps: [{user: pong, expect: [{contains: EXPECTED}]}]}\n"
)


def test_rerun_failed_runs_only_the_failures_again(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, GOOD_AND_BAD)
    results = str(tmp_path / "run.jsonl")
    first = qa_run(str(suite), "--jsonl", results)
    assert first.returncode == qa.EXIT_FAILED, first.stdout + first.stderr
    assert ran(first) == {"good", "bad"}
    suite.write_text(suite.read_text().replace("EXPECTED", "pong"), encoding="utf-8")
    again = qa_run(str(suite), "--resume", results, "--rerun", "failed")
    assert again.returncode == qa.EXIT_OK, again.stdout + again.stderr
    assert ran(again) == {"bad"}
    assert "2 conversations: 2 passed, 0 failed, 0 errors" in again.stdout
    _, cases = read_jsonl(results)
    assert {c.id: c.status for c in cases} == {"good": qa.Status.PASSED, "bad": qa.Status.PASSED}


def test_resume_reports_only_the_cases_selected_now(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, GOOD_AND_BAD)
    results = str(tmp_path / "run.jsonl")
    assert qa_run(str(suite), "--jsonl", results).returncode == qa.EXIT_FAILED
    junit = tmp_path / "junit.xml"
    smoke = qa_run(str(suite), "--resume", results, "--tag", "smoke", "--junit", str(junit))
    assert smoke.returncode == qa.EXIT_OK, smoke.stdout + smoke.stderr  # "bad" is not selected
    assert ran(smoke) == set()
    assert "1 conversations: 1 passed, 0 failed, 0 errors" in smoke.stdout
    assert 'tests="1"' in junit.read_text(encoding="utf-8")
    slow = qa_run(str(suite), "--resume", results, "--tag", "slow")
    assert slow.returncode == qa.EXIT_FAILED, slow.stdout + slow.stderr


@pytest.fixture
def shop(emulator: Emulator) -> Emulator:
    emulator.default_agent = ScriptedAgent([Rule("order", "It shipped.")], greeting=None)
    return emulator


ORDER_SUITE = (
    "  - {id: o1, steps: [{user: my order, expect: [{contains: shipped}]}]}\n"
    "  - {id: o2, steps: [{user: order 2, expect: [{contains: shipped}]}]}\n"
)


def test_live_target_with_a_token(shop: Emulator, tmp_path: Path) -> None:
    suite = write_suite(tmp_path, ORDER_SUITE)
    out = qa_run(
        str(suite),
        "--target",
        "live",
        "--base-url",
        shop.base_url,
        "-o",
        str(tmp_path / "report"),
        env=clean_env(BLACKBOX_TOKEN=shop.token),
    )
    assert out.returncode == qa.EXIT_OK, out.stdout + out.stderr
    assert ran(out) == {"o1", "o2"}
    assert {r.token for r in shop.conversations} == {shop.token}
    runs, _ = read_jsonl(tmp_path / "report" / "results.jsonl")
    assert runs[0].target == {"kind": "live", "auth": "token", "base_url": shop.base_url}
    written = out.stdout + out.stderr
    written += "".join(p.read_text() for p in (tmp_path / "report").iterdir())
    assert shop.token not in written


def test_live_target_minting_a_token_per_conversation(shop: Emulator, tmp_path: Path) -> None:
    with bb.Client(api_key=shop.api_key, base_url=shop.base_url) as client:
        agent = client.agents.create("qa-cli", {"primaryLanguage": "en-US"})
        integration = client.web_integrations.create(str(agent.agent_id), "qa-cli-web")
    suite = write_suite(tmp_path, ORDER_SUITE)
    results = tmp_path / "run.jsonl"
    out = qa_run(
        str(suite),
        "--target",
        "live",
        "--base-url",
        shop.base_url,
        "--integration-id",
        str(integration.integration_id),
        "--jsonl",
        str(results),
        env=clean_env(BLACKBOX_API_KEY=shop.api_key),
    )
    assert out.returncode == qa.EXIT_OK, out.stdout + out.stderr
    assert ran(out) == {"o1", "o2"}
    minted = {r.token for r in shop.conversations}
    assert len(minted) == 2  # one fresh token per conversation
    assert shop.token not in minted
    assert integration.integration_id not in {g.integration_id for g in shop.tokens}  # revoked
    runs, _ = read_jsonl(results)
    assert runs[0].target["auth"] == "minted"
    text = out.stdout + out.stderr + results.read_text(encoding="utf-8")
    for secret in {shop.api_key, *minted}:
        assert secret is not None
        assert secret not in text


class Lines:
    """A process's output, line by line, with timeouts (a reader thread feeds a queue)."""

    def __init__(self, proc: "subprocess.Popen[str]") -> None:
        self.proc = proc
        self.seen: List[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="test-output-reader")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)

    def wait_for(self, prefix: str, count: int) -> None:
        """Until ``count`` lines starting with ``prefix`` were printed."""
        while sum(line.startswith(prefix) for line in self.seen) < count:
            self.seen.append(self._queue.get(timeout=TIMEOUT))

    def rest(self) -> str:
        """Everything printed, once the process has ended."""
        self._reader.join(TIMEOUT)
        while not self._queue.empty():
            self.seen.append(self._queue.get_nowait())
        return "".join(self.seen)


def interrupted(
    args: List[str], env: Dict[str, str], ready: Callable[[Lines], object]
) -> Tuple[int, str]:
    """Run ``qa run`` with ``args``, press Ctrl-C once ``ready`` returns; (status, output)."""
    proc = subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=ROOT,
    )  # fmt: skip
    output = Lines(proc)
    try:
        ready(output)
        proc.send_signal(signal.SIGINT)
        status = proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        text = output.rest()
        assert proc.stdout is not None
        proc.stdout.close()
    return status, text


def test_ctrl_c_stops_at_once_and_resume_runs_what_was_cut_short(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.default_agent = ScriptedAgent([Rule("hush", ())], default="ok", greeting=None)
    hushed = [f"h{i}" for i in range(4)]
    suite = write_suite(
        tmp_path,
        "  - {id: f0, steps: [{user: hi}]}\n  - {id: f1, steps: [{user: hi}]}\n"
        + "".join(f"  - {{id: {i}, steps: [{{user: hush}}, {{user: hush}}]}}\n" for i in hushed),
        timeouts="{turn_s: 120, conversation_s: 600}",  # far beyond the hang detectors below
    )
    results = tmp_path / "run.jsonl"
    live = ["--target", "live", "--base-url", emulator.base_url, "-j", "2"]
    env = clean_env(BLACKBOX_TOKEN=emulator.token)

    def two_done_two_blocked(output: Lines) -> None:
        output.wait_for("PASSED", 2)  # f0 and f1 are on disk
        emulator.wait_for_frame(  # h0 and h1 are blocked in ask() on a silent agent
            "incomingChatMessage",
            timeout=TIMEOUT,
            count=2,
            where=lambda f: f.get("content") == "hush",
        )

    reports = tmp_path / "reports"
    status, text = interrupted(
        [str(suite), *live, "--jsonl", str(results), "-o", str(reports)],
        env,
        two_done_two_blocked,
    )
    assert status == qa.EXIT_INTERRUPTED, text
    summary = [line for line in text.splitlines() if line.startswith("interrupted:")]
    assert summary == [
        f"interrupted: 2 passed, 0 failed, 0 errors; 4 not finished; --resume {results} runs them"
    ], text
    assert "Traceback" not in text
    _, cases = read_jsonl(results)
    assert {c.id for c in cases} == {"f0", "f1"}  # the cut-short ones are not recorded
    junit = ET.parse(reports / "junit.xml").getroot()  # the finished ones, in every format
    assert sorted(t.get("name") or "" for t in junit.iter("testcase")) == ["f0", "f1"]
    assert len(emulator.conversations) == 4  # h2 and h3 never started
    emulator.default_agent = ScriptedAgent(default="ok", greeting=None)
    resumed = qa_run(str(suite), *live, "--resume", str(results), env=env)
    assert resumed.returncode == qa.EXIT_OK, resumed.stdout + resumed.stderr
    assert ran(resumed) == set(hushed)
    _, cases = read_jsonl(results)
    assert sorted(c.id for c in cases) == ["f0", "f1", *hushed]
    assert all(json.loads(line) for line in results.read_text(encoding="utf-8").splitlines())


def test_ctrl_c_during_a_wait_step_ends_the_process_at_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A simulated user's long pause is cut short when the run is interrupted."""
    suite = write_suite(
        tmp_path,
        "  - {id: pause, steps: [{wait: 300}, {user: hi}]}\n",
        timeouts="{turn_s: 120, conversation_s: 600}",  # far beyond the hang detector below
    )
    live = ["--target", "live", "--base-url", emulator.base_url]
    status, text = interrupted(
        [str(suite), *live],
        clean_env(BLACKBOX_TOKEN=emulator.token),
        # The connection event is out: the client is (about to be) in its pause.
        lambda output: emulator.wait_for_frame("event", timeout=TIMEOUT, direction="server"),
    )
    assert status == qa.EXIT_INTERRUPTED, text
    assert "1 not finished" in text
    assert not [f for f in emulator.frames if f.get("type") == "incomingChatMessage"]


def test_suites_that_disagree_on_live_settings_are_refused(tmp_path: Path) -> None:
    """One live target serves every suite of a run: conflicting settings are a usage error."""
    paths = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        path = write_suite(folder, "  - {id: c, steps: [{user: hi}]}\n")
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                "suite: cli\n", f"suite: {name}\ntarget: {{live: {{integration_id: int-{name}}}}}\n"
            ),
            encoding="utf-8",
        )
        paths.append(str(path))
    out = qa_run(*paths, "--target", "live", env=clean_env(BLACKBOX_API_KEY="k"))
    assert out.returncode == qa.EXIT_USAGE, out.stdout + out.stderr
    assert "disagree on live integration_id ('int-one' and 'int-two')" in out.stderr
    assert "--integration-id" in out.stderr
