"""Warm job workers: each job's worker is forked from a process that has already imported
what the worker and a training script need. This module is the requesting side (what clients
and workers call); the server itself is ``labkit.sim.jobs.warm_server``.

A cold worker (``python -m labkit.sim.jobs.job_runner``) spends a second or more importing the
simulation, the SDK's exceptions, fsspec and MLflow before it does anything, and the
script it runs (``python train.py``) imports MLflow, pandas and scikit-learn all over
again; a sweep pays both per trial, a pipeline per step. Instead:

* the client starts one *warm server* (``python -m labkit.sim.jobs.warm_server``) the first
  time it submits a job or deploys. The server imports all of that once (about 6 s of CPU),
  then forks a worker for each job it is sent (a fork is copy-on-write: milliseconds, and no
  import). It starts when first needed, not at ``labkit.connect()``: started there, it cost
  every lab that runs no job (8 of the 21) those seconds and about 380 MB, and made the labs
  with jobs no faster that we could measure. Each worker is a session of its own whose parent
  exits at once, so it outlives the client, as a cold one does;
* a worker's first act, before it opens the store or MLflow, is to fork a clean *twin*:
  no connection, lock or thread crosses a fork. The twin serves its worker: it forks the
  worker's child jobs (a sweep's trials, a pipeline's steps) the same way, or it becomes
  the process of a command that is a plain ``python script.py args``, and runs the script
  as ``python`` would: this interpreter, the same argv, ``sys.path[0]``,
  environment, working folder, stdin, exit status and traceback;
* an online deployment's instances (``python -m labkit.sim.online_server``) are forked from
  the client's server the same way (``start_module``): its scoring script finds MLflow,
  pandas and scikit-learn imported. Such a process has the server's command line: it is
  known by its working folder, the deployment's;
* any other command still runs in ``bash -c``. Where fork is not safe (not Linux, or a
  thread started while importing) or ``LABKIT_SIM_WARM_WORKERS=0``, every worker is cold.

What a warm script sees differently from a fresh ``python`` is only what was imported
before it started: those modules' import-time reads of the environment (a job that sets
``OMP_NUM_THREADS`` does not reach NumPy's thread pool) and the hash seed. A command whose
environment differs from the server's in a ``PYTHON*`` variable runs cold. NumPy's global
random state, which every fork would otherwise share, is reseeded from fresh entropy.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

ENABLED_VARIABLE = "LABKIT_SIM_WARM_WORKERS"
SERVER_LOG = "warm-server.log"  # in the workspace's folder: what the server itself prints
READY, COLD = "ready", "cold"
# A command bash would run as it is: every word plain (no quoting, variable, glob,
# redirection, pipe or list), so splitting it on spaces gives exactly bash's argv.
PLAIN_COMMAND = re.compile(r"[\w./:=,@%+-]+(?: +[\w./:=,@%+-]+)*")
# Python variables the server read at its own start-up; a job that changes one runs cold.
PYTHON_VARIABLE = re.compile(r"PYTHON(?!UNBUFFERED$)")


def enabled() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get(ENABLED_VARIABLE, "1") != "0")


# == the requesting side ===========================================================================
class _Server:
    """A warm process that forks jobs on request: one line of JSON in, one line back."""

    def __init__(self, pid: int, requests, replies, process: subprocess.Popen | None = None):
        self.pid, self.requests, self.replies, self.process = pid, requests, replies, process
        # A client's server greets once, READY or COLD, when it has started; twins do not.
        self.greeted = process is None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def ask(self, request: dict) -> str | None:
        """The server's answer, or None when it has gone (before forking anything)."""
        try:
            if not self.greeted:
                self.greeted = True
                greeting = self.replies.readline().strip()
                if greeting != READY:
                    return greeting or None
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
            return self.replies.readline().strip() or None
        except (BrokenPipeError, OSError, ValueError):
            return None


_server: _Server | None = None
_owner_pid: int | None = None  # the process _server belongs to
_cold_here = False  # a server said forking is not safe in this process: every worker is cold
_lock = threading.Lock()
# Cold workers' handles, so each is reaped when it ends (no zombie processes).
_cold_workers: list[subprocess.Popen] = []


def _spawn_server(log: Path) -> _Server:
    """Start a client's warm server (it greets when it has started: see ``_Server.ask``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as errors:
        process = subprocess.Popen([sys.executable, "-m", "labkit.sim.jobs.warm_server"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors, env=env, text=True,
                                   start_new_session=True)
    return _Server(process.pid, process.stdin, process.stdout, process)


def _current_server(log: Path) -> _Server:
    global _server, _owner_pid
    if _server is None or _owner_pid != os.getpid() or not _server.alive():
        _server, _owner_pid = _spawn_server(log), os.getpid()
    return _server


def _ask(request: dict, log: Path) -> str | None:
    """This process's server's answer to a request (``ready`` and maybe a pid), or None when
    forking is not possible here: the caller then starts the process cold."""
    global _server, _cold_here
    if not enabled() or _cold_here:
        return None
    with _lock:
        for _ in range(2):  # a server that went idle meanwhile is replaced once
            answer = _current_server(log).ask(request)
            if _is_ready(answer):
                return answer
            if answer == COLD:  # one of its imports started a thread: forking is unsafe
                _cold_here = True
                return None
            _server = None
    return None


def _is_ready(answer: str | None) -> bool:
    """A server's answer says it forked: ``ready``, followed by the new process's pid if any."""
    return bool(answer) and answer.split()[0] == READY


def start_job(workspace_folder: Path, name: str, log: Path) -> None:
    """Start a job's worker, warm where possible; its output goes to ``log``."""
    request = {"op": "job", "folder": str(workspace_folder), "name": name, "log": str(log),
               "env": dict(os.environ), "cwd": os.getcwd()}
    if _ask(request, log):
        return
    with open(log, "ab") as output:
        worker = subprocess.Popen([sys.executable, "-m", "labkit.sim.jobs.job_runner", str(workspace_folder), name],
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
    _cold_workers.append(worker)
    threading.Thread(target=worker.wait, daemon=True).start()


def start_module(module: str, args: list[str], env: dict, cwd: Path, log: Path, server_log: Path) -> int | None:
    """Start ``python -m <module> <args>`` warm, in a session of its own, with ``env`` and ``cwd``
    and its output to ``log`` (``server_log``: where a server started for it writes its own):
    its pid, or None if it must start cold (then the caller spawns it).
    ``env`` needs no ``PYTHONPATH`` for labkit: the fork has imported it already. A module run so
    has the server's command line, not its own: find it by its working folder."""
    if _python_variables(env) != _python_variables(_startup_env):
        return None
    answer = _ask({"op": "module", "module": module, "argv": [module, *args], "env": env, "cwd": str(cwd),
                   "log": str(log)}, server_log)
    return int(answer.split()[1]) if answer else None


def plain_python(command: str, env: dict, cwd: Path) -> list[str] | None:
    """The argv of a command that is ``python script.py args`` for this very interpreter
    and may run warm; None for any other command."""
    if not PLAIN_COMMAND.fullmatch(command.strip()):
        return None
    argv = command.split()
    if len(argv) < 2 or argv[0] not in ("python", "python3") or not argv[1].endswith(".py"):
        return None
    found = shutil.which(argv[0], path=env.get("PATH"))
    if not found or os.path.realpath(found) != os.path.realpath(sys.executable):
        return None
    if not (cwd / argv[1]).is_file():
        return None
    if _python_variables(env) != _python_variables(_startup_env):
        return None
    return argv


def run_script(argv: list[str], env: dict, cwd: Path, log: Path) -> int | None:
    """Run a plain Python command in this worker's twin; its pid, or None if there is no twin."""
    global _server
    twin, _server = _server, None  # the twin becomes the script: it serves nothing after this
    if twin is None or twin.process is not None or not twin.alive():
        return None
    answer = twin.ask({"op": "script", "argv": argv, "env": env, "cwd": str(cwd), "log": str(log)})
    return twin.pid if _is_ready(answer) else None


def wait(pid: int) -> int:
    """The exit code of a script's process, as ``Popen.wait`` gives it (minus a signal number)."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _python_variables(env: dict) -> dict:
    return {key: value for key, value in env.items() if PYTHON_VARIABLE.match(key)}


# Python variables the server read at its own start-up (the server imports this module at once).
_startup_env: dict = dict(os.environ)
