"""Warm job workers: each job's worker is forked from a process that has already imported
what the worker and a training script need. This module is the requesting side (what clients
and workers call); the server itself is ``labkit.sim.jobs.warm_server``.

A cold worker (``python -m labkit.sim.jobs.job_runner``) spends a second or more importing the
simulation, the SDK's exceptions, fsspec and MLflow before it does anything, and the
script it runs (``python train.py``) imports MLflow, pandas and scikit-learn all over
again; a sweep pays both per trial, a pipeline per step. Instead:

* one *shared server* (``python -m labkit.sim.jobs.warm_server <socket>``) imports all of that
  once (about 6 s of CPU), then forks a worker for each job a client sends it (a fork is
  copy-on-write: milliseconds, and no import). Every client process with the same
  interpreter, labkit code, installed packages and environment, less the variables that name
  its own workspace or session (``PER_CLIENT_VARIABLE``), talks to the same server over a Unix
  socket in a folder of the user's own and no one else's (``_address``, ``_own_folder``): a
  kernel restarted, the next lab, the
  test suite's many kernels do not pay the imports again (each paid them once per kernel,
  about a fifth of ``make test``'s CPU). The first client to need it starts it, at its first
  job or deployment (at ``labkit.connect()`` it cost the labs that run no job seconds and
  memory for nothing); it exits when no client has sent it anything for 5 minutes. A process
  that cannot have a server (the folder is not the user's alone, the socket's path is too
  long, the server did not start) starts every worker cold. Each
  worker runs in its job's folder, a session of its own whose parent exits at once, so it
  outlives the client, as a cold one does;
* a worker's first act, before it opens the store or MLflow, is to fork a clean *twin*:
  no connection, lock or thread crosses a fork. The twin serves its worker: it forks the
  worker's child jobs (a sweep's trials, a pipeline's steps) the same way, or it becomes
  the process of a command that is a plain ``python script.py args``, and runs the script
  as ``python`` would: this interpreter, the same argv, ``sys.path[0]``,
  environment, working folder, stdin, exit status and traceback;
* an online deployment's instances (``python -m labkit.sim.online_server``) are forked from
  the shared server the same way (``start_module``): its scoring script finds MLflow,
  pandas and scikit-learn imported. Such a process has the server's command line: it is
  known by its working folder, the deployment's;
* any other command still runs in ``bash -c``. Where fork is not safe (not Linux, or a
  thread started while importing) or ``LABKIT_SIM_WARM_WORKERS=0``, every worker is cold.

What a warm script sees differently from a fresh ``python`` is only what was imported
before it started: those modules' import-time reads of the environment (a job that sets
``OMP_NUM_THREADS`` does not reach NumPy's thread pool) and the hash seed, which all forks of
one server share. A command whose
environment differs from the server's in a ``PYTHON*`` variable runs cold. NumPy's global
random state, which every fork would otherwise share, is reseeded from fresh entropy.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

ENABLED_VARIABLE = "LABKIT_SIM_WARM_WORKERS"
READY, COLD = "ready", "cold"
# A command bash would run as it is: every word plain (no quoting, variable, glob,
# redirection, pipe or list), so splitting it on spaces gives exactly bash's argv.
PLAIN_COMMAND = re.compile(r"[\w./:=,@%+-]+(?: +[\w./:=,@%+-]+)*")
# Python variables the server read at its own start-up; a job that changes one runs cold.
PYTHON_VARIABLE = re.compile(r"PYTHON(?!UNBUFFERED$)")
# Variables that differ between clients a server serves alike: none of the modules it preloads
# reads them as it is imported (the simulation reads its root, MLflow these, a scoring script
# its model folder, when called; checked in their sources), and every request carries the
# client's own environment. Any other difference means another server.
PER_CLIENT_VARIABLE = re.compile(
    r"(LABKIT_SIM_ROOT|MLFLOW_TRACKING_URI|MLFLOW_RUN_ID|MLFLOW_EXPERIMENT_ID|MLFLOW_EXPERIMENT_NAME"
    r"|MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR|AZUREML_MODEL_DIR"
    r"|PWD|OLDPWD|SHLVL|_)$"  # a shell's bookkeeping: `nice cmd` or `cmd &` changes it, nothing reads it
    r"|JPY_|PYTEST_")
LABKIT_PACKAGE = Path(__file__).resolve().parents[2]
# The longest path an AF_UNIX socket can have on Linux (sun_path's 108 bytes, its NUL included).
MAX_SOCKET_PATH = 107
# A server whose preload has not answered by then is taken as hung: killed, and this process goes cold.
START_TIMEOUT_S = 120
SERVERS_LOG_MAX_BYTES = 1 << 20  # the servers' shared log starts over past this


def enabled() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get(ENABLED_VARIABLE, "1") != "0")


# == the requesting side ===========================================================================
class _Server:
    """A warm process that forks on request: one line of JSON in, one line back. Either the
    shared server, which greets each client first (``ready <pid>``), or a worker's twin."""

    def __init__(self, requests, replies, twin_pid: int | None = None):
        self.requests, self.replies, self.twin_pid = requests, replies, twin_pid
        self.greeted = twin_pid is not None
        self.sent = False  # whether the last request reached the server (see ask)

    def alive(self) -> bool:
        if self.twin_pid is None:  # the shared server: one that has gone answers nothing (ask)
            return True
        try:
            return os.waitpid(self.twin_pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def ask(self, request: dict) -> str | None:
        """The server's answer, or None when it has gone. ``self.sent`` then says whether the
        request had reached it: if so it may have forked before it went."""
        self.sent = False
        try:
            if not self.greeted:
                self.greeted = True
                if not _is_ready(self.replies.readline().strip()):
                    return None
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
            self.sent = True
            return self.replies.readline().strip() or None
        except (BrokenPipeError, OSError, ValueError):
            return None


_server: _Server | None = None
_owner_pid: int | None = None  # the process _server belongs to
_served_environment: dict | None = None  # the server environment _server was found for
_cold_here = False  # no server can serve this process (see _shared_server): every worker is cold
_lock = threading.Lock()
# Cold workers' handles, so each is reaped when it ends (no zombie processes).
_cold_workers: list[subprocess.Popen] = []


def _server_environment(env: dict) -> dict:
    """The environment a shared server starts with: the client's, less its own workspace and session."""
    return {**{key: value for key, value in env.items() if not PER_CLIENT_VARIABLE.match(key)}, "PYTHONUNBUFFERED": "1"}


def _address(env: dict, package: Path = LABKIT_PACKAGE) -> Path:
    """Where the server for a client with ``env`` listens: named by a digest of what its forks
    inherit, so a change to any of it (labkit's code, an installed package, a variable, the
    process's own settings) means another server. The folder is the user's own, in the
    temporary folder, as an AF_UNIX path must be short."""
    digest = hashlib.sha256(json.dumps([sys.executable, str(package), sorted(env.items()),
                                        _process_settings()]).encode())
    for path in sorted(package.rglob("*.py")):
        try:
            status = path.stat()
        except OSError:  # an editor's lock link, or a file saved by renaming: not code
            continue
        digest.update(f"{path}:{status.st_mtime_ns}:{status.st_size}\n".encode())
    for folder in sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}):
        digest.update(f"{folder}:{os.stat(folder).st_mtime_ns}\n".encode())  # a package installed or removed
    return Path(tempfile.gettempdir()) / f"labkit-{os.getuid()}" / f"warm-{digest.hexdigest()[:20]}.sock"


def _process_settings() -> list:
    """What a fork inherits from its server rather than from the client that asked for it, as
    a cold worker would: the file mode mask, niceness, resource limits, CPU affinity, groups
    and control group."""
    import resource

    limits = [resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource))
              if name.startswith("RLIMIT_")]
    try:
        with open("/proc/self/cgroup") as cgroup:
            control_group = cgroup.read()
    except OSError:
        control_group = ""
    return [_umask(), os.getpriority(os.PRIO_PROCESS, 0), limits, sorted(os.sched_getaffinity(0)),
            os.getuid(), os.getgid(), sorted(os.getgroups()), control_group]


def _umask() -> int:
    """This process's file mode mask, read without changing it (Linux says it in /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise OSError("no Umask line in /proc/self/status")


def _own_folder(folder: Path) -> None:
    """Make ``folder`` if need be, and check it is this user's alone: another user could
    otherwise have made it first, to listen in the server's place (every request carries the
    client's environment) or to point its lock file at a file of ours. ``PermissionError`` if not."""
    folder.mkdir(mode=0o700, exist_ok=True)
    status = os.lstat(folder)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{folder} is not this user's alone (owner, mode 0700, not a link)")


def _connect(address: Path) -> _Server | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(address))
    except OSError:  # none there, or one that has just exited
        client.close()
        return None
    return _Server(client.makefile("w"), client.makefile("r"))


def _start_server(address: Path, env: dict) -> bool:
    """Start the shared server at ``address``; whether it is serving (else forking is unsafe
    here, or it could not start: the servers' log, beside the socket, says why)."""
    log = address.parent / "warm-servers.log"
    with contextlib.suppress(FileNotFoundError):
        if log.stat().st_size > SERVERS_LOG_MAX_BYTES:
            log.unlink()
    with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600), "ab") as errors:
        # From labkit's parent folder, so ``-m`` finds the same labkit wherever it lives.
        process = subprocess.Popen([sys.executable, "-m", "labkit.sim.jobs.warm_server", str(address)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env,
                                   cwd=LABKIT_PACKAGE.parent, text=True, start_new_session=True)
    with process.stdout:
        answered, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        greeting = process.stdout.readline().strip() if answered else ""
    if not answered:
        process.kill()
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it exits
    return greeting == READY


def _shared_server(env: dict) -> _Server | None:
    """A connection to this client's shared server, started if there is none; None when there
    is none. One client starts a server while the others wait on its lock file. Where there
    can be none (see ``_own_folder``, ``MAX_SOCKET_PATH``; a server that would not start, or
    said forking is unsafe), this process goes cold for good rather than try at every job."""
    import fcntl  # POSIX only, as fork is: enabled() is False elsewhere

    global _cold_here
    try:
        address = _address(env)
        if len(os.fsencode(address)) > MAX_SOCKET_PATH:
            raise OSError(f"the socket's path is too long for AF_UNIX: {address}")
        _own_folder(address.parent)
        lock = os.open(address.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with open(lock, "w"):
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = _connect(address)
            if server is None:
                if not _start_server(address, env):
                    _cold_here = True
                    return None
                server = _connect(address)
    except OSError:  # not ours to use, or not usable: every worker starts cold
        _cold_here = True
        return None
    return server


def _current_server() -> _Server | None:
    """This process's server: a worker's twin, or the shared server for the environment as it
    is now (a client that set a variable since its last job needs the server of that one)."""
    global _server, _owner_pid, _served_environment
    twin = _server is not None and _server.twin_pid is not None
    if twin and _owner_pid == os.getpid() and _server.alive():
        return _server
    environment = _server_environment(dict(os.environ))
    if twin or _server is None or _owner_pid != os.getpid() or environment != _served_environment:
        _server, _owner_pid, _served_environment = _shared_server(environment), os.getpid(), environment
    return _server


def _ask(request: dict) -> str | None:
    """This process's server's answer to a request (``ready`` and maybe a pid), or None when
    forking is not possible here: the caller then starts the process cold."""
    global _server
    if not enabled() or _cold_here:
        return None
    with _lock:
        for _ in range(2):  # a server that went idle before it heard the request is replaced once
            server = _current_server()
            if server is None:
                return None
            answer = server.ask(request)
            if _is_ready(answer):
                return answer
            _server = None
            # It refused (it could not fork), or went after the request reached it: asking
            # again could start the process twice. The caller starts it cold, which does the
            # same in the one case left, a server killed between its fork and its answer.
            if answer is not None or server.sent:
                return None
    return None


def _is_ready(answer: str | None) -> bool:
    """A server's answer says it forked: ``ready``, followed by the new process's pid if any."""
    return bool(answer) and answer.split()[0] == READY


def start_job(workspace_folder: Path, name: str, job_folder: Path, log: Path) -> None:
    """Start a job's worker in ``job_folder``, warm where possible; its output goes to ``log``."""
    request = {"op": "job", "folder": str(workspace_folder), "name": name, "log": str(log),
               "env": dict(os.environ), "cwd": str(job_folder)}
    if _ask(request):
        return
    with open(log, "ab") as output:
        worker = subprocess.Popen([sys.executable, "-m", "labkit.sim.jobs.job_runner", str(workspace_folder), name],
                                  cwd=job_folder, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                  start_new_session=True)
    _cold_workers.append(worker)
    threading.Thread(target=worker.wait, daemon=True).start()


def start_module(module: str, args: list[str], env: dict, cwd: Path, log: Path) -> int | None:
    """Start ``python -m <module> <args>`` warm, in a session of its own, with ``env`` and ``cwd``
    and its output to ``log``: its pid, or None if it must start cold (then the caller spawns it).
    ``env`` needs no ``PYTHONPATH`` for labkit: the fork has imported it already. A module run so
    has the server's command line, not its own: find it by its working folder."""
    if _python_variables(env) != _python_variables(_startup_env):
        return None
    answer = _ask({"op": "module", "module": module, "argv": [module, *args], "env": env, "cwd": str(cwd),
                   "log": str(log)})
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
    if twin is None or twin.twin_pid is None or not twin.alive():
        return None
    answer = twin.ask({"op": "script", "argv": argv, "env": env, "cwd": str(cwd), "log": str(log)})
    return twin.twin_pid if _is_ready(answer) else None


def wait(pid: int) -> int:
    """The exit code of a script's process, as ``Popen.wait`` gives it (minus a signal number)."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _python_variables(env: dict) -> dict:
    return {key: value for key, value in env.items() if PYTHON_VARIABLE.match(key)}


# Python variables the server read at its own start-up (the server imports this module at once).
_startup_env: dict = dict(os.environ)
