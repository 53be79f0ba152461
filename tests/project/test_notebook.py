"""examples/notebook.ipynb runs in a real Jupyter kernel against the emulator, with no errors,
and its replies, messages, transcript and result come out as HTML. Run the way the README says:
``jupyter execute`` (nbclient)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from testkit import ROOT

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def html_of(cell: Any) -> str:
    return "".join(
        str(o.get("data", {}).get("text/html", ""))
        for o in cell.outputs
        if o.output_type in ("execute_result", "display_data")
    )


def test_the_stored_notebook_is_clean() -> None:
    """No outputs in the repository: the rendered views are produced by running it."""
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None


def test_the_notebook_runs_in_a_kernel_against_the_emulator(tmp_path: Path) -> None:
    copy = tmp_path / "notebook.ipynb"
    shutil.copy(NOTEBOOK, copy)
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("BLACKBOX_")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "execute",
            "--kernel_name=python3",
            "--timeout=60",
            "--output=executed",
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    executed = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    code: List[Any] = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors

    def cell_with(source: str) -> Any:
        (cell,) = [c for c in code if source in c.source]
        return cell

    greeting = html_of(cell_with("greeting = conversation.wait_for_reply"))
    assert "Hi! I can check your order status." in greeting
    reply = html_of(cell_with('ask("Where is my order ORD-12345?"'))
    assert "bb-reply" in reply
    assert "Order ORD-12345 is shipped." in reply
    assert "checkOrderStatus" in reply
    assert "tool request" in html_of(cell_with("reply.tool_requests[0]"))
    printed = "".join(o.get("text", "") for o in cell_with('conversation.on("text"').outputs)
    assert "assistant: Order ORD-777 is shipped." in printed  # seen by a reader-thread callback
    transcript = html_of(cell_with("conversation.transcript"))
    assert "bb-transcript" in transcript
    assert "And ORD-777?" in transcript
    assert "Completed" in html_of(cell_with("result = conversation.terminate"))
    (conversation,) = [c for c in code if c.source.strip() == "conversation"]
    assert "token=***" in html_of(conversation)  # the URL, with its token masked
    assert "emu-token-" not in "".join(str(c.outputs) for c in code)  # no secret in any output
