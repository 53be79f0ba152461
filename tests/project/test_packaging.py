"""Packaging: ``python -m build`` makes an sdist and a wheel that pass ``twine check``; the wheel
installs in a fresh virtualenv and runs the demo and the command line against the emulator; the
version has one source.

The build runs on a copy of the working tree, so nothing in the checkout changes. Installing the
wheel's dependencies needs the package index (pip's cache makes repeated runs quick).
"""

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest
from testkit import ROOT

import blackbox_sync

pytest.importorskip("build")
pytest.importorskip("twine")

SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".hypothesis", "_build", "bench", "*.pyc",
)  # fmt: skip


def run(*command: str, cwd: Path, timeout: float = 240, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLACKBOX_", "PYTHON"))}
    out = subprocess.run(
        list(command),
        cwd=str(cwd),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built from a copy of the working tree (the wheel from the sdist)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = base / "dist"
    run(sys.executable, "-m", "build", "--outdir", str(out), str(source), cwd=base)
    return out


def only(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    sdist = only(dist, "*.tar.gz")
    wheel = only(dist, "*.whl")
    version = blackbox_sync.__version__
    assert sdist.name == f"blackbox_sync-{version}.tar.gz"
    assert wheel.name == f"blackbox_sync-{version}-py3-none-any.whl"
    report = run(
        sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel), cwd=dist
    )
    assert report.count("PASSED") == 2


def test_the_wheel_holds_the_package_and_its_metadata(dist: Path) -> None:
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        names = wheel.namelist()
        info = f"blackbox_sync-{blackbox_sync.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    for module in (
        "blackbox_sync/py.typed",
        "blackbox_sync/cli/app.py",
        "blackbox_sync/cli/chat.py",
        "blackbox_sync/protocol/messages.py",
        "blackbox_sync/transport/connection.py",
        "blackbox_sync/conversation/facade.py",
        "blackbox_sync/display.py",
        "blackbox_sync/testing/emulator.py",
        "blackbox_sync/rest/client.py",
    ):
        assert module in names, module
    assert not [n for n in names if n.startswith(("tests/", "examples/", "docs/"))]
    assert metadata["Version"] == blackbox_sync.__version__  # one source: _version.py
    assert metadata["Requires-Python"] == ">=3.9"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "Programming Language :: Python :: 3.13" in metadata.get_all("Classifier", [])
    assert "blackbox-sync = blackbox_sync.cli:main" in entry_points
    assert "blackbox_sync = blackbox_sync.testing.pytest_plugin" in entry_points
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        members = {m.name.split("/", 1)[-1] for m in sdist.getmembers()}
    assert {"README.md", "setup.cfg", "pyproject.toml", "blackbox_sync/_version.py"} <= members


def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = str(bindir / "python")
    wheel = only(dist, "*.whl")
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[emulator]", cwd=tmp_path)

    # The installed copy is the one imported (not this checkout), and reports the same version.
    where = run(
        python, "-c", "import blackbox_sync as bb; print(bb.__file__, bb.__version__)", cwd=tmp_path
    )
    path, version = where.split()
    assert Path(path).resolve().is_relative_to(venv.resolve())
    assert version == blackbox_sync.__version__

    # The README's first command, with the installed wheel.
    demo = tmp_path / "demo_chat.py"
    shutil.copy(ROOT / "examples" / "demo_chat.py", demo)
    output = run(python, str(demo), cwd=tmp_path)
    assert "Order ORD-12345 is shipped." in output
    assert output.strip().endswith("result: Completed")

    command = str(bindir / "blackbox-sync")
    assert run(command, "--version", cwd=tmp_path).strip() == f"blackbox-sync {version}"
    chat = run(command, "chat", "--emulator", "--quiet-period", "0.2", cwd=tmp_path, stdin="hi\n")
    assert "agent: You said: hi" in chat
    plugins = run(python, "-c", _PLUGIN_CHECK, cwd=tmp_path)
    assert plugins.strip() == "blackbox_sync.testing.pytest_plugin"


# The pytest plugin is registered by entry point (pytest itself is not installed in the venv).
_PLUGIN_CHECK = (
    "from importlib.metadata import entry_points\n"
    "eps = entry_points()\n"
    "group = eps.select(group='pytest11') if hasattr(eps, 'select') else eps['pytest11']\n"
    "print(*[e.value for e in group if e.name == 'blackbox_sync'])\n"
)


def test_the_version_has_one_source() -> None:
    """Only ``_version.py`` spells the version; setup.cfg reads it from there."""
    setup_cfg = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    assert "version = attr: blackbox_sync._version.__version__" in setup_cfg
    spelled: Dict[str, List[str]] = {}
    pattern = re.compile(re.escape(f'"{blackbox_sync.__version__}"'))
    for path in [ROOT / "setup.cfg", ROOT / "pyproject.toml", *ROOT.glob("blackbox_sync/**/*.py")]:
        if pattern.search(path.read_text(encoding="utf-8")):
            spelled.setdefault(str(path.relative_to(ROOT)), [])
    assert list(spelled) == [os.path.join("blackbox_sync", "_version.py")]
