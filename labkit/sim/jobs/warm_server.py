"""Warm job workers, the serving side: ``python -m labkit.sim.jobs.warm_server <socket>``.

The *shared server* (``labkit.sim.jobs.warm_worker`` is the requesting side, and says why): it
imports what jobs need once, then listens on a Unix socket and, for each request a client
sends, forks a job's worker (``job_runner.main``) or a module (an online deployment's
instance). Every client process with the same interpreter, code and environment (less its
workspace) is served by the same one. A worker's *twin* serves that worker alone over two
pipes, and can also become a plain ``python script.py``. Split from the requesting side so
that the job runner, which asks its twin to run scripts, and the server, which runs the job
runner, do not import each other.
"""
from __future__ import annotations

import atexit
import builtins
import contextlib
import errno
import importlib
import importlib.machinery
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import types
import warnings

from labkit.sim.jobs import warm_worker
from labkit.sim.jobs.warm_worker import COLD, READY, _Server

# What jobs and their scripts import, in the order a job needs them (each is skipped if it
# is not installed). MLflow's SQL stores open the job's run; skops is what MLflow 3 saves a
# scikit-learn model with by default.
PRELOAD = (
    "labkit.sim.jobs.job_runner", "labkit.sim.core.client", "labkit.sim.jobs.sweep", "labkit.sim.jobs.pipeline", "labkit.sim.core.tracking",
    "mlflow", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "labkit.sim.assets.mlflow_registry", "mlflow.sklearn", "pandas", "sklearn.ensemble", "sklearn.linear_model",
    "sklearn.model_selection", "sklearn.metrics", "sklearn.pipeline", "sklearn.preprocessing", "skops.io",
)
# A shared server no client has sent anything for this long exits (its memory back); the next
# job starts another.
IDLE_EXIT_S = 300

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


def _requests(fd: int):
    """Requests read from ``fd`` until it closes (read unbuffered: the twin serves one worker)."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


def serve(requests: int, replies) -> None:
    """A twin's loop: answer its worker's requests from the fd ``requests`` on ``replies``."""
    ends = [requests, replies]
    for request in _requests(requests):
        if request["op"] == "script":
            replies.write(READY + "\n")
            replies.flush()
            _run_script(request, ends)  # never returns
        # A twin is in its worker's process group, which a cancel signals: a sweep canceled
        # while its twin forks a trial must not kill the trial's worker before it is a session
        # of its own, nor the twin before the sweep hears the trial started (it would start
        # the trial a second time). The signal waits until both are done.
        with _sigterm_blocked():
            replies.write(_forked(request, ends) + "\n")
            replies.flush()  # after the fork: the requester hears back once the process exists


def serve_clients(listener: socket.socket, idle_exit_s: float) -> None:
    """The shared server's loop: greet each client that connects (``ready <pid>``), fork a
    process for each request a client sends and answer with its pid, until no client has
    sent anything for ``idle_exit_s``. One thread: each fork takes milliseconds. A client
    that goes, even in the middle of a request, is only dropped; a request that is not JSON,
    or a fork that fails, is answered ``cold <why>`` (the client then starts it cold), and
    every other client is served on."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}  # each client's bytes short of a full line

    def send(client: socket.socket, line: str) -> None:
        try:
            client.sendall(line.encode())
        except OSError:  # gone: its connection reads as closed next
            pass

    while events := selector.select(idle_exit_s):
        for key, _ in events:
            if key.fileobj is listener:
                try:
                    client, _ = listener.accept()
                except OSError as problem:  # gone before it was accepted, or out of descriptors
                    if problem.errno in (errno.EMFILE, errno.ENFILE):
                        time.sleep(0.1)  # the connection still waits: not a busy loop until one frees
                    continue
                selector.register(client, selectors.EVENT_READ)
                pending[client] = b""
                send(client, f"{READY} {os.getpid()}\n")
                continue
            client = key.fileobj
            try:
                chunk = client.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                selector.unregister(client)
                client.close()
                del pending[client]
                continue
            lines = (pending[client] + chunk).split(b"\n")
            pending[client] = lines.pop()
            for line in lines:
                request = _parsed(line)
                if request is None:
                    send(client, f"{COLD} not a request: {line[:80]!r}\n")
                else:
                    send(client, _forked(request, [listener, selector, *pending]) + "\n")


def _parsed(line: bytes) -> dict | None:
    """A request as a client sends it: a JSON object with an ``op``; None for anything else."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    return request if isinstance(request, dict) and request.get("op") in ("job", "module") else None


@contextlib.contextmanager
def _sigterm_blocked():
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _forked(request: dict, ends: list) -> str:
    """The answer to a request: ``ready <pid>`` once its process exists, else ``cold <why>``."""
    try:
        return f"{READY} {_fork_detached(request, ends)}"
    except OSError as problem:  # fork's ENOMEM or EAGAIN, or the process could not take on the request
        return f"{COLD} {type(problem).__name__}: {problem}".replace("\n", " ")


def _fork_detached(request: dict, ends: list) -> int:
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
                _become(request, ends)
                os.write(pid_write, str(os.getpid()).encode())
                os.close(pid_write)
                (_run_job if request["op"] == "job" else _run_module)(request)
        finally:
            _exit(0)
    os.close(pid_write)
    os.waitpid(middle, 0)
    with os.fdopen(pid_read, "rb") as answer:  # read to the end: the new process has closed it
        pid = int(answer.read() or 0)
    if not pid:  # it exited before it wrote its pid: no log, environment or folder to take on
        raise OSError(f"the process for {request.get('op')!r} could not start in {request.get('cwd')!r}")
    return pid


def _run_job(request: dict) -> None:
    # The worker's requests (a sweep's trials, a script run warm) go to its twin, through the
    # requesting side the job runner calls.
    warm_worker._server, warm_worker._owner_pid = _fork_twin(), os.getpid()  # before the worker touches the workspace
    from labkit.sim.jobs import job_runner

    sys.path[0] = request["cwd"]  # as ``python -m labkit.sim.jobs.job_runner`` run there has it

    job_runner.main(request["folder"], request["name"])


def _become(request: dict, ends: list) -> None:
    """Take on a request's process context: output to its log, its environment and folder.
    The server's own ends (fds, streams, sockets) are closed, so it sees only its own users."""
    for end in ends:
        os.close(end) if isinstance(end, int) else end.close()
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
    return _Server(os.fdopen(request_write, "w"), os.fdopen(reply_read), twin_pid=pid)


def _run_script(request: dict, ends: list) -> None:
    """Become ``python script.py args`` and exit with its status."""
    _become(request, ends)
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


def _listen(address: str) -> tuple[socket.socket, int]:
    """The shared server's socket at ``address``, in place of any a server left behind, and
    the inode of its file (a socket's own ``fstat`` does not give it)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    return listener, os.stat(address).st_ino


def _stop_listening(listener: socket.socket, address: str, inode: int) -> None:
    """Remove the socket's file first, so a client that comes now starts a new server rather
    than wait on this one; unless a newer server has bound the path since (it removed this one's)."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(address).st_ino == inode:
            os.unlink(address)
    listener.close()


def main(address: str, warning_filters: list) -> None:
    """Serve clients at ``address``: ``warning_filters`` are the interpreter's own, before labkit
    changed them. The client that started this server reads one line, READY or COLD."""
    _pristine_warning_filters[:] = warning_filters
    if not _preload():
        print(COLD, flush=True)
        return
    listener, inode = _listen(address)
    print(READY, flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # its starter has stopped reading
    os.close(devnull)
    try:
        serve_clients(listener, IDLE_EXIT_S)
    finally:
        _stop_listening(listener, address, inode)


if __name__ == "__main__":
    # labkit's import quiets some warnings, which a script must not inherit. The state the job
    # runner's calls see is the requesting side's, in labkit.sim.jobs.warm_worker.
    main(sys.argv[1], list(warnings.filters))
