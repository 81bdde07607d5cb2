"""Two processes, one workspace: versions stay distinct, a killed upload leaves no asset,
and a workspace provisioned twice at once has one set of default datastores.

The processes are real (``subprocess`` running a small script with this interpreter), as
two notebooks or a notebook and a job would be. They start together: each imports, then
says it is ready and waits for a "go" file, so their calls overlap.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from azure.ai.ml import command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data
from azure.core.exceptions import ResourceNotFoundError

from labkit import sim
from labkit.sim.core import store as sim_store

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STORES = {"workspaceblobstore", "workspaceartifactstore", "workspaceworkingdirectory", "workspacefilestore"}

# What every worker starts with: import, connect only when told, then wait for "go".
PRELUDE = """
import json, os, sys, time
from pathlib import Path
from labkit import sim
from azure.ai.ml.entities import Data

root, workspace, ready, go = sys.argv[1:5]
args = sys.argv[5:]

def wait_for_go():
    Path(ready).touch()
    deadline = time.time() + 60
    while not Path(go).exists():
        if time.time() > deadline:
            sys.exit("no go signal")
        time.sleep(0.005)
"""

REGISTER_VERSIONS = PRELUDE + """
ml_client = sim.connect(root=root, workspace_name=workspace)
count, inputs = int(args[0]), Path(args[1])
wait_for_go()
versions = []
for i in range(count):
    # Different content each time, so every call really copies files through staging.
    path = inputs / f"patients-{os.getpid()}-{i}.csv"
    path.write_text(f"age,diabetic\\n{i},{os.getpid() % 2}\\n")
    data = ml_client.data.create_or_update(Data(name="patients", path=str(path), type="uri_file"))
    versions.append(data.version)
print(json.dumps(versions))
"""

SLOW_UPLOAD = PRELUDE + """
import shutil
ml_client = sim.connect(root=root, workspace_name=workspace)
folder, progress = args
real_copyfile = shutil.copyfile

def slow_copyfile(src, dst, *a, **k):
    # copy2 (what copytree uses) looks copyfile up at call time: each file takes a while.
    copied = real_copyfile(src, dst, *a, **k)
    Path(progress).write_text(str(int(Path(progress).read_text() or 0) + 1) if Path(progress).exists() else "1")
    time.sleep(0.2)
    return copied

shutil.copyfile = slow_copyfile
wait_for_go()
ml_client.data.create_or_update(Data(name="patients-folder", path=folder, type="uri_folder"))
print("finished")
"""

PLACE_COPIES = PRELUDE + """
from labkit.sim.core.store import WorkspaceStore
store = WorkspaceStore(Path(root) / workspace)
count, inputs = int(args[0]), Path(args[1])
sources = []
for i in range(count):
    sources.append(inputs / f"{os.getpid()}-{i}.txt")
    sources[-1].write_text(f"{os.getpid()}-{i}")
wait_for_go()
for source in sources:
    store.place_copy(source, store.folder / "storage" / "copies" / source.name)
print(count)
"""

PROVISION = PRELUDE + """
wait_for_go()
ml_client = sim.connect(root=root, workspace_name=workspace)
workspace_entity = ml_client.workspaces.get(workspace)
stores = sorted(d.name for d in ml_client.datastores.list())
print(json.dumps({"id": workspace_entity._workspace_id, "datastores": stores,
                  "default": ml_client.datastores.get_default().name}))
"""


def start_workers(script: str, count: int, root: Path, workspace: str, signals: Path, *args: str):
    """Start ``count`` workers; return them once all are ready (before any has been told to go)."""
    signals.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    workers = []
    for i in range(count):
        ready = signals / f"ready-{i}"
        workers.append((ready, subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(root), workspace, str(ready),
             str(signals / "go"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=signals, env=env)))
    deadline = time.time() + 60
    while not all(ready.exists() for ready, _ in workers):
        for _, process in workers:
            if process.poll() is not None:
                raise AssertionError(f"worker exited early: {process.communicate()[1]}")
        assert time.time() < deadline, "workers did not start"
        time.sleep(0.01)
    return [process for _, process in workers]


def go(signals: Path) -> None:
    (signals / "go").touch()


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def rows(workspace_folder: Path, kind: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{workspace_folder / 'workspace.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT name, version FROM resources WHERE kind=?", (kind,)).fetchall()
    finally:
        db.close()


def stored_files(workspace_folder: Path) -> list[Path]:
    return sorted(p for p in (workspace_folder / "storage").rglob("*") if p.is_file())


# -- (a) automatic versions from several processes --------------------------------------------
def test_processes_registering_versions_at_once_get_distinct_contiguous_versions(ml_client, sim_root, tmp_path):
    processes, per_process = 3, 8
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    workers = start_workers(REGISTER_VERSIONS, processes, sim_root, ml_client.workspace_name,
                            tmp_path / "signals", str(per_process), str(inputs))
    go(tmp_path / "signals")
    reported = [json.loads(finish(worker)) for worker in workers]

    total = processes * per_process
    every_version = [int(v) for versions in reported for v in versions]
    assert sorted(every_version) == list(range(1, total + 1))
    for versions in reported:  # each process saw its own versions increase
        assert [int(v) for v in versions] == sorted(int(v) for v in versions)
    listed = sorted(int(d.version) for d in ml_client.data.list(name="patients"))
    assert listed == list(range(1, total + 1))
    assert ml_client.data.get("patients", label="latest").version == str(total)
    assert not any((sim.workspace_folder(ml_client) / "staging").iterdir())


def test_uploads_from_several_processes_never_trip_over_each_others_staging(ml_client, sim_root, tmp_path):
    # Every upload first sweeps old leftovers from staging/ while other processes' uploads
    # come and go there; many small copies at once make that overlap certain.
    processes, per_process = 4, 250
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    workers = start_workers(PLACE_COPIES, processes, sim_root, ml_client.workspace_name,
                            tmp_path / "signals", str(per_process), str(inputs))
    go(tmp_path / "signals")
    for worker in workers:
        assert finish(worker).strip() == str(per_process)
    workspace = sim.workspace_folder(ml_client)
    assert len(list((workspace / "storage" / "copies").iterdir())) == processes * per_process
    assert list((workspace / "staging").iterdir()) == []


# -- (b) a process killed mid-upload -------------------------------------------------------------
def test_a_process_killed_mid_upload_leaves_no_asset_and_its_staging_is_swept(ml_client, sim_root, tmp_path):
    workspace = sim.workspace_folder(ml_client)
    folder = tmp_path / "patients-folder"
    folder.mkdir()
    for i in range(30):
        (folder / f"part-{i:02d}.csv").write_text(f"age,diabetic\n{i},{i % 2}\n")
    progress = tmp_path / "progress"
    files_before = stored_files(workspace)

    [worker] = start_workers(SLOW_UPLOAD, 1, sim_root, ml_client.workspace_name, tmp_path / "signals",
                             str(folder), str(progress))
    go(tmp_path / "signals")
    deadline = time.time() + 60
    while not (progress.exists() and progress.read_text() and int(progress.read_text()) >= 3):
        assert worker.poll() is None, worker.communicate()[1]
        assert time.time() < deadline, "the upload did not start"
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL

    # No asset, no file in the datastore: only the abandoned copy in staging.
    assert rows(workspace, "data") == []
    assert stored_files(workspace) == files_before
    [leftover] = list((workspace / "staging").iterdir())
    assert any(p.is_file() for p in leftover.rglob("*"))
    with pytest.raises(ResourceNotFoundError, match="patients-folder"):
        ml_client.data.get("patients-folder", label="latest")

    # A young leftover may be an upload still in progress: the next upload leaves it alone.
    other = tmp_path / "other.csv"
    other.write_text("age\n1\n")
    ml_client.data.create_or_update(Data(name="other", path=str(other), type=AssetTypes.URI_FILE))
    assert leftover.exists()

    # Once old, the next upload's sweep removes it, and the same asset registers as version 1.
    old = time.time() - sim_store.STAGING_MAX_AGE_S - 60
    os.utime(leftover, (old, old))
    data = ml_client.data.create_or_update(Data(name="patients-folder", path=str(folder), type=AssetTypes.URI_FOLDER))
    assert data.version == "1"
    assert not leftover.exists()
    assert list((workspace / "staging").iterdir()) == []
    uploaded = [p for p in stored_files(workspace) if "patients-folder" in str(p)]
    assert sorted(p.name for p in uploaded) == sorted(p.name for p in folder.iterdir())
    assert ml_client.data.get("patients-folder", label="latest").version == "1"


SUBMIT_AND_STOP = PRELUDE + """
import signal
from azure.ai.ml import command
from labkit.sim.jobs import operations as jobs
ml_client = sim.connect(root=root, workspace_name=workspace)
code, how = args
real_start = jobs.JobOperations._start_worker

def stopped_between_storing_and_starting(self, name):
    print(json.dumps({"stored": name}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGINT)
    time.sleep(0.5)  # a signal's handler runs at the next bytecode: here, not after the start
    real_start(self, name)

jobs.JobOperations._start_worker = stopped_between_storing_and_starting
wait_for_go()
try:
    ml_client.jobs.create_or_update(command(code=code, command="python -c pass",
                                            environment="AzureML-sklearn-1.5@latest"))
    print(json.dumps({"interrupted": False}))
except KeyboardInterrupt:
    print(json.dumps({"interrupted": True}))
"""


def submit_and_stop(ml_client, sim_root, tmp_path, how: str) -> tuple[str, str]:
    """A kernel that submits a job and is interrupted (or killed) after storing it, before
    starting its worker; the job's name and what the kernel printed."""
    code = tmp_path / "src"
    code.mkdir(exist_ok=True)
    [worker] = start_workers(SUBMIT_AND_STOP, 1, sim_root, ml_client.workspace_name, tmp_path / f"signals-{how}",
                             str(code), how)
    go(tmp_path / f"signals-{how}")
    out, err = worker.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return lines[0]["stored"], (out + err)


# -- (c) a kernel stopped while it submits a job ---------------------------------------------------
def test_an_interrupt_while_a_job_is_submitted_waits_until_the_job_has_its_worker(ml_client, sim_root, tmp_path,
                                                                                  finished_job):
    name, said = submit_and_stop(ml_client, sim_root, tmp_path, "interrupt")
    assert '"interrupted": true' in said  # the learner's interrupt still arrives, once the job is whole
    assert finished_job(ml_client, name).status == "Completed"


def test_a_kernel_killed_between_storing_a_job_and_starting_it_leaves_a_failed_job(ml_client, sim_root, tmp_path,
                                                                                   monkeypatch, finished_job):
    from labkit.sim.jobs import job_state

    monkeypatch.setattr(job_state, "NEVER_STARTED_AFTER_S", 0.5)
    name, _ = submit_and_stop(ml_client, sim_root, tmp_path, "kill")
    time.sleep(0.6)
    job = ml_client.jobs.get(name)
    assert job.status == "Failed"
    assert "never started" in job_state.error_of(ml_client._sim_workspace, name)
    assert any(j.name == name for j in ml_client.jobs.list())  # the workspace lists it, whole
    again = ml_client.jobs.create_or_update(command(code=str(tmp_path / "src"), command="python -c pass",
                                                    environment="AzureML-sklearn-1.5@latest"))
    assert finished_job(ml_client, again.name).status == "Completed"


TWO_LEARNERS = PRELUDE + """
from azure.ai.ml import command
from azure.ai.ml.entities import ManagedOnlineEndpoint, Model
ml_client = sim.connect(root=root, workspace_name=workspace)
code, model_file = args
wait_for_go()
endpoint = ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="ep-shared")).result()
jobs = [ml_client.jobs.create_or_update(command(code=code, command="python -c pass",
                                                environment="AzureML-sklearn-1.5@latest")).name for _ in range(3)]
versions = [ml_client.models.create_or_update(Model(name="shared-model", path=model_file)).version for _ in range(3)]
print(json.dumps({"jobs": jobs, "versions": versions, "scoring_uri": endpoint.scoring_uri,
                  "again": ml_client.online_endpoints.get("ep-shared").scoring_uri}))
"""


# -- (c) two learners, one workspace -------------------------------------------------------------
def test_two_learners_submitting_registering_and_creating_one_endpoint_at_once(ml_client, sim_root, tmp_path,
                                                                              finished_job):
    """Distinct job names, contiguous model versions, and one endpoint (a PUT of the same
    endpoint twice is an update on Azure) with one front door that both learners reach."""
    from labkit.sim.endpoints import online_runtime

    code = tmp_path / "src"
    code.mkdir()
    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(b"weights")
    workers = start_workers(TWO_LEARNERS, 2, sim_root, ml_client.workspace_name, tmp_path / "signals",
                            str(code), str(model_file))
    go(tmp_path / "signals")
    reported = [json.loads(finish(worker)) for worker in workers]

    jobs = [name for r in reported for name in r["jobs"]]
    assert len(set(jobs)) == 6
    assert all(finished_job(ml_client, name).status == "Completed" for name in jobs)
    assert sorted(int(v) for r in reported for v in r["versions"]) == list(range(1, 7))
    uris = {uri for r in reported for uri in (r["scoring_uri"], r["again"])}
    assert uris == {ml_client.online_endpoints.get("ep-shared").scoring_uri}
    folder = online_runtime.endpoint_folder(ml_client._sim_workspace, "ep-shared")
    assert online_runtime.frontdoor_alive(folder)
    assert [e.name for e in ml_client.online_endpoints.list()] == ["ep-shared"]


KILLED_WHILE_DEPLOYING = PRELUDE + """
import signal
from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from labkit.sim.endpoints import online_deployments
ml_client = sim.connect(root=root, workspace_name=workspace)
project, = args
real_start = online_deployments.OnlineDeploymentOperations._start

def killed_while_the_instances_start(self, *a, **k):
    real_start(self, *a, **k)  # the instances run: the kernel dies before it records Succeeded
    os.kill(os.getpid(), signal.SIGKILL)

online_deployments.OnlineDeploymentOperations._start = killed_while_the_instances_start
ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="ep-crash")).result()
wait_for_go()
ml_client.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
    name="blue", endpoint_name="ep-crash", model=Model(path=f"{project}/model"), instance_type="Standard_DS3_v2",
    instance_count=1, environment="AzureML-sklearn-1.5@latest",
    code_configuration=CodeConfiguration(code=f"{project}/src", scoring_script="score.py"))).result()
"""
SCORE = "def init():\n    pass\n\ndef run(raw_data):\n    return [1]\n"


def test_a_kernel_killed_while_it_deploys_leaves_a_failed_deployment_and_no_server(ml_client, sim_root, tmp_path):
    """On the next read the deployment is Failed (not Creating for ever), its instances are
    stopped, and deploying it again works."""
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, Model

    from helpers import processes_under, write_files

    write_files(tmp_path, {"src/score.py": SCORE, "model/weights.txt": "1\n"})
    [worker] = start_workers(KILLED_WHILE_DEPLOYING, 1, sim_root, ml_client.workspace_name, tmp_path / "signals",
                             str(tmp_path))
    go(tmp_path / "signals")
    worker.communicate(timeout=180)
    assert worker.returncode == -signal.SIGKILL

    assert ml_client.online_deployments.get("blue", "ep-crash").provisioning_state == "Failed"
    deployment_folder = sim.workspace_folder(ml_client) / "online_endpoints" / "ep-crash" / "deployments" / "blue"
    assert processes_under(deployment_folder) == []
    again = ml_client.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
        name="blue", endpoint_name="ep-crash", model=Model(path=str(tmp_path / "model")),
        instance_type="Standard_DS3_v2", instance_count=1, environment="AzureML-sklearn-1.5@latest",
        code_configuration=CodeConfiguration(code=str(tmp_path / "src"), scoring_script="score.py"))).result()
    assert again.provisioning_state == "Succeeded"
    ml_client.online_endpoints.begin_delete("ep-crash").result()


# -- (d) one new workspace provisioned by several processes at once ------------------------------
def test_processes_provisioning_the_same_new_workspace_get_one_set_of_defaults(sim_root, tmp_path):
    name = "mlw-provisioned-twice"
    workers = start_workers(PROVISION, 3, sim_root, name, tmp_path / "signals")
    go(tmp_path / "signals")
    reported = [json.loads(finish(worker)) for worker in workers]

    assert len({r["id"] for r in reported}) == 1  # all saw the same workspace
    for r in reported:
        assert set(r["datastores"]) == DEFAULT_STORES
        assert r["default"] == "workspaceblobstore"
    folder = sim_root / name
    assert rows(folder, "workspace") == [(name, "")]
    assert sorted(n for n, _ in rows(folder, "datastore")) == sorted(DEFAULT_STORES)
    # One storage account with one container or share per default datastore.
    [account] = list((folder / "storage").iterdir())
    assert len(list(account.iterdir())) == len(DEFAULT_STORES)
