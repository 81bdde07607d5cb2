"""Shared fixtures, and the guard that keeps every test off the network.

Any socket connection to an address outside 127.0.0.0/8 (or ::1) fails the test that made
it: the simulated workspace must work offline, and no library may phone home.
"""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["LABKIT_BACKEND"] = "simulated"


class NetworkAccessError(AssertionError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, tuple):
        host = address[0]
    else:
        return True  # AF_UNIX paths are local by definition
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be a network call


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: only loopback is allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: only loopback is allowed")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not _is_loopback((host,)):
        raise NetworkAccessError(f"test tried to resolve {host!r}: only loopback is allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield


@pytest.fixture(autouse=True)
def fresh_mlflow_state():
    """MLflow keeps a process-wide tracking URI, active experiment and active run. A test that
    sets them (a lab's snippet, a question's code) must not hand them to the next test that
    the same worker runs. Torn down after every other fixture, so after ``ml_client``'s."""
    yield
    import sys

    if "mlflow" not in sys.modules:
        return
    import mlflow
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID
    from mlflow.tracking import fluent

    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    fluent._active_experiment_id = None
    MLFLOW_EXPERIMENT_ID.unset()


@pytest.fixture
def sim_root(tmp_path):
    """A fresh folder of simulated workspaces."""
    return tmp_path / "workspaces"


@pytest.fixture
def ml_client(sim_root):
    """A client for a fresh simulated workspace; the simulation is deactivated afterwards."""
    from labkit import sim

    client = sim.connect(root=sim_root)
    yield client
    sim.stop_everything(sim_root)  # jobs a test did not wait for would go on using the cores
    sim.deactivate()


# --- labs: each executed once per session, shared by the lab tests and the book test ---------

def pytest_sessionstart(session):
    session.config._labs_report_since = __import__("time").time()


def pytest_terminal_summary(terminalreporter, config):
    """The runner's table for the labs this session ran (written by a worker under xdist), so
    every run of the suite shows each lab's time and peak memory."""
    import json

    from lab_executions import REPORT, run_labs

    since = getattr(config, "_labs_report_since", None)
    if since is None or not REPORT.exists() or REPORT.stat().st_mtime < since:
        return
    terminalreporter.write_sep("-", "labs: the runner's time and peak memory at CI sizes")
    terminalreporter.write_line(run_labs.format_table(json.loads(REPORT.read_text())))

@pytest.fixture(scope="session")
def lab_executions(request, tmp_path_factory):
    """The labs this session's selected tests need (every lab for the book build), started
    together in the background the first time a test asks for one. The tests that use it are
    in one module (test_labs.py), so under ``--dist loadfile`` one worker runs them all and
    executes each lab once, while the other worker takes the rest of the suite."""
    from lab_executions import LabExecutions, run_labs

    every_lab = run_labs.discover(run_labs.ROOT / "labs")
    items = request.session.items
    if any(item.get_closest_marker("book") for item in items):
        wanted = every_lab
    else:
        ids = {item.callspec.params["lab"].id for item in items
               if item.get_closest_marker("lab") and hasattr(item, "callspec") and "lab" in item.callspec.params}
        wanted = [lab for lab in every_lab if lab.id in ids]
    executions = LabExecutions(wanted, tmp_path_factory.mktemp("labs"))
    yield executions
    executions.close()


@pytest.fixture(scope="session")
def finished_job():
    """``finished_job(ml_client, name, timeout=180)``: the job once it has ended (polls as a
    learner's wait does). Session-scoped, so module-scoped fixtures that run a job can use it too."""
    from helpers import wait_for_job

    return wait_for_job
