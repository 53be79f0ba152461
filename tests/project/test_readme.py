"""The README's commands, run word for word as a new user would type them.

Other tests drive the same programs with extra flags (a free port, no progress bar); these take
the lines from the README itself, so the README cannot drift from what works. The commands run
from a scratch folder that sees the repository's ``examples/``, so nothing is written into the
checkout, with this interpreter's scripts first on ``PATH`` (``blackbox-sync``, ``jupyter``).
"""

import configparser
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import requests
from testkit import ROOT

README = ROOT / "README.md"
TIMEOUT = 30


def fenced_block_after(heading: str) -> List[str]:
    """The command lines of the first fenced block after ``heading``, comments dropped."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    block = re.search(r"```\w*\n(.*?)```", text[start:], re.DOTALL)
    assert block, f"no code block after {heading!r}"
    lines = (line.split("  #", 1)[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


TRY_IT = fenced_block_after("## Try it")


def command(prefix: str) -> List[str]:
    """The one ``Try it`` line that starts with ``prefix``, split as a shell would."""
    found = [shlex.split(line) for line in TRY_IT if line.startswith(prefix)]
    assert len(found) == 1, f"expected one {prefix!r} line in the README's Try it block"
    return found[0]


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A fresh working folder with the repository's examples, as a user's checkout has them."""
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return tmp_path


@pytest.fixture
def user_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(TERM="xterm", COLUMNS="200", LINES="40")
    return env


def test_the_first_lines_are_the_demo_and_the_test_command() -> None:
    first = README.read_text(encoding="utf-8").split("```", 2)[1].splitlines()[1:]
    demo, tests = (line.split("  #", 1)[0].strip() for line in first[:2])
    assert demo.endswith("python examples/demo_chat.py")
    assert tests.endswith("python -m pytest")
    # CI runs that same test command after installing the same extra.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -e '.[test]'" in ci
    assert "\npython -m pytest\n" in ci
    assert "pip install -e '.[test]'" in tests


def test_the_install_line_names_extras_the_test_extra_covers() -> None:
    """CI installs ``.[test]``; every extra the README installs must be inside it."""
    install = command("pip install ")
    extras = re.fullmatch(r"\.\[(.+)\]", install[-1])
    assert install[:3] == ["pip", "install", "-e"]
    assert extras
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = config["options.extras_require"]

    def requirements(extra: str) -> List[str]:
        return [line.strip() for line in declared[extra].strip().splitlines()]

    test_extra = set(requirements("test"))
    for extra in extras.group(1).split(","):
        assert extra in declared, f"setup.cfg has no extra {extra!r}"
        assert set(requirements(extra)) <= test_extra, extra


# pexpect forks a pty from this multi-threaded process (the emulator fixtures elsewhere);
# the child execs at once, so 3.12+'s deadlock warning does not apply.
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of forkpty:DeprecationWarning"
)
def test_chat_with_the_emulator(user_dir: Path, user_env: Dict[str, str]) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = command("blackbox-sync chat ")
    child = pexpect.spawn(
        argv[0], argv[1:], encoding="utf-8", timeout=TIMEOUT, env=user_env, cwd=str(user_dir)
    )
    try:
        child.expect_exact("agent: Hi! I can check your order status.")
        child.expect_exact("you> ")
        child.sendline("Where is my order ORD-12345?")
        child.expect_exact('[tool] checkOrderStatus {"orderNumber": "ORD-12345"}')
        child.expect_exact("is shipped")
        child.expect_exact("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.close(force=True)


def test_the_notebook_runs(user_dir: Path, user_env: Dict[str, str]) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    argv = command("jupyter ")
    notebook = ROOT / argv[-1]
    before = notebook.read_bytes()
    done = subprocess.run(
        argv, cwd=user_dir, env=user_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert notebook.read_bytes() == before, "jupyter execute must not rewrite the notebook"


@pytest.fixture
def flask_app(user_dir: Path, user_env: Dict[str, str]) -> Iterator["subprocess.Popen[str]"]:
    pytest.importorskip("flask")
    proc = subprocess.Popen(
        command("python examples/flask_app/app.py"),
        cwd=user_dir,
        env=user_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(TIMEOUT)
    assert proc.stdout is not None
    proc.stdout.close()


def test_the_flask_example_serves_the_printed_url(flask_app: "subprocess.Popen[str]") -> None:
    lines: queue.Queue[str] = queue.Queue()

    def read_output() -> None:
        for line in flask_app.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read_output)
    reader.start()
    try:
        printed = lines.get(timeout=TIMEOUT)
        url = re.search(r"(http://\S+)", printed)
        assert url, printed
        with requests.Session() as browser:
            page = browser.get(url.group(1), timeout=TIMEOUT)
            assert page.status_code == 200
            assert "Support" in page.text
            answer = browser.post(
                f"{url.group(1)}/ask", json={"question": "Where is ORD-12345?"}, timeout=TIMEOUT
            )
            assert answer.json()["reply"].endswith("Order ORD-12345 is shipped.")
        flask_app.send_signal(signal.SIGINT)
        assert flask_app.wait(TIMEOUT) == 0
    finally:
        if flask_app.poll() is None:
            flask_app.kill()
        reader.join(TIMEOUT)


def test_the_qa_example(user_dir: Path, user_env: Dict[str, str]) -> None:
    pytest.importorskip("jsonschema")
    argv = command("blackbox-sync qa ")
    done = subprocess.run(
        argv, cwd=user_dir, env=user_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed, 0 errors" in done.stdout
    report = user_dir / argv[argv.index("-o") + 1]
    assert {"junit.xml", "report.html"} <= {p.name for p in report.iterdir()}
