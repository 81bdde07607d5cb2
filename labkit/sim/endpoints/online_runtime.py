"""The processes behind online endpoints: one front door per endpoint, servers per deployment.

Layout of an endpoint's folder ``<workspace>/online_endpoints/<endpoint>/``::

    routing.json                 what the front door needs: auth, keys/tokens, traffic, mirror, ports
    frontdoor.json / .log        the front door's pid and port, and its log
    deployments/<name>/
        code/                    the code asset's files (what Azure mounts under /var/azureml-app)
        azureml-models/<model>/<version>/<file or folder>   AZUREML_MODEL_DIR, as on Azure
        runtime.json             how to start the deployment's instances, and their pids and ports
        logs/instance-<i>.log    each instance's output (what ``get_logs`` returns)
        logs/storage-initializer.log

Every process runs in a session of its own, so it outlives the notebook cell and the kernel
(as a deployment outlives the client on Azure); its pid and port are in the folder, so a new
Python process that reopens the workspace finds it again, or starts it again if it is gone.
A pid is trusted only while that process's command line still names its folder (pids are
reused). :func:`stop_all` (called by ``labkit.sim.deactivate``) stops everything this Python
process started or found.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from filelock import FileLock

from labkit.sim.jobs import warm_worker
from labkit.sim.core.workspace import SimWorkspace

ENDPOINT_KIND = "online_endpoint"
# One row per deployment: name = the endpoint, version = the deployment (so listing an
# endpoint's deployments is listing the "versions" of its name).
DEPLOYMENT_KIND = "online_deployment"
LOOPBACK = "127.0.0.1"
INSTANCE_MODULE = "labkit.sim.online_server"
STOP_GRACE_S = 3.0
FRONTDOOR_START_S = 15.0
READY_POLL_S = 0.1
# aml_token lifetime (the service documents these tokens as short-lived; the exact value is ours).
AML_TOKEN_LIFETIME_S = 3600

# Popen handles of what this process started, reaped by a thread each (no zombies); and the
# endpoint folders it started or found, which stop_all() stops.
_children: list[subprocess.Popen] = []
_known_folders: set[Path] = set()
_lock = threading.Lock()


# -- folders and small files ---------------------------------------------------------------------
def endpoint_folder(workspace: SimWorkspace, endpoint: str) -> Path:
    return workspace.folder / "online_endpoints" / endpoint


def deployment_folder(workspace: SimWorkspace, endpoint: str, deployment: str) -> Path:
    return endpoint_folder(workspace, endpoint) / "deployments" / deployment


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` in one step, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


# -- processes ---------------------------------------------------------------------------------
def process_alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and is still the process whose command line, or working folder,
    names ``marker`` (an instance forked warm has the warm server's command line)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            named = cmdline.read().decode(errors="replace")
        return marker in named or marker in os.readlink(f"/proc/{pid}/cwd") + os.sep
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False


def spawn(command: list[str], *, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    with _lock:
        _children.append(child)
    threading.Thread(target=child.wait, daemon=True).start()
    return child


def stop_process(pid: int | None, marker: str, first: signal.Signals = signal.SIGTERM) -> None:
    """Stop a process and its process group (gunicorn's workers are in it), politely first."""
    if not process_alive(pid, marker):
        return
    # SIGTERM: gunicorn finishes the request in hand (its graceful stop), then SIGKILL for stragglers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, first)
    deadline = time.time() + STOP_GRACE_S
    while time.time() < deadline and process_alive(pid, marker):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.time() + STOP_GRACE_S
    while time.time() < deadline and process_alive(pid, marker):
        time.sleep(0.05)


def _python_env(extra: dict | None = None, forked: bool = False) -> dict:
    env = dict(os.environ)
    if not forked:  # a new interpreter must find the package wherever the notebook runs from
        package_root = str(Path(__file__).resolve().parents[3])  # labkit/sim/endpoints/ -> the repository
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    env.update(extra or {})
    return env


# -- the front door -------------------------------------------------------------------------------
def _frontdoor_marker(folder: Path) -> str:
    return f"{folder}\x00"  # the folder is one whole argument of its command line


def _instance_marker(folder: Path) -> str:
    return f"{folder}{os.sep}"  # its model folder (and code) lie inside the deployment's folder


def frontdoor_alive(folder: Path) -> bool:
    return process_alive(read_json(folder / "frontdoor.json").get("pid"), _frontdoor_marker(folder))


def ensure_frontdoor(folder: Path, port: int) -> int:
    """Start the endpoint's front door on ``port`` unless it runs; returns the port it listens on
    (another one when ``port`` was taken meanwhile by something else). One process at a time
    per endpoint: two notebooks reaching a stopped endpoint at once start one front door."""
    with _lock:
        _known_folders.add(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / "frontdoor.lock"):
        return _start_frontdoor_unless_alive(folder, port)


def _start_frontdoor_unless_alive(folder: Path, port: int) -> int:
    state = read_json(folder / "frontdoor.json")
    if process_alive(state.get("pid"), _frontdoor_marker(folder)):
        return int(state["port"])
    if not port_is_free(port):
        port = free_port()
    child = spawn([sys.executable, "-m", "labkit.sim.endpoints.online_frontdoor", str(folder), str(port)],
                  cwd=folder, env=_python_env(), log=folder / "frontdoor.log")
    write_json(folder / "frontdoor.json", {"pid": child.pid, "port": port})
    deadline = time.time() + FRONTDOOR_START_S
    while time.time() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"The endpoint's front door exited at start; see {folder / 'frontdoor.log'}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return port
        time.sleep(0.05)
    raise RuntimeError(f"The endpoint's front door did not start listening; see {folder / 'frontdoor.log'}")


def stop_frontdoor(folder: Path) -> None:
    stop_process(read_json(folder / "frontdoor.json").get("pid"), _frontdoor_marker(folder))


# -- deployment instances ---------------------------------------------------------------------------
def instances_alive(folder: Path) -> bool:
    runtime = read_json(folder / "runtime.json")
    instances = runtime.get("instances") or []
    return bool(instances) and all(process_alive(i.get("pid"), _instance_marker(folder)) for i in instances)


def start_instances(folder: Path, spec: dict) -> list[dict]:
    """Start ``spec['instance_count']`` inference servers for one deployment and wait until each
    answers its readiness probe (``GET /``), as the service waits before it calls a deployment
    Succeeded. Raises ``RuntimeError`` with the log's tail if an instance exits or never gets ready.
    """
    with _lock:
        _known_folders.add(folder.parent.parent)
    stop_instances(folder)
    instances = []
    for index in range(spec["instance_count"]):
        port = free_port()
        log = folder / "logs" / f"instance-{index}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        variables = {**spec["environment_variables"], **spec["server_variables"],
                     "GUNICORN_CMD_ARGS": "--no-control-socket"}
        args = ["--entry_script", spec["entry_script"], "--model_dir", spec["model_dir"], "--port", str(port)]
        # Forked from the shared warm server where possible: MLflow, pandas and scikit-learn, which a
        # scoring script imports, are imported already (seconds per instance on 2 cores).
        pid = warm_worker.start_module(INSTANCE_MODULE, args, _python_env(variables, forked=True),
                                       Path(spec["app_root"]), log)
        if pid is None:
            pid = spawn([sys.executable, "-m", INSTANCE_MODULE, *args], cwd=Path(spec["app_root"]),
                        env=_python_env(variables), log=log).pid
        instances.append({"pid": pid, "port": port, "log": str(log)})
    write_json(folder / "runtime.json", {"spec": spec, "instances": instances})
    deadline = time.time() + spec["ready_timeout_s"]
    for instance in instances:
        _wait_ready(folder, instance, deadline)
    return instances


def _wait_ready(folder: Path, instance: dict, deadline: float) -> None:
    while True:
        if not process_alive(instance["pid"], _instance_marker(folder)):
            raise RuntimeError(tail(Path(instance["log"]), 30))
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{instance['port']}/", timeout=2) as answer:
                # The port was free when chosen, but another process may have taken it before our
                # server bound it: only an answer from our own server counts.
                if answer.status == 200 and _listens_on(instance["pid"], instance["port"]):
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("The readiness probe did not succeed in time.\n" + tail(Path(instance["log"]), 30))
        time.sleep(READY_POLL_S)


def _listens_on(pid: int, port: int) -> bool:
    """Whether the process ``pid`` (or one of its children, e.g. gunicorn's workers) listens on ``port``."""
    import psutil

    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for member in family:
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in member.net_connections("inet")):
                return True
    return False


def stop_instances(folder: Path) -> None:
    stoppers = [threading.Thread(target=stop_process, args=(instance.get("pid"), _instance_marker(folder)))
                for instance in read_json(folder / "runtime.json").get("instances") or []]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


def restart_if_gone(folder: Path) -> bool:
    """Start a deployment's instances again from the spec it was started with, if they are gone
    (one process at a time per deployment, so two notebooks start one set)."""
    with FileLock(folder / "instances.lock"):
        runtime = read_json(folder / "runtime.json")
        if not runtime.get("spec") or instances_alive(folder):
            return False
        start_instances(folder, runtime["spec"])
        return True


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    kept = text.splitlines()[-lines:] if lines and lines > 0 else text.splitlines()
    return "\n".join(kept)


# -- what the front door reads ----------------------------------------------------------------------
def new_key() -> str:
    return secrets.token_urlsafe(32)


def write_routing(workspace: SimWorkspace, endpoint: str) -> None:
    """Write ``routing.json`` from the store: the front door rereads it when it changes."""
    from labkit.sim.endpoints import data_collection

    store = workspace.store
    row = store.get(ENDPOINT_KIND, endpoint)
    if row is None:
        return
    props = row.payload["properties"]
    credentials = store.get_secret(ENDPOINT_KIND, endpoint) or {}
    now = time.time()
    deployments = {}
    for deployment in store.versions(DEPLOYMENT_KIND, endpoint):
        folder = deployment_folder(workspace, endpoint, deployment.version)
        runtime = read_json(folder / "runtime.json")
        settings = deployment.payload["properties"].get("requestSettings") or {}
        deployments[deployment.version] = {
            "ports": [i["port"] for i in runtime.get("instances") or []],
            "request_timeout_ms": request_timeout_ms(settings),
            # The deployment's data collector, if it has one (labkit.sim.endpoints.data_collection).
            "data_collector": data_collection.routing_spec(workspace, endpoint, deployment.version,
                                                           deployment.payload),
        }
    write_json(endpoint_folder(workspace, endpoint) / "routing.json", {
        "endpoint": endpoint,
        "auth_mode": props.get("authMode"),
        "keys": [k for k in (credentials.get("primaryKey"), credentials.get("secondaryKey")) if k],
        "tokens": {t: exp for t, exp in (credentials.get("tokens") or {}).items() if exp > now},
        "traffic": props.get("traffic") or {},
        "mirror_traffic": props.get("mirrorTraffic") or {},
        "deployments": deployments,
    })


DEFAULT_REQUEST_TIMEOUT_MS = 5000


def iso_seconds(value: str | None, default: float) -> float:
    """An ISO 8601 duration (``PT0.5S``) in seconds; fractions kept (the SDK's helper drops them)."""
    import isodate

    return isodate.parse_duration(value).total_seconds() if value else default


def request_timeout_ms(settings: dict) -> int:
    return int(iso_seconds(settings.get("requestTimeout"), DEFAULT_REQUEST_TIMEOUT_MS / 1000) * 1000)


# -- deactivation -----------------------------------------------------------------------------------
def stop_endpoint(folder: Path) -> None:
    stoppers = [threading.Thread(target=stop_frontdoor, args=(folder,))]
    stoppers += [threading.Thread(target=stop_instances, args=(deployment,))
                 for deployment in (folder / "deployments").glob("*")]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


def stop_all() -> None:
    """Stop every endpoint process this Python process started or found (``deactivate``)."""
    with _lock:
        folders = list(_known_folders)
        _known_folders.clear()
    stoppers = [threading.Thread(target=stop_endpoint, args=(folder,)) for folder in folders]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
