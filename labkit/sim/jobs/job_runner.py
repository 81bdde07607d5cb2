"""The worker that runs one command job: ``python -m labkit.sim.jobs.job_runner <workspace folder> <job>``.

It does what a compute node does on Azure: waits for a free node on the job's compute
(at most ``max_instances`` jobs run at once on a cluster), copies the code snapshot into
the job's folder, mounts (here: points at) or downloads (here: copies) the inputs, runs the
command in a shell with the variables Azure ML sets (MLflow's among them, so an unmodified
script logs into the job's own run), writes stdout and stderr to ``user_logs/std_log.txt``,
and finally uploads ``./outputs`` and ``./logs`` to the run's artifacts. It runs in a
session of its own, so canceling the job (SIGTERM to its process group) ends the command too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

from labkit.sim.core import references
from labkit.sim.jobs import job_state, warm_worker
from labkit.sim.jobs.job_state import Canceled
from labkit.sim.core.storage import datastore_folder
from labkit.sim.core.fs import local_path
from labkit.sim.core.store import utc_now
from labkit.sim.core.tracking import create_run_with_id
from labkit.sim.core.workspace import SimWorkspace

ARTIFACT_STORE = "workspaceartifactstore"

SLOT_POLL_S = 0.2
# An earlier job still NotStarted after this long has lost its worker; it no longer holds the queue.
WAITING_GRACE_S = 60
REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
ERROR_TAIL_LINES = 25
# Parent jobs other modules run: jobType -> "module:function(workspace, name)".
JOB_TYPE_RUNNERS: dict[str, str] = {
    "Sweep": "labkit.sim.jobs.sweep.running:run",
    "Pipeline": "labkit.sim.jobs.pipeline:run",
    "AutoML": "labkit.sim.jobs.automl.search:run",
    "BatchScoring": "labkit.sim.endpoints.batch_scoring:run",
    "Monitor": "labkit.sim.monitoring.monitor_job:run",
}
PARENTS_WITHOUT_A_NODE = ("Sweep", "Pipeline")
# A job whose ``properties`` name its runner here is run by that runner, whatever its jobType
# (a batch endpoint's job is a pipeline job to the SDK, but is not run as a graph of steps).
RUNNER_PROPERTY = "labkit.sim.runner"


def _seconds_ago(seconds: float) -> str:
    from datetime import datetime, timedelta, timezone

    moment = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _max_parallel_jobs(workspace: SimWorkspace, compute_id: str | None) -> int | None:
    """How many jobs may run at once on the compute (None: no limit here)."""
    if not compute_id:
        return None  # serverless compute scales per job
    row = workspace.store.get("compute", compute_id.rsplit("/", 1)[-1])
    scale = ((row.payload.get("properties") or {}).get("properties") or {}).get("scaleSettings") if row else None
    return int(scale["maxNodeCount"]) if scale and scale.get("maxNodeCount") else None


def wait_for_a_node(workspace: SimWorkspace, name: str) -> None:
    """Queued until the compute has a free node, then Running (one transaction decides)."""
    job_state.set_status(workspace, name, "Queued", only_from=("NotStarted",))
    store = workspace.store
    compute_id = store.get(job_state.KIND, name).payload["properties"].get("computeId")
    limit = _max_parallel_jobs(workspace, compute_id)
    while True:
        with store.transaction() as db:
            rows = db.execute("SELECT name, payload, rest_class, created_at FROM resources WHERE kind=?",
                              (job_state.KIND,)).fetchall()
            jobs = {r["name"]: (json.loads(r["payload"])["properties"], r["created_at"]) for r in rows}
            mine, created = jobs[name]
            if mine["status"] not in ("NotStarted", "Queued"):
                raise Canceled()  # CancelRequested (or ended) before it got a node
            # A sweep's or a pipeline's own job only oversees its children, which take the nodes.
            same_compute = [(props, at) for other, (props, at) in jobs.items()
                            if other != name and props.get("computeId") == compute_id
                            and props.get("jobType") not in PARENTS_WITHOUT_A_NODE]
            running = sum(1 for props, _ in same_compute if props.get("status") == "Running")
            # First come, first served: a job submitted earlier and still waiting goes first.
            earlier_waiting = any(props.get("status") in ("NotStarted", "Queued") and at < created
                                  and at > _seconds_ago(WAITING_GRACE_S) for props, at in same_compute)
            if limit is None or (running < limit and not earlier_waiting):
                from labkit.sim.core.store import load_rest_class

                row = next(r for r in rows if r["name"] == name)
                payload = json.loads(row["payload"])
                payload["properties"]["status"] = "Running"
                store.put(db, job_state.KIND, name, "", load_rest_class(row["rest_class"])(payload))
                break
        time.sleep(SLOT_POLL_S)
    job_state.write_runtime(workspace, name, start_time=utc_now())


# A job input of these types names a registered model version (the REST API's JobInputType).
MODEL_INPUT_TYPES = {"mlflow_model", "custom_model", "triton_model"}


def _input_path(workspace: SimWorkspace, folder: Path, input_name: str, value: dict) -> str:
    uri = value["uri"]
    if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
        is_model = value.get("jobInputType") in MODEL_INPUT_TYPES
        uri = (references.model_uri if is_model else references.data_asset_uri)(workspace, uri)
    if uri.startswith("azureml://jobs/"):  # a job's output, or a model registered from one
        uri = references.job_output_uri(workspace, uri)
    source = Path(local_path(uri)) if uri.startswith("azureml://") else Path(uri)
    if (value.get("mode") or "").lower() == "download":
        target = folder / "inputs" / input_name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target) if source.is_dir() else shutil.copy2(source, target)
        source = target
    if value.get("jobInputType") == "mltable" and "azureml://" in _read(source / "MLTable"):
        from labkit.sim.core import fs  # the job's process cannot resolve azureml:// itself

        source = fs.mltable_for_job(source, folder / "inputs" / f"{input_name}-resolved")
    return str(source)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _substitute(command: str, values: dict[str, dict[str, str]]) -> str:
    """Fill ``${{inputs.x}}`` / ``${{outputs.y}}``; keep a ``$[[...]]`` block only if all it names is given."""
    def optional(match: re.Match) -> str:
        inner = match.group(1)
        wanted = REFERENCE.findall(inner)
        return inner if all(name in values[kind] for kind, name in wanted) else ""

    command = OPTIONAL_BLOCK.sub(optional, command)

    def required(match: re.Match) -> str:
        kind, name = match.groups()
        if name not in values[kind]:
            raise ValueError(f"The command refers to {kind}.{name}, which the job does not define.")
        return values[kind][name]

    return REFERENCE.sub(required, command)


def _missing_packages(workspace: SimWorkspace, environment_id: str) -> tuple[str, list[str]]:
    """The environment's packages this interpreter does not have (jobs run in this Python)."""
    from labkit.sim.assets import conda

    environment, spec = conda.specification_of_version(workspace, environment_id)
    wanted = [p for p in conda.conda_packages(spec) if not p.startswith("python")] + conda.pip_packages(spec)
    missing = []
    for requirement in wanted:
        dist = re.split(r"[\s=<>~!\[;]", requirement.strip(), maxsplit=1)[0]
        if not dist:
            continue
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
    return environment, missing


def start_mlflow_run(workspace: SimWorkspace, name: str) -> None:
    """The job's MLflow run (its id is the job's name, as on Azure), and the job's ``default``
    output: the run's artifact folder in the workspace's artifact store."""
    props = workspace.store.get(job_state.KIND, name).payload["properties"]
    run = create_run_with_id(workspace.mlflow_tracking_uri, name, props["experimentName"],
                             props.get("displayName") or name, tags=props.get("tags") or {})
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    relative = artifacts.relative_to(datastore_folder(workspace, ARTIFACT_STORE)).as_posix()
    job_state.update_properties(workspace, name, lambda p: p.setdefault("outputs", {}).update(default={
        "jobOutputType": "uri_folder", "mode": "ReadWriteMount", "uri": workspace.long_uri(ARTIFACT_STORE, relative)}))


def run(workspace: SimWorkspace, name: str) -> None:
    row = workspace.store.get(job_state.KIND, name)
    props = row.payload["properties"]
    folder = job_state.job_folder(workspace, name)
    code = folder / "code"
    (folder / "user_logs").mkdir(parents=True, exist_ok=True)
    code.mkdir(parents=True, exist_ok=True)
    if props.get("codeId"):
        code_row = workspace.store.get("code", props["codeId"].split("/codes/")[1].split("/")[0], "1")
        shutil.copytree(local_path(code_row.payload["properties"]["codeUri"]), code, dirs_exist_ok=True)

    values: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
    for input_name, value in (props.get("inputs") or {}).items():
        values["inputs"][input_name] = (value["value"] if value.get("jobInputType") == "literal"
                                        else _input_path(workspace, folder, input_name, value))
    for output_name, value in (props.get("outputs") or {}).items():
        if output_name == "default":
            continue
        path = Path(local_path(value["uri"]))
        path.mkdir(parents=True, exist_ok=True)
        values["outputs"][output_name] = str(path)

    artifacts = Path(local_path(props["outputs"]["default"]["uri"]))
    experiment = props.get("experimentName")
    env = {
        **os.environ,
        **(props.get("environmentVariables") or {}),
        # What Azure ML sets for a job: MLflow resumes the job's run; the AZUREML_* names identify it.
        "MLFLOW_TRACKING_URI": workspace.mlflow_tracking_uri,
        "MLFLOW_RUN_ID": name,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "AZUREML_RUN_ID": name,
        "AZUREML_ARM_SUBSCRIPTION": workspace.subscription_id,
        "AZUREML_ARM_RESOURCEGROUP": workspace.resource_group,
        "AZUREML_ARM_WORKSPACE_NAME": workspace.name,
        "AZUREML_ARM_PROJECT_NAME": experiment,
        "PYTHONUNBUFFERED": "1",
        # Jobs run in this interpreter: its environment's `python` comes first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("LABKIT_SIM_ROOT", None)  # the job reaches its workspace through its tracking URI only
    for kind, prefix in (("inputs", "AZURE_ML_INPUT_"), ("outputs", "AZURE_ML_OUTPUT_")):
        env.update({prefix + key: value for key, value in values[kind].items()})

    log_path = folder / "user_logs" / "std_log.txt"
    with open(log_path, "a", buffering=1) as log:
        environment, missing = _missing_packages(workspace, props["environmentId"])
        if missing:
            log.write(f"[simulated workspace] Environment {environment} asks for packages that are not installed "
                      f"in the Python that runs this job: {', '.join(missing)}. On Azure they would be in the "
                      "environment's image; here the job runs anyway and fails only if the script needs them.\n")
        command = _substitute(props["command"], values)
        argv = warm_worker.plain_python(command, env, code)
        pid = warm_worker.run_script(argv, env, code, log_path) if argv else None
        if pid is not None:  # the worker's warm twin runs the script (labkit.sim.jobs.warm_worker)
            job_state.write_runtime(workspace, name, command_pid=pid)
            exit_code = warm_worker.wait(pid)
        else:
            child = subprocess.Popen(["bash", "-c", command], cwd=code, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
            job_state.write_runtime(workspace, name, command_pid=child.pid)
            exit_code = child.wait()

    for folder_name in ("outputs", "logs"):
        produced = code / folder_name
        if produced.is_dir():
            shutil.copytree(produced, artifacts / folder_name, dirs_exist_ok=True)
    (artifacts / "user_logs").mkdir(parents=True, exist_ok=True)
    shutil.copy2(log_path, artifacts / "user_logs" / "std_log.txt")

    if job_state.status_of(workspace, name) == "CancelRequested":
        raise Canceled()
    if exit_code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-ERROR_TAIL_LINES:])
        error = json.dumps({"code": "UserError", "message": (
            f"Execution failed. User process 'bash' exited with status code {exit_code}. Please check log file "
            f"'user_logs/std_log.txt' for error details. Error: {tail}")}, indent=4)
        job_state.finish(workspace, name, "Failed", error)
    else:
        job_state.finish(workspace, name, "Completed")


def main(folder: str, name: str) -> None:
    from labkit.sim.core import config

    config.active_root = Path(folder).parent  # azureml:// URIs resolve in this workspace's root
    workspace = SimWorkspace.from_folder(Path(folder))

    # The handler is in place before the pid is published: begin_cancel signals that pid.
    signal.signal(signal.SIGTERM, job_state.on_cancel)
    job_state.write_runtime(workspace, name, pid=os.getpid())
    try:
        start_mlflow_run(workspace, name)
        job_props = workspace.store.get(job_state.KIND, name).payload["properties"]
        job_type = (job_props.get("properties") or {}).get(RUNNER_PROPERTY) or job_props["jobType"]
        if job_type == "Command":
            wait_for_a_node(workspace, name)
            run(workspace, name)
        else:  # a sweep or a pipeline: its module runs it (and its children)
            from labkit.sim.core.groups import load

            load(JOB_TYPE_RUNNERS[job_type])(workspace, name)
    except Canceled:
        if job_state.status_of(workspace, name) not in job_state.TERMINAL_STATUSES:
            job_state.finish(workspace, name, "Canceled", "The job was canceled.")
    except Exception:  # the job fails; the traceback is its error, the workspace is untouched
        message = traceback.format_exc()
        log = job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"[simulated workspace] The job could not run:\n{message}")
        job_state.finish(workspace, name, "Failed", json.dumps({"code": "SystemError", "message": message}, indent=4))


if __name__ == "__main__":
    main(*sys.argv[1:3])
