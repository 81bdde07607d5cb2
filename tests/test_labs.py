"""Every lab under labs/ runs on the simulated workspace, and its checked outputs reproduce.

Each lab runs through the lab runner as CI and the book run it (papermill, CI parameters,
a fresh workspace), then nbval executes the executed notebook again, in a fresh workspace,
and compares the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``.  nbval starts its
kernel in the notebook's folder (``RunningKernel(..., cwd=str(self.fspath.dirname))`` in
nbval/plugin.py), so the lab's relative paths resolve in the mirrored folder there too.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval.plugin import find_comment_markers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import run_labs  # noqa: E402

LABS = run_labs.discover(ROOT / "labs")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours, unreadable in a report
CHECK_OUTPUT = ("check", True)  # what nbval makes of a "# NBVAL_CHECK_OUTPUT" comment


def checks_output(cell) -> bool:
    return cell.cell_type == "code" and CHECK_OUTPUT in find_comment_markers(cell.source)


def tracebacks(notebook: Path) -> str:
    """The error outputs of an executed notebook, without terminal colours."""
    nb = nbformat.read(notebook, as_version=4)
    text = "\n".join(
        "\n".join(out.get("traceback", []))
        for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"
    )
    return ANSI.sub("", text)


@pytest.mark.parametrize("lab", LABS, ids=[lab.id for lab in LABS])
def test_lab_is_testable(lab):
    """Without a parameters cell CI can't size the lab; without a checked cell nbval
    would prove nothing about its output."""
    nb = jupytext.read(lab.path, fmt="md:myst")
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells
               if c.cell_type == "code"), "no code cell tagged `parameters`"
    assert any(checks_output(c) for c in nb.cells), "no cell marked # NBVAL_CHECK_OUTPUT"


@pytest.mark.lab
@pytest.mark.parametrize("lab", LABS, ids=[lab.id for lab in LABS])
def test_lab_runs_and_reproduces(lab, tmp_path):
    [record] = run_labs.run_labs([lab], tmp_path / "out", timeout=600)
    notebook = Path(record["notebook"])
    assert record["status"] == "passed", (
        f"{record['error']}\nexecuted notebook: {notebook}\n"
        + (tracebacks(notebook) if notebook.exists() else "")
    )

    executed = nbformat.read(notebook, as_version=4)
    assert any(checks_output(c) and c.outputs for c in executed.cells), \
        "the cells marked # NBVAL_CHECK_OUTPUT print nothing, so nbval compares nothing"

    env = dict(
        os.environ,
        LABKIT_BACKEND="simulated",
        LABKIT_SIM_ROOT=str(tmp_path / "nbval.workspace"),
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    # Run from the notebook's folder so no pytest configuration of this repository applies.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-p", "no:cacheprovider",
         "--nbval-cell-timeout=600"],
        cwd=notebook.parent, env=env, capture_output=True, text=True,
    )
    failed = proc.returncode != 0
    assert not failed, "nbval failed:\n" + ANSI.sub("", proc.stdout + proc.stderr)
