"""Every lab under labs/ runs on the simulated workspace, and its checked outputs reproduce.

Each lab runs through the lab runner as CI and the book run it (papermill, CI parameters,
a fresh workspace); then nbval executes the executed notebook again, in a fresh workspace,
and compares the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``. The executions are
shared with the book test (see ``lab_executions.py``), so each lab executes twice per session.
"""
import jupytext
import nbformat
import pytest
from nbval.plugin import find_comment_markers

from lab_executions import run_labs, tracebacks

LABS = run_labs.discover(run_labs.ROOT / "labs")
CHECK_OUTPUT = ("check", True)  # what nbval makes of a "# NBVAL_CHECK_OUTPUT" comment


def checks_output(cell) -> bool:
    return cell.cell_type == "code" and CHECK_OUTPUT in find_comment_markers(cell.source)


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
def test_lab_runs_and_reproduces(lab, lab_executions):
    execution = lab_executions.get(lab)
    record, notebook = execution.record, execution.notebook
    assert record["status"] == "passed", (
        f"{record['error']}\nexecuted notebook: {notebook}\n"
        + (tracebacks(notebook) if notebook.exists() else "")
    )

    executed = nbformat.read(notebook, as_version=4)
    assert any(checks_output(c) and c.outputs for c in executed.cells), \
        "the cells marked # NBVAL_CHECK_OUTPUT print nothing, so nbval compares nothing"
    assert execution.nbval_failure is None, "nbval failed:\n" + execution.nbval_failure
