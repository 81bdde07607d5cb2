"""Warm job workers (labkit/sim/warm_worker.py) give a job's script exactly what a cold
``python script.py`` in ``bash -c`` gives it: argv, ``__file__``, ``sys.path[0]``, working
folder, environment, exit status, traceback, MLflow run; and they fall back to bash for
any command that is not a plain ``python script.py args``."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from azure.ai.ml import command

from helpers import write_files
from labkit.sim.jobs import job_state, warm_server, warm_worker

ENV = "AzureML-sklearn-1.5@latest"
REPORT = r'''
import json, os, sys
import mlflow
import numpy as np

run_id = os.environ.get("MLFLOW_RUN_ID")  # MLflow takes it out of the environment once it resumes the run
with mlflow.start_run():
    mlflow.log_metric("answer", 42)
print("REPORT " + json.dumps({
    "argv": sys.argv, "file": __file__, "name": __name__, "path0": sys.path[0], "cwd": os.getcwd(),
    "run": run_id, "setting": os.environ.get("SETTING"),
    "random": float(np.random.rand()), "main_module_file": sys.modules["__main__"].__file__,
}))
if "--fail" in sys.argv:
    raise ValueError("the script failed on purpose")
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
'''


@pytest.fixture
def src(tmp_path):
    return write_files(tmp_path / "src", {"report.py": REPORT})


def run(ml_client, finished_job, src, cmd, **kwargs):
    job = ml_client.jobs.create_or_update(command(code=str(src), command=cmd, environment=ENV, **kwargs))
    job = finished_job(ml_client, job.name)
    log = (job_state.job_folder(ml_client._sim_workspace, job.name) / "user_logs" / "std_log.txt").read_text()
    reports = [json.loads(line.removeprefix("REPORT ")) for line in log.splitlines() if line.startswith("REPORT ")]
    return job, log, reports[0] if reports else None


@pytest.fixture(params=["warm", "cold"])
def mode(request, monkeypatch):
    monkeypatch.setenv(warm_worker.ENABLED_VARIABLE, "1" if request.param == "warm" else "0")
    return request.param


def test_a_script_sees_what_python_script_py_gives_it(ml_client, finished_job, src, mode):
    job, log, report = run(ml_client, finished_job, src, "python report.py --alpha 0.5",
                           environment_variables={"SETTING": "from the job"})
    assert job.status == "Completed", log
    code = job_state.job_folder(ml_client._sim_workspace, job.name) / "code"
    assert report["argv"] == ["report.py", "--alpha", "0.5"]
    assert report["file"] == report["main_module_file"] == str(code / "report.py")
    assert report["name"] == "__main__"
    assert report["path0"] == report["cwd"] == str(code)
    assert report["run"] == job.name and report["setting"] == "from the job"
    from mlflow.tracking import MlflowClient

    run_data = MlflowClient(ml_client.workspaces.get().mlflow_tracking_uri).get_run(job.name).data
    assert run_data.metrics == {"answer": 42.0}


def test_a_failing_script_fails_the_job_with_the_scripts_own_traceback(ml_client, finished_job, src, mode):
    job, log, _ = run(ml_client, finished_job, src, "python report.py --fail")
    assert job.status == "Failed"
    traceback = log[log.index("Traceback (most recent call last):"):]
    assert traceback.splitlines()[1].strip().startswith(f'File "{job_state.job_folder(ml_client._sim_workspace, job.name)}')
    assert "warm_worker" not in traceback and "runpy" not in traceback
    assert "ValueError: the script failed on purpose" in traceback


def test_exit_codes_pass_through(ml_client, finished_job, src, mode):
    job, log, _ = run(ml_client, finished_job, src, "python report.py", environment_variables={"EXIT_CODE": "3"})
    assert job.status == "Failed"
    assert "status code 3" in job_state.error_of(ml_client._sim_workspace, job.name)


def test_a_script_that_leaves_a_thread_pool_running_ends_as_python_would(ml_client, finished_job, src, mode):
    # MLflow's async logging leaves such a pool: python stops it at exit (threading's exit hooks).
    (src / "pool.py").write_text("from concurrent.futures import ThreadPoolExecutor\n"
                                 "pool = ThreadPoolExecutor(2)\npool.submit(print, 'from the pool')\n")
    job, log, _ = run(ml_client, finished_job, src, "python pool.py")
    assert job.status == "Completed" and "from the pool" in log


def test_warm_scripts_do_not_share_numpys_random_state(ml_client, finished_job, src, monkeypatch):
    monkeypatch.setenv(warm_worker.ENABLED_VARIABLE, "1")
    draws = {run(ml_client, finished_job, src, "python report.py")[2]["random"] for _ in range(2)}
    assert len(draws) == 2


def test_other_commands_run_in_bash(ml_client, finished_job, src, monkeypatch):
    monkeypatch.setenv(warm_worker.ENABLED_VARIABLE, "1")
    job, log, report = run(ml_client, finished_job, src, "echo first && python report.py --beta 1")
    assert job.status == "Completed", log
    assert log.index("first") < log.index("REPORT") and report["argv"] == ["report.py", "--beta", "1"]
    # A job that changes a Python start-up variable runs in a fresh interpreter, which reads it.
    job, log, report = run(ml_client, finished_job, src, "python report.py",
                           environment_variables={"PYTHONPATH": str(src)})
    assert job.status == "Completed", log
    assert report["path0"] == str(job_state.job_folder(ml_client._sim_workspace, job.name) / "code")


@pytest.mark.parametrize("cmd, plain", [
    ("python train.py --lr 0.1 --data /tmp/x/y.csv", True),
    ("python3 train.py", True),
    ("python train.py > out.txt", False),
    ("python train.py && echo done", False),
    ("python train.py --name 'two words'", False),
    ("python -m train", False),
    ("python train.py --path $HOME", False),
    ("bash run.sh", False),
])
def test_which_commands_are_plain_python(tmp_path, cmd, plain):
    (tmp_path / "train.py").write_text("")
    env = {**os.environ, "PATH": f"{os.path.dirname(os.sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    assert (warm_worker.plain_python(cmd, env, tmp_path) is not None) is plain


def test_a_forked_process_is_given_by_pid_only_once_it_is_in_its_own_folder(tmp_path, monkeypatch):
    """A deployment's instance forked warm is known by its working folder, so the requester
    must hear its pid only after it has moved there (CI: a slow machine looked first, saw the
    server's folder and called the instance dead). The folder change is slowed here."""
    real_chdir = os.chdir
    monkeypatch.setattr(os, "chdir", lambda path: (time.sleep(0.5), real_chdir(path)))
    monkeypatch.setattr(warm_server, "_run_module", lambda *_: (time.sleep(2), os._exit(0)))
    folder = tmp_path / "instance"
    folder.mkdir()
    request = {"op": "module", "env": dict(os.environ), "cwd": str(folder), "log": str(tmp_path / "log")}
    requests, unused_write = os.pipe()
    unused_read, replies = os.pipe()
    with os.fdopen(replies, "w") as reply_stream:
        pid = warm_server._fork_detached(request, (requests, reply_stream))
    for fd in (requests, unused_write, unused_read):
        os.close(fd)
    assert os.readlink(f"/proc/{pid}/cwd") == str(folder)


# --- the shared server ---------------------------------------------------------------------------
def address_for(env: dict, **kwargs) -> Path:
    return warm_worker._address(warm_worker._server_environment(env), **kwargs)


def test_clients_that_differ_only_in_their_workspace_and_session_share_a_server():
    base = {"PATH": "/usr/bin", "HOME": "/home/learner", "PYTHONPATH": "/src"}
    per_client = {"LABKIT_SIM_ROOT": "/work/a", "MLFLOW_TRACKING_URI": "file:///work/a/mlflow",
                  "MLFLOW_EXPERIMENT_ID": "1", "AZUREML_MODEL_DIR": "/work/a/model",
                  "PYTEST_CURRENT_TEST": "test_x (call)", "JPY_PARENT_PID": "4242",
                  "PWD": "/work/a", "OLDPWD": "/work", "SHLVL": "2", "_": "/usr/bin/nice"}
    assert address_for({**base, **per_client}) == address_for(base)
    # A variable a module may read as it is imported, or one Python reads at start-up, is not.
    for variable, value in (("OMP_NUM_THREADS", "1"), ("PYTHONPATH", "/other"), ("MLFLOW_CONFIGURE_LOGGING", "false")):
        assert address_for({**base, variable: value}) != address_for(base), variable


def test_a_change_to_labkits_code_means_another_server(tmp_path):
    package = tmp_path / "labkit"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")
    env = {"PATH": "/usr/bin"}
    before = address_for(env, package=package)
    assert address_for(env, package=package) == before
    (package / "module.py").write_text("x = 2\n")  # the same size: its time tells
    status = (package / "module.py").stat()
    os.utime(package / "module.py", ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert address_for(env, package=package) != before


def test_a_process_setting_a_fork_inherits_from_its_server_is_part_of_the_address():
    env = {"PATH": "/usr/bin"}
    before = address_for(env)
    previous = os.umask(0o022)
    os.umask(previous ^ 0o070)  # any other mask: a cold worker would create its files with it
    try:
        assert address_for(env) != before
    finally:
        os.umask(previous)
    assert address_for(env) == before


def test_the_address_ignores_a_file_that_vanishes_or_a_dangling_link(tmp_path):
    package = tmp_path / "labkit"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")
    before = address_for({}, package=package)
    (package / ".#module.py").symlink_to("learner@host.4242")  # an Emacs lock file
    assert address_for({}, package=package) == before


@pytest.fixture
def short_temp(monkeypatch):
    """A temporary folder of this test's own with a short path (an AF_UNIX path must be), made
    the process's temporary folder, with the requesting side's state reset around the test."""
    folder = tempfile.mkdtemp(prefix="lk", dir="/tmp")
    monkeypatch.setattr(tempfile, "tempdir", folder)
    for name, value in (("_server", None), ("_owner_pid", None), ("_cold_here", False)):
        monkeypatch.setattr(warm_worker, name, value)
    yield Path(folder)
    subprocess.run(["rm", "-rf", folder], check=False)


def started_servers(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(warm_worker, "_start_server", lambda *args: calls.append(args) or False)
    return calls


def test_a_socket_folder_that_is_not_the_users_alone_means_cold_workers(short_temp, monkeypatch):
    started = started_servers(monkeypatch)
    folder = short_temp / f"labkit-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)  # as another user could have made it first, /tmp being everyone's
    assert warm_worker._ask({"op": "job"}) is None and warm_worker._cold_here
    assert started == [] and list(folder.iterdir()) == []
    monkeypatch.setattr(warm_worker, "_cold_here", False)
    folder.rmdir()
    (short_temp / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(short_temp / "elsewhere")
    assert warm_worker._ask({"op": "job"}) is None and warm_worker._cold_here
    assert started == [] and list((short_temp / "elsewhere").iterdir()) == []


def test_a_socket_path_too_long_means_cold_workers_without_a_server(short_temp, monkeypatch):
    started = started_servers(monkeypatch)
    deep = short_temp / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert warm_worker._ask({"op": "job"}) is None and warm_worker._cold_here
    assert warm_worker._ask({"op": "job"}) is None
    assert started == [] and list(deep.iterdir()) == []


def test_a_server_that_does_not_start_is_not_tried_again(short_temp, monkeypatch):
    started = started_servers(monkeypatch)
    assert warm_worker._ask({"op": "job"}) is None and warm_worker._cold_here
    assert warm_worker._ask({"op": "job"}) is None
    assert len(started) == 1


class LostServer:
    """A shared server that heard the request and went before it answered."""
    sent, twin_pid = True, None

    def alive(self):
        return True

    def ask(self, request):
        return None


def test_a_request_the_server_heard_is_not_sent_again(monkeypatch):
    """It may have forked the process before it went: a second server would start it twice."""
    servers = []
    monkeypatch.setattr(warm_worker, "_current_server", lambda: servers.append(LostServer()) or servers[-1])
    monkeypatch.setattr(warm_worker, "_cold_here", False)
    monkeypatch.setenv(warm_worker.ENABLED_VARIABLE, "1")
    assert warm_worker._ask({"op": "job"}) is None
    assert len(servers) == 1


def test_a_client_that_sets_a_variable_since_its_last_job_asks_that_environments_server(monkeypatch):
    found = []
    monkeypatch.setattr(warm_worker, "_shared_server", lambda env: found.append(env) or LostServer())
    for name, value in (("_server", None), ("_owner_pid", None), ("_served_environment", None)):
        monkeypatch.setattr(warm_worker, name, value)
    warm_worker._current_server()
    monkeypatch.setenv("LABKIT_SIM_ROOT", "/work/another")  # names a workspace: the same server
    warm_worker._current_server()
    assert len(found) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # NumPy reads it as it is imported: another
    warm_worker._current_server()
    assert len(found) == 2 and found[1]["OMP_NUM_THREADS"] == "1"


GREETING = ("from labkit.sim.jobs import warm_worker\n"
            "print(warm_worker._current_server().replies.readline().strip())")


def test_client_processes_alike_are_served_by_one_server_that_names_no_workspace(short_temp):
    greetings = []
    for client in ("first", "second"):
        env = {**os.environ, "TMPDIR": str(short_temp), "LABKIT_SIM_ROOT": str(short_temp / client)}
        done = subprocess.run([sys.executable, "-c", GREETING], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        greetings.append(done.stdout.strip())
    assert greetings[0] == greetings[1] and greetings[0].startswith(warm_worker.READY + " "), greetings
    server = int(greetings[0].split()[1])
    try:
        # Started for no one workspace: the lab runner and the leftovers' checks find a server's
        # forks by their own folders, never the server by a workspace it was first started for.
        environ = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
        assert not any(variable.startswith(b"LABKIT_SIM_ROOT=") for variable in environ)
    finally:
        os.kill(server, signal.SIGTERM)


def serving(address: str, idle_exit_s: float):
    """``serve_clients`` on a thread, with what it raised (a test then fails, rather than hang)."""
    listener, inode = warm_server._listen(address)
    raised = []

    def serve():
        try:
            warm_server.serve_clients(listener, idle_exit_s)
        except BaseException as problem:
            raised.append(problem)
        finally:
            warm_server._stop_listening(listener, address, inode)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, raised


def client_of(address: str) -> tuple[socket.socket, object]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(30)
    client.connect(address)
    replies = client.makefile()
    assert replies.readline() == f"{warm_worker.READY} {os.getpid()}\n"
    return client, replies


def test_a_shared_server_serves_on_after_a_client_goes_then_exits_once_idle(short_temp):
    address = str(short_temp / "s.sock")
    thread, raised = serving(address, idle_exit_s=2.0)
    for _ in range(2):  # each goes in the middle of a request
        client, _ = client_of(address)
        client.sendall(b'{"op": "job", "name": "half a requ')
        client.close()
    client, _ = client_of(address)  # still serving, and still greets
    client.close()
    assert thread.is_alive()
    thread.join(timeout=60)
    assert not thread.is_alive() and raised == []
    assert not os.path.exists(address)  # a client that comes now starts a new server


def test_a_shared_server_answers_a_bad_request_cold_and_serves_on(short_temp):
    address = str(short_temp / "s.sock")
    thread, raised = serving(address, idle_exit_s=1.0)
    client, replies = client_of(address)
    client.sendall(b"not json\n[1, 2]\n")
    assert replies.readline().startswith(f"{warm_worker.COLD} not a request")
    assert replies.readline().startswith(f"{warm_worker.COLD} not a request")
    # A request its process cannot take on (no such log folder): no pid to give.
    request = {"op": "module", "module": "json", "argv": ["json"], "env": {}, "cwd": str(short_temp),
               "log": str(short_temp / "no such folder" / "log")}
    client.sendall(json.dumps(request).encode() + b"\n")
    assert replies.readline().startswith(f"{warm_worker.COLD} OSError")
    client.close()
    client_of(address)[0].close()
    thread.join(timeout=60)
    assert not thread.is_alive() and raised == []


def test_a_server_leaves_the_socket_file_of_a_newer_server_at_its_address(short_temp):
    address = str(short_temp / "s.sock")
    older, older_inode = warm_server._listen(address)
    newer, newer_inode = warm_server._listen(address)  # bound after the older one's file was removed
    warm_server._stop_listening(older, address, older_inode)
    assert os.stat(address).st_ino == newer_inode
    warm_server._stop_listening(newer, address, newer_inode)
    assert not os.path.exists(address)


def test_a_server_out_of_descriptors_waits_for_one_rather_than_spin(short_temp):
    address = str(short_temp / "s.sock")
    listener, inode = warm_server._listen(address)
    attempts, crowded_until = [], time.monotonic() + 0.5

    class Crowded(socket.socket):
        def accept(self):
            attempts.append(time.monotonic())
            if time.monotonic() < crowded_until:
                raise OSError(errno.EMFILE, "Too many open files")
            return super().accept()

    crowded = Crowded(socket.AF_UNIX, socket.SOCK_STREAM, fileno=listener.detach())
    thread = threading.Thread(target=warm_server.serve_clients, args=(crowded, 1.0), daemon=True)
    thread.start()
    client, _ = client_of(address)  # served once a descriptor is free again
    client.close()
    thread.join(timeout=60)
    warm_server._stop_listening(crowded, address, inode)
    assert not thread.is_alive()
    assert 2 <= len(attempts) <= 20, len(attempts)  # a busy loop would try thousands of times in 0.5 s
