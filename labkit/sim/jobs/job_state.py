"""A job's state, shared by the front end (``jobs/operations.py``) and the worker (``job_runner.py``).

The job's row in the store holds its REST payload, whose ``properties.status`` is the
status the SDK reads. Beside it, the job folder ``<workspace>/jobs/<name>/`` holds what a
compute node would: the code snapshot, ``user_logs/std_log.txt``, ``runtime.json`` (the
worker's pid and times) and ``error.json`` when the job failed.
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

from labkit.sim.core.references import JOB_KIND
from labkit.sim.core.store import utc_now
from labkit.sim.core.workspace import SimWorkspace

KIND = JOB_KIND
# A job stored NotStarted whose submitting process is gone, with no worker after this long,
# never got one (a forked worker records its pid within milliseconds).
NEVER_STARTED_AFTER_S = 10.0
TERMINAL_STATUSES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
ACTIVE_STATUSES = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")
DEFAULT_EXPERIMENT = "Default"  # a job that names no experiment
# The tag naming the schedule that triggered a job (pipeline jobs and monitor jobs alike).
SCHEDULE_TAG = "azureml.scheduleTrigger.scheduleName"


class Canceled(BaseException):
    """Raised in a job's worker when the job is canceled (SIGTERM from ``begin_cancel``).

    Like ``KeyboardInterrupt`` it may arise between any two statements, so it is not an
    ``Exception``: a library that wraps every ``Exception`` (MLflow turns one raised in its
    database session into an ``MlflowException``) must not turn a cancel into a failure.
    Defined here, not in ``job_runner`` (which runs as ``__main__``), so that every module
    that catches it catches the same class."""


_cancel_deferrals = 0
_cancel_pending = False


def on_cancel(signum, frame) -> None:
    """A job worker's SIGTERM handler: raise ``Canceled`` now, or when the deferral ends."""
    global _cancel_pending
    if _cancel_deferrals:
        _cancel_pending = True
        return
    _raise_canceled()


def _raise_canceled() -> None:
    # A cancel is raised once: a second SIGTERM (a sweep's and a learner's cancel of the same
    # trial) must not cut the first one's clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Canceled()


@contextlib.contextmanager
def cancel_deferred():
    """Run a step a cancel must not cut in two: storing a child job and starting its worker
    (a sweep canceled in between would leave a trial no worker ever runs, CancelRequested
    for ever). A cancel that arrives meanwhile is raised when the step is done."""
    global _cancel_deferrals, _cancel_pending
    _cancel_deferrals += 1
    try:
        yield
    finally:
        _cancel_deferrals -= 1
    if not _cancel_deferrals and _cancel_pending:
        _cancel_pending = False
        _raise_canceled()


@contextlib.contextmanager
def interrupt_deferred():
    """The same for a learner's interrupt (Ctrl-C, a notebook's stop button): it waits until a
    submitted job is stored and its worker started, then raises ``KeyboardInterrupt``. Only
    the main thread receives signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


MLFLOW_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


def job_folder(workspace: SimWorkspace, name: str) -> Path:
    return workspace.folder / "jobs" / name


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def runtime(workspace: SimWorkspace, name: str) -> dict:
    return _read_json(job_folder(workspace, name) / "runtime.json")


def write_runtime(workspace: SimWorkspace, name: str, **values) -> None:
    path = job_folder(workspace, name) / "runtime.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**runtime(workspace, name), **values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def worker_pid(workspace: SimWorkspace, name: str) -> int | None:
    return runtime(workspace, name).get("pid")


def status_of(workspace: SimWorkspace, name: str) -> str:
    row = workspace.store.get(KIND, name)
    return row.payload["properties"].get("status") if row else "Unknown"


def update_properties(workspace: SimWorkspace, name: str, change, only_from: tuple[str, ...] | None = None) -> bool:
    """Apply ``change(properties)`` to a job's payload in one transaction; with ``only_from``,
    only while the job's status is one of those."""
    from labkit.sim.core.store import load_rest_class

    store = workspace.store
    with store.transaction() as db:
        row = db.execute("SELECT payload, rest_class FROM resources WHERE kind=? AND name=? AND version=''",
                         (KIND, name)).fetchone()
        payload = json.loads(row["payload"])
        if only_from is not None and payload["properties"].get("status") not in only_from:
            return False
        change(payload["properties"])
        store.put(db, KIND, name, "", load_rest_class(row["rest_class"])(payload))
    return True


def set_status(workspace: SimWorkspace, name: str, status: str, only_from: tuple[str, ...] | None = None) -> bool:
    return update_properties(workspace, name, lambda props: props.update(status=status), only_from)


def finish(workspace: SimWorkspace, name: str, status: str, error: str | None = None) -> None:
    """End a job: its status, its error, its MLflow run, its summary page."""
    from mlflow.tracking import MlflowClient

    if error:
        (job_folder(workspace, name)).mkdir(parents=True, exist_ok=True)
        (job_folder(workspace, name) / "error.json").write_text(json.dumps({"message": error}, indent=2))
    write_runtime(workspace, name, end_time=utc_now())
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    with contextlib.suppress(MlflowException):  # a job canceled before it started has no run
        client.set_terminated(name, status=MLFLOW_STATUS.get(status, "FAILED"))
    set_status(workspace, name, status)
    write_summary(workspace, name)


def error_of(workspace: SimWorkspace, name: str) -> str:
    message = _read_json(job_folder(workspace, name) / "error.json").get("message")
    return message or "Detailed error not set on the Run. Please check the logs for details."


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped is a zombie: count it as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def request_cancel(workspace: SimWorkspace, name: str) -> None:
    """Cancel a job in progress: CancelRequested, then SIGTERM to its worker's process group
    (a sweep's or pipeline's worker cancels its children). A worker that has not written its
    pid yet sees CancelRequested before it runs anything."""
    set_status(workspace, name, "CancelRequested")
    pid = worker_pid(workspace, name)
    if pid:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(pid, signal.SIGTERM)


def refresh_if_worker_died(workspace: SimWorkspace, name: str) -> None:
    """A job whose worker process is gone (killed, machine restarted) did not finish: say so.
    So too a job stored by a process killed before it started the job's worker."""
    status = status_of(workspace, name)
    if status == "NotStarted":
        _fail_if_never_started(workspace, name)
        return
    if status not in ACTIVE_STATUSES:
        return
    pid = worker_pid(workspace, name)
    if pid and not pid_alive(pid):
        time.sleep(0.2)  # the worker may be writing its final status right now
        status = status_of(workspace, name)
        if status == "CancelRequested":  # the cancel ended it before it could say so
            finish(workspace, name, "Canceled", "The job was canceled.")
        elif status in ACTIVE_STATUSES:
            finish(workspace, name, "Failed", "The job's process ended without reporting a result "
                                              "(it was killed, or the machine restarted).")


def _fail_if_never_started(workspace: SimWorkspace, name: str) -> None:
    facts = runtime(workspace, name)
    submitter = facts.get("submitter")
    if facts.get("pid") or not submitter or pid_alive(submitter):
        return
    row = workspace.store.get(KIND, name)
    age = time.time() - datetime.fromisoformat(row.created_at.replace("Z", "+00:00")).timestamp()
    if age > NEVER_STARTED_AFTER_S:
        finish(workspace, name, "Failed", "The job never started: the process that submitted it ended before "
                                          "it could start the job (a kernel killed or restarted in that moment). "
                                          "Submit the job again.")


# -- where a job's data lives -------------------------------------------------------------------
def write_summary(workspace: SimWorkspace, name: str) -> None:
    """The page ``studio_url`` points at: the job's status, times, command and log."""
    row = workspace.store.get(KIND, name)
    props = row.payload["properties"]
    folder = job_folder(workspace, name)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "user_logs" / "std_log.txt"
    times = runtime(workspace, name)
    page = f"""<!doctype html><meta charset="utf-8"><title>{html.escape(name)}</title>
<h1>Job {html.escape(name)} <small>(simulated workspace {html.escape(workspace.name)})</small></h1>
<p>Status: <b>{html.escape(str(props.get('status')))}</b> &middot; experiment {html.escape(str(props.get('experimentName')))}
&middot; started {html.escape(str(times.get('start_time', '-')))} &middot; ended {html.escape(str(times.get('end_time', '-')))}</p>
<h2>Command</h2><pre>{html.escape(str(props.get('command', '')))}</pre>
<h2>user_logs/std_log.txt</h2><pre>{html.escape(log.read_text(errors='replace') if log.exists() else '')}</pre>
"""
    (folder / "index.html").write_text(page)
