"""Plain helpers the tests share (the shared fixtures are in conftest.py).

Waiting: ``wait_until`` polls any condition; ``wait_for_job`` / ``wait_for_jobs`` poll jobs until
they have ended. Files: ``write_files`` lays out a folder of small scripts for a job or a
deployment. Processes: ``processes_under`` and ``assert_no_processes_under`` find what the
simulation left running. MLflow: ``workspace_tracking`` points MLflow at a workspace for a block;
``sklearn_pins`` names a scikit-learn model's requirements.
"""
from __future__ import annotations

import contextlib
import os
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterable


# -- waiting ------------------------------------------------------------------------------------
def wait_until(condition: Callable[[], object], timeout: float, interval: float) -> bool:
    """Call ``condition`` every ``interval`` seconds until it is true or ``timeout`` seconds have
    passed; whether it was true at the end. The caller asserts what it needs afterwards."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(interval)
    return bool(condition())


def wait_for_jobs(ml_client, names: Iterable[str], timeout: float = 180, interval: float = 0.1) -> dict:
    """``{name: job}`` once every job named has ended (polled as a learner's wait does); an
    AssertionError naming those still going after ``timeout`` seconds."""
    from labkit.sim.jobs import job_state

    names = list(names)
    ended: dict = {}
    deadline = time.monotonic() + timeout
    while True:
        for name in names:
            if name not in ended:
                job = ml_client.jobs.get(name)
                if job.status in job_state.TERMINAL_STATUSES:
                    ended[name] = job
        if len(ended) == len(names):
            return {name: ended[name] for name in names}
        if time.monotonic() >= deadline:
            going = {name: ml_client.jobs.get(name).status for name in names if name not in ended}
            raise AssertionError(f"jobs did not finish in {timeout}s: {going}")
        time.sleep(interval)


def wait_for_job(ml_client, name: str, timeout: float = 180, interval: float = 0.1):
    """The job once it has ended; an AssertionError if it has not after ``timeout`` seconds."""
    return wait_for_jobs(ml_client, [name], timeout=timeout, interval=interval)[name]


# -- files --------------------------------------------------------------------------------------
def write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    """``folder`` (made if missing) holding ``files``: ``{relative path: content}``, text dedented
    (so a script can sit indented in a test), bytes written as they are. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    return folder


# -- MLflow -------------------------------------------------------------------------------------
@contextlib.contextmanager
def workspace_tracking(ml_client):
    """MLflow's tracking URI is the workspace's inside the block, and MLflow's default after it."""
    import mlflow

    mlflow.set_tracking_uri(ml_client.workspaces.get().mlflow_tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)


# -- processes ----------------------------------------------------------------------------------
def processes_under(root) -> list[int]:
    """Live processes whose command line or working folder names a path under ``root``: the
    simulation's servers, front doors and deployment instances (an instance forked from the
    warm server has that server's command line, but runs in its deployment's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (str(root) in cmdline or str(root) in cwd) and state != "Z":
            found.append(int(entry.name))
    return found


def assert_no_processes_under(root, timeout: float, interval: float,
                              message: str = "processes were left running") -> None:
    """No process is left under ``root`` once ``timeout`` seconds have given them time to stop."""
    wait_until(lambda: not processes_under(root), timeout, interval)
    assert processes_under(root) == [], message


def sklearn_pins() -> list[str]:
    """A scikit-learn model's pins, named, so MLflow need not infer them by loading the model in a
    new Python process (about 5 s a model). Tests where what MLflow infers is not the point pass
    them; a model logged inside a job is logged as a learner logs one, inference and all."""
    import mlflow.sklearn

    return mlflow.sklearn.get_default_pip_requirements()
