"""Every lab of a test session executed once by the lab runner, then once more by nbval.

A lab is the slowest thing the suite checks, so each executes exactly twice: once through
the lab runner (papermill, CI parameters, a fresh workspace), as CI and learners run it,
and once by nbval, which re-executes the runner's notebook in another fresh workspace and
compares the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` (the reproduction check).
The book build then takes its lab outputs from the runner's notebooks through the
execution cache (:func:`seed_execution_cache`) instead of executing every lab a third time.

Labs run ``LAB_WORKERS`` at a time (2 by default, ``LABKIT_TEST_LAB_WORKERS`` to change):
a lab mostly waits on its jobs and endpoint servers, so two share the 2 cores well.
nbval starts its kernel in the notebook's folder (``RunningKernel(..., cwd=...)`` in
nbval/plugin.py), so the lab's relative paths resolve in the mirrored folder there too.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import run_labs  # noqa: E402

from labkit import sim  # noqa: E402

LAB_WORKERS = int(os.environ.get("LABKIT_TEST_LAB_WORKERS", "2"))
# The runner's records of a session's labs, for the summary the suite prints at its end (conftest.py).
REPORT = ROOT / "_build" / "test-labs" / "report.json"
CELL_TIMEOUT_S = 600
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours, unreadable in a report
PAPERMILL_PARAMETERS_TAG = "injected-parameters"


@dataclass
class LabExecution:
    record: dict  # the runner's report record: status, seconds, peak_mb, error, notebook
    nbval_failure: str | None  # nbval's output when it failed; None when it passed or did not run

    @property
    def notebook(self) -> Path:
        return Path(self.record["notebook"])


def tracebacks(notebook: Path) -> str:
    """The error outputs of an executed notebook, without terminal colours."""
    nb = nbformat.read(notebook, as_version=4)
    text = "\n".join(
        "\n".join(out.get("traceback", []))
        for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"
    )
    return ANSI.sub("", text)


def nbval(notebook: Path, workspace: Path) -> str | None:
    """Re-execute an executed lab with nbval in a fresh workspace; its output if it failed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(LABKIT_BACKEND="simulated", LABKIT_SIM_ROOT=str(workspace),
               MLFLOW_DISABLE_TELEMETRY="true")
    # From the notebook's folder, so no pytest configuration of this repository applies.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-p", "no:cacheprovider",
         "-p", "no:xdist", f"--nbval-cell-timeout={CELL_TIMEOUT_S}"],
        cwd=notebook.parent, env=env, capture_output=True, text=True,
    )
    return None if proc.returncode == 0 else ANSI.sub("", proc.stdout + proc.stderr)


class LabExecutions:
    """Runs the labs a session needs in the background, each once; ``get`` waits for one."""

    def __init__(self, labs: list[run_labs.Lab], out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        # Mirror each folder once, up front: labs sharing a folder would race copying it.
        for folder in sorted({lab.folder for lab in labs}):
            run_labs.mirror(folder, out)
        self._pool = ThreadPoolExecutor(max_workers=max(1, LAB_WORKERS))
        self._futures: dict[str, Future] = {lab.id: self._pool.submit(self._execute, lab) for lab in labs}

    def _execute(self, lab: run_labs.Lab) -> LabExecution:
        record = run_labs.run_lab(lab, self.out, CELL_TIMEOUT_S)
        if record["status"] != "passed":
            return LabExecution(record, None)
        workspace = self.out / lab.folder.name / f"{lab.path.stem}.nbval-workspace"
        failure = nbval(Path(record["notebook"]), workspace)
        sim.stop_everything(workspace)  # what nbval's run left running (the runner stops its own)
        return LabExecution(record, failure)

    def get(self, lab: run_labs.Lab) -> LabExecution:
        return self._futures[lab.id].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        records = [f.result().record for f in self._futures.values() if f.done() and not f.cancelled()]
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(records, indent=2) + "\n")


def seed_execution_cache(cache_path: Path, lab: run_labs.Lab, executed: Path, seconds: float) -> None:
    """Put a lab's runner-executed outputs in the book build's jupyter-cache.

    myst-nb looks a page up by the hash of its code cells and kernelspec as it reads them
    from the .md source (``create_hashed_notebook`` in jupyter_cache), and merges the cached
    outputs into it cell by cell. So the cached notebook is the source as myst-nb reads it,
    with the outputs of the runner's notebook, less the cell papermill inserted for the
    CI parameters. The page then shows the lab as run at its CI sizes."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import read_myst_markdown_notebook

    source = read_myst_markdown_notebook(lab.path.read_text(encoding="utf-8"), path=lab.path)
    ran = [cell for cell in nbformat.read(executed, as_version=4).cells
           if cell.cell_type == "code" and PAPERMILL_PARAMETERS_TAG not in cell.metadata.get("tags", [])]
    code = [cell for cell in source.cells if cell.cell_type == "code"]
    if [cell.source for cell in code] != [cell.source for cell in ran]:
        raise AssertionError(f"{executed} does not hold the code cells of {lab.path}")
    for cell, done in zip(code, ran):
        cell.outputs, cell.execution_count = done.outputs, done.execution_count
    get_cache(str(cache_path)).cache_notebook_bundle(
        CacheBundleIn(source, str(lab.path), data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)
