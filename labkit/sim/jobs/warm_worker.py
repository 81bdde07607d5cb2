"""Warm job workers: each job's worker is forked from a process that has already imported
what the worker and a training script need.

A cold worker (``python -m labkit.sim.jobs.job_runner``) spends a second or more importing the
simulation, the SDK's exceptions, fsspec and MLflow before it does anything, and the
script it runs (``python train.py``) imports MLflow, pandas and scikit-learn all over
again; a sweep pays both per trial, a pipeline per step. Instead:

* the client starts one *warm server* (``python -m labkit.sim.jobs.warm_worker``) the first
  time it submits a job. The server imports all of that once, then forks a worker for each
  job it is sent (a fork is copy-on-write: milliseconds, and no import). ``labkit.connect()``
  starts it at once (``prestart``), so it has imported all by the time a lab's first job
  comes. Each worker is a session of its own whose parent exits at once, so it outlives
  the client, as a cold one does;
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

import atexit
import builtins
import contextlib
import importlib
import importlib.machinery
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path

ENABLED_VARIABLE = "LABKIT_SIM_WARM_WORKERS"
# What jobs and their scripts import, in the order a job needs them (each is skipped if it
# is not installed). MLflow's SQL stores open the job's run; skops is what MLflow 3 saves a
# scikit-learn model with by default.
PRELOAD = (
    "labkit.sim.jobs.job_runner", "labkit.sim.core.client", "labkit.sim.jobs.sweep", "labkit.sim.jobs.pipeline", "labkit.sim.core.tracking",
    "mlflow", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "labkit.sim.assets.mlflow_registry", "mlflow.sklearn", "pandas", "sklearn.ensemble", "sklearn.linear_model",
    "sklearn.model_selection", "sklearn.metrics", "sklearn.pipeline", "sklearn.preprocessing", "skops.io",
)
# A client's server no one has sent a job for this long exits (its memory back); the next
# job starts another.
IDLE_EXIT_S = 300
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
        process = subprocess.Popen([sys.executable, "-m", "labkit.sim.jobs.warm_worker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors, env=env, text=True,
                                   start_new_session=True)
    return _Server(process.pid, process.stdin, process.stdout, process)


def _current_server(log: Path) -> _Server:
    global _server, _owner_pid
    if _server is None or _owner_pid != os.getpid() or not _server.alive():
        _server, _owner_pid = _spawn_server(log), os.getpid()
    return _server


def prestart(log: Path) -> None:
    """Start this process's warm server now, without waiting for it: by the first job it has
    imported what jobs need. ``labkit.connect()`` calls it, as a lab's first job follows a
    few cells later; a server no job comes to exits after ``IDLE_EXIT_S``."""
    if enabled() and not _cold_here:
        with _lock:
            _current_server(log)


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


# == the serving side ==============================================================================
_startup_env: dict = dict(os.environ)
_pristine_warning_filters: list = []


def _preload() -> bool:
    """Import what jobs need; False if that started a thread (forking would then be unsafe)."""
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    _fill_mlflow_caches()
    return threading.active_count() == 1


def _fill_mlflow_caches() -> None:
    """MLflow maps installed modules to their packages once per process, the first time a
    model is saved (a scan of every installed distribution, a second or more): a job forked
    from here inherits the map. The installed packages do not change while the server lives."""
    try:
        from mlflow.utils.requirements_utils import _init_modules_to_packages_map
    except ImportError:
        return
    _init_modules_to_packages_map()


def _requests(fd: int, idle_exit_s: float | None):
    """Requests read from ``fd`` until it closes, or until none came for ``idle_exit_s``.
    Read unbuffered, so a request never waits in a buffer ``select`` cannot see."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            if idle_exit_s is not None and not select.select([fd], [], [], idle_exit_s)[0]:
                return
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


def serve(requests: int, replies, idle_exit_s: float | None = None) -> None:
    """Answer requests from the fd ``requests`` on the text stream ``replies``."""
    channel = (requests, replies)
    for request in _requests(requests, idle_exit_s):
        if request["op"] == "script":
            replies.write(READY + "\n")
            replies.flush()
            _run_script(request, channel)  # never returns
        # A twin is in its worker's process group, which a cancel signals: a sweep canceled
        # while its twin forks a trial must not kill the trial's worker before it is a session
        # of its own, nor the twin before the sweep hears the trial started (it would start
        # the trial a second time). The signal waits until both are done.
        with _sigterm_blocked():
            pid = _fork_detached(request, channel)
            replies.write(f"{READY} {pid}\n")
            replies.flush()  # after the fork: the requester hears back once the process exists


@contextlib.contextmanager
def _sigterm_blocked():
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _fork_detached(request: dict, channel) -> int:
    """Fork a detached process for a job's worker or a module (fork twice, so this process
    never waits on it); its pid, once it has taken on the request's log, environment and
    working folder (a deployment's instance is known by its folder from the first look)."""
    pid_read, pid_write = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(pid_read)
            if os.fork() == 0:
                os.setsid()  # a session of its own: canceling the job signals its whole group
                # A SIGTERM sent to the parent's group while this was forked is not this job's:
                # ignoring it discards it, then this job's own cancels are let in (_become).
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                _become(request, channel)
                os.write(pid_write, str(os.getpid()).encode())
                os.close(pid_write)
                (_run_job if request["op"] == "job" else _run_module)(request)
        finally:
            _exit(0)
    os.close(pid_write)
    os.waitpid(middle, 0)
    with os.fdopen(pid_read, "rb") as answer:  # read to the end: the new process has closed it
        return int(answer.read() or 0)


def _run_job(request: dict) -> None:
    global _server, _owner_pid
    _server, _owner_pid = _fork_twin(), os.getpid()  # before the worker touches the workspace
    from labkit.sim.jobs import job_runner

    job_runner.main(request["folder"], request["name"])


def _become(request: dict, channel) -> None:
    """Take on a request's process context: output to its log, its environment and folder.
    The server's pipes are closed, so the server's end sees only its own users."""
    requests, replies = channel
    if requests > 2:
        os.close(requests)
    if replies is not sys.stdout:
        replies.close()
    output = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.close(nothing)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])


def _fork_twin() -> _Server:
    """A clean copy of this process, serving it over two pipes until it exits."""
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(request_write)
        os.close(reply_read)
        try:
            serve(request_read, os.fdopen(reply_write, "w"))
        finally:
            _exit(0)
    os.close(request_read)
    os.close(reply_write)
    return _Server(pid, os.fdopen(request_write, "w"), os.fdopen(reply_read))


def _run_script(request: dict, channel) -> None:
    """Become ``python script.py args`` and exit with its status."""
    _become(request, channel)
    argv = request["argv"]
    script = os.path.abspath(argv[1])
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(script)
    _fresh_interpreter_state()
    # What the interpreter does for a script: a new __main__ with an absolute __file__,
    # the script compiled and run in it (runpy.run_path would set argv[0] absolute too).
    main = types.ModuleType("__main__")
    main.__file__, main.__cached__, main.__builtins__ = script, None, builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main

    def run():
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec")
        exec(code, main.__dict__)

    _run_and_exit(run, lambda tb: _from_script(tb, script))


def _run_module(request: dict) -> None:
    """Become ``python -m module args`` (for a module whose ``main()`` is what its ``__main__``
    block runs) and exit with its status."""
    module = importlib.import_module(request["module"])
    sys.argv = [module.__file__, *request["argv"][1:]]
    sys.path[0] = request["cwd"]  # python -m puts the working folder first
    _fresh_interpreter_state()
    _run_and_exit(lambda: sys.exit(module.main()), lambda tb: tb)


def _fresh_interpreter_state() -> None:
    warnings.filters[:] = _pristine_warning_filters
    if "numpy" in sys.modules:  # a fresh interpreter's global random state, not the server's
        sys.modules["numpy"].random.seed()


def _run_and_exit(run, shown_traceback) -> None:
    """Run ``run()`` and exit as the interpreter would: its status, its traceback if it raised."""
    try:
        run()
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(type(exc), exc, exc.with_traceback(shown_traceback(exc.__traceback__)).__traceback__)
        status = 1
    # What the interpreter does at exit, in its order: threading's exit hooks (which stop
    # thread pools such as MLflow's async logging) and the wait for non-daemon threads,
    # then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    _exit(status)


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _from_script(tb, script: str):
    """The traceback from the script's own frame on, as ``python script.py`` prints it."""
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != script:
        start = start.tb_next
    return start or tb


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(warning_filters: list) -> None:
    """Serve a client: ``warning_filters`` are the interpreter's own, before labkit changed them."""
    _pristine_warning_filters[:] = warning_filters
    safe = _preload()
    print(READY if safe else COLD, flush=True)
    if safe:
        serve(sys.stdin.fileno(), sys.stdout, IDLE_EXIT_S)


if __name__ == "__main__":
    # Serve from the importable module, whose globals the job runner's calls see; labkit's
    # import quiets some warnings, which a script must not inherit.
    pristine = list(warnings.filters)
    from labkit.sim.jobs import warm_worker

    warm_worker.main(pristine)
