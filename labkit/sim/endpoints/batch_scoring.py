"""A batch endpoint's scoring job, run in its worker (``job_runner`` -> ``run``).

What the service's batch scoring does, and the simulation with it:
- the job waits for its cluster, then its child job ``batchscoring`` starts; the model is placed
  under ``AZUREML_MODEL_DIR`` (``azureml-models/<name>/<version>/``) and the scoring script's code
  folder is the working directory;
- the input's files (the files directly in a ``uri_folder``, sorted, or the ``uri_file``) are
  split into mini batches of ``mini_batch_size`` files; work is distributed by file, whatever
  the files' sizes;
- ``instance_count`` x ``max_concurrency_per_instance`` worker processes (here at most
  ``MAX_LOCAL_WORKERS``, the machine being small) each call ``init()`` once, then ``run(mini_batch)``
  for one mini batch after another, ``mini_batch`` being a list of file paths;
- a mini batch whose ``run()`` raises, or takes longer than ``retry_settings.timeout`` (the worker
  is then stopped and a new one started, calling ``init()`` again), is tried again, up to
  ``retry_settings.max_retries`` tries in all; after the last try its files count as failed;
- ``run()`` returns a DataFrame or a list; each element is one input item processed, so a mini
  batch returning fewer elements than it had files counts the rest as failed;
- when the failed items exceed ``error_threshold`` (-1: no limit) the job stops and fails; a job
  in which no mini batch succeeded fails too;
- ``append_row`` appends every returned element to one file, ``output_file_name`` in the output
  ``score``: a DataFrame row as its values separated by spaces (no header, column names are
  dropped), a list element as its text (a list or array element as its values separated by
  spaces). ``summary_only`` writes no predictions file (a script writes its own files to
  ``AZUREML_BI_OUTPUT_PATH``, the output folder);
- an MLflow model deployed without a script is scored by the service's own script: each CSV or
  Parquet file is read into a DataFrame and passed to the model's ``predict`` (pyfunc flavor; the
  signature applies), and each prediction is written as ``row,prediction,file_name`` (the
  row's index in its file, the prediction as the model returned it, the file's name);
- logs in the service's layout (``logs/job_progress_overview.txt``, ``logs/sys/master_role.txt``,
  ``logs/sys/node/<node>/process<n>.txt``, ``logs/user/stdout/<node>/process<n>.stdout.txt``,
  ``logs/user/error/<node>/process<n>.txt``, ``logs/user/error.txt``) are the child job's
  artifacts, beside ``user_logs/std_log.txt``.

What differs on Azure: the workers are processes on this machine, not nodes of the cluster;
scripts run in this Python, not in the deployment's environment image.
"""
from __future__ import annotations

import collections
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
import traceback
import uuid
from pathlib import Path

from labkit.sim.core import references
from labkit.sim.assets import conda
from labkit.sim.jobs import job_state
from labkit.sim.endpoints.batch_endpoints import INPUT_NAME, OUTPUT_NAME, SCORING_STEP, SETTINGS_PROPERTY
from labkit.sim.core.fs import local_path
from labkit.sim.core.store import utc_now

MAX_LOCAL_WORKERS = 2
POLL_S = 0.2
MLFLOW_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pqt": "parquet"}
# The environment the service's own scoring runs in when an MLflow deployment names none.
MLFLOW_ENVIRONMENT = "azureml:AzureML-minimal-ubuntu22.04-py39-cpu-inference@latest"


# -- in a worker process ----------------------------------------------------------------------------
def _as_lines(result) -> list[str]:
    """What ``append_row`` writes for ``run()``'s result: one line per element."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is part of the book's environment
        pd = None
    if pd is not None and isinstance(result, pd.DataFrame):
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False, name=None)]
    if pd is not None and isinstance(result, pd.Series):
        result = result.tolist()
    lines = []
    for element in list(result):
        if isinstance(element, str):
            lines.append(element)
        elif hasattr(element, "tolist") and not isinstance(element, (int, float)):
            value = element.tolist()
            lines.append(" ".join(str(v) for v in value) if isinstance(value, list) else str(value))
        elif isinstance(element, (list, tuple)):
            lines.append(" ".join(str(v) for v in element))
        else:
            lines.append(str(element))
    return lines


class _MlflowScorer:
    """The scoring script the service supplies for an MLflow model deployed without one."""

    def __init__(self):
        self.model = None

    def init(self):
        import mlflow.pyfunc

        root = Path(os.environ["AZUREML_MODEL_DIR"])
        folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
        folder = next(f for f in folders if (f / "MLmodel").is_file())
        self.model = mlflow.pyfunc.load_model(str(folder))
        print(f"Loaded MLflow model from {folder}")

    def run(self, mini_batch):
        import pandas as pd

        lines = []
        for path in mini_batch:
            kind = MLFLOW_EXTENSIONS.get(Path(path).suffix.lower())
            if kind is None:
                raise ValueError(f"Error processing input file: '{path}'. File type "
                                 f"'{Path(path).suffix.lstrip('.')}' is not supported.")
            data = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
            # The service reads the data with the types of the model's signature (a column-based one).
            schema = self.model.metadata.get_input_schema()
            if schema is not None and schema.has_input_names() and not schema.is_tensor_spec():
                types = dict(zip(schema.input_names(), schema.pandas_types()))
                data = data.astype({k: v for k, v in types.items() if k in data.columns})
            predictions = self.model.predict(data)
            if isinstance(predictions, pd.DataFrame):
                values = (predictions.iloc[:, 0].tolist() if predictions.shape[1] == 1
                          else predictions.to_dict(orient="records"))
            elif hasattr(predictions, "tolist"):
                values = predictions.tolist()
            else:
                values = list(predictions)
            name = Path(path).name
            lines.extend(f"{row},{value},{name}" for row, value in enumerate(values))
        return lines


def _worker(conn, spec: dict, stdout_path: str) -> None:
    """A scoring process: ``init()`` once, then ``run()`` for each mini batch it is sent."""
    log = open(stdout_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.update(spec["environment"])
    os.chdir(spec["code_dir"])
    sys.argv = [spec["script"] or "mlflow_score.py", "--logging_level", spec["logging_level"]]
    import logging

    logging.basicConfig(level=spec["logging_level"].upper(), stream=log)
    try:
        if spec["script"]:
            import importlib.util

            sys.path.insert(0, spec["code_dir"])
            module_spec = importlib.util.spec_from_file_location("batch_score", Path(spec["code_dir"], spec["script"]))
            script = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(script)
        else:
            script = _MlflowScorer()
        if hasattr(script, "init"):
            script.init()
    except BaseException:
        conn.send(("init_failed", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        batch_id, files = message
        try:
            result = script.run(list(files))
            conn.send(("done", (batch_id, _as_lines(result if result is not None else []))))
        except BaseException:
            print(traceback.format_exc(), flush=True)
            conn.send(("error", (batch_id, traceback.format_exc())))


# -- in the job's worker ----------------------------------------------------------------------------
class _Worker:
    def __init__(self, index: int, per_instance: int, spec: dict, logs: Path):
        self.node = f"10.0.0.{4 + index // per_instance}"
        self.process = f"process{index % per_instance + 1:03d}"
        self.index = index
        self.spec = spec
        self.logs = logs
        self.busy = None  # (batch_id, started)
        self.ready = False
        self.start()

    def start(self):
        stdout = self.logs / "user" / "stdout" / self.node / f"{self.process}.stdout.txt"
        stdout.parent.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_worker, args=(child, self.spec, str(stdout)), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.busy = None

    def stop(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class _Scoring:
    """One batch scoring run: mini batches, workers, retries, the error threshold, the output."""

    def __init__(self, workspace, parent: str, child: str, settings: dict, files: list[Path], spec: dict,
                 logs: Path, output: Path, log):
        self.workspace = workspace
        self.parent, self.child = parent, child
        self.settings = settings
        self.spec = spec
        self.logs = logs
        self.output = output
        self.log = log
        size = settings["mini_batch_size"]
        self.batches = [[str(f) for f in files[i:i + size]] for i in range(0, len(files), size)]
        self.tries = max(1, settings["max_retries"])
        self.timeout = job_state_seconds(settings["timeout"])
        self.failed_items = 0
        self.succeeded_batches = 0
        self.lines: list[str] = []

    def note(self, path: str, message: str) -> None:
        target = self.logs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as handle:
            handle.write(f"{utc_now()} {message}\n")

    def over_threshold(self) -> bool:
        threshold = self.settings["error_threshold"]
        return threshold != -1 and self.failed_items > threshold

    def run(self) -> str | None:
        """Score every mini batch; the reason the job failed, or None."""
        total = len(self.batches)
        self.note("job_progress_overview.txt", f"{total} mini batches created from {sum(map(len, self.batches))} "
                                               f"files (mini_batch_size {self.settings['mini_batch_size']}).")
        if not total:
            return "The input has no files to score."
        per_instance = self.settings["max_concurrency_per_instance"]
        wanted = self.settings["instance_count"] * per_instance
        count = max(1, min(wanted, MAX_LOCAL_WORKERS, total))
        self.note("sys/master_role.txt", f"{total} tasks; {wanted} worker processes asked for "
                                         f"({self.settings['instance_count']} instances x {per_instance}), {count} run "
                                         "on this machine.")
        pending = collections.deque((i, 1) for i in range(total))
        attempts: dict[int, int] = {}
        workers = [_Worker(i, per_instance, self.spec, self.logs) for i in range(count)]
        done = 0
        try:
            while done < total:
                if job_state.status_of(self.workspace, self.parent) == "CancelRequested":
                    raise job_state.Canceled()
                for worker in workers:
                    finished = self._poll(worker, pending, attempts)
                    if isinstance(finished, str):
                        return finished
                    done += finished
                if self.over_threshold():
                    message = (f"The number of failed items ({self.failed_items}) is over the error threshold "
                               f"({self.settings['error_threshold']}): the job is stopped.")
                    self.note("job_progress_overview.txt", message)
                    return message
                for worker in workers:
                    if worker.ready and worker.busy is None and pending:
                        batch_id, attempt = pending.popleft()
                        attempts[batch_id] = attempt
                        worker.conn.send((batch_id, self.batches[batch_id]))
                        worker.busy = (batch_id, time.monotonic())
                        self.note(f"sys/node/{worker.node}/{worker.process}.txt",
                                  f"mini batch {batch_id} (try {attempt}): {len(self.batches[batch_id])} items")
                time.sleep(POLL_S)
        finally:
            for worker in workers:
                if worker.proc.is_alive() and worker.ready:
                    try:
                        worker.conn.send(None)
                    except OSError:
                        pass
                worker.proc.join(2)
                worker.stop()
        self.note("job_progress_overview.txt",
                  f"{self.succeeded_batches} of {total} mini batches succeeded; {self.failed_items} items failed.")
        if self.succeeded_batches == 0:
            return ("No succeeded mini batch item returned from run(). Check logs/user/error and "
                    "logs/user/stdout for the errors.")
        return None

    def _poll(self, worker: _Worker, pending, attempts):
        """Handle what a worker reports; the number of mini batches it finished (or a failure reason)."""
        if worker.busy is not None and time.monotonic() - worker.busy[1] > self.timeout:
            batch_id = worker.busy[0]
            self.log(f"mini batch {batch_id}: no result in {self.timeout:g} seconds; its worker is stopped")
            self.note(f"user/error/{worker.node}/{worker.process}.txt",
                      f"mini batch {batch_id} timed out after {self.timeout:g} seconds")
            worker.stop()
            worker.start()
            return self._retry_or_fail(batch_id, attempts, pending, "timed out")
        if not worker.conn.poll():
            if not worker.proc.is_alive() and not worker.conn.poll():
                batch = worker.busy[0] if worker.busy else None
                worker.stop()
                worker.start()
                if batch is not None:
                    return self._retry_or_fail(batch, attempts, pending, "its process ended")
            return 0
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            return 0
        if kind == "ready":
            worker.ready = True
            return 0
        if kind == "init_failed":
            self.note(f"user/error/{worker.node}/{worker.process}.txt", f"init() failed:\n{value}")
            self.note("user/error.txt", f"{worker.node}/{worker.process}: init() failed")
            return f"User program failed with Exception: init() failed.\n{value}"
        batch_id, payload = value
        worker.busy = None
        files = self.batches[batch_id]
        if kind == "error":
            self.note(f"user/error/{worker.node}/{worker.process}.txt", f"mini batch {batch_id}: run() failed:\n{payload}")
            self.note("user/error.txt", f"mini batch {batch_id}: {payload.strip().splitlines()[-1]}")
            self.log(f"mini batch {batch_id}: run() failed (try {attempts[batch_id]} of {self.tries})")
            return self._retry_or_fail(batch_id, attempts, pending, "run() failed")
        self.succeeded_batches += 1
        missing = max(0, len(files) - len(payload))
        self.failed_items += missing
        self.lines.extend(payload)
        self.note(f"sys/node/{worker.node}/{worker.process}.txt",
                  f"mini batch {batch_id}: {len(files)} items, {len(files) - missing} succeeded, {missing} failed")
        self.log(f"mini batch {batch_id}: {len(payload)} results from {len(files)} files")
        return 1

    def _retry_or_fail(self, batch_id: int, attempts: dict, pending, why: str) -> int:
        attempt = attempts.get(batch_id, 1)
        if attempt < self.tries:
            pending.append((batch_id, attempt + 1))
            return 0
        self.failed_items += len(self.batches[batch_id])
        self.log(f"mini batch {batch_id}: {why} on all {self.tries} tries; its {len(self.batches[batch_id])} "
                 "files count as failed")
        return 1


def job_state_seconds(value) -> float:
    from labkit.sim.endpoints.online_runtime import iso_seconds

    if isinstance(value, (int, float)):
        return float(value)
    return iso_seconds(str(value), 30)


def _input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # Files directly in the folder: nested folders are not explored (as the service documents).
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def _place_model(workspace, model_id: str, destination: Path) -> Path:
    from labkit.sim.endpoints.batch_deployments import copy_placed
    from labkit.sim.endpoints.deployments import ARM_MODEL

    match = ARM_MODEL.search(model_id)
    row = workspace.store.get("model", match["name"], match["version"])
    if row is None:
        raise ValueError(f"Model {model_id} no longer exists in the workspace.")
    uri = row.payload["properties"]["modelUri"]
    if uri.startswith("azureml://jobs/"):
        uri = references.job_output_uri(workspace, uri)
    model_dir = destination / "azureml-models" / row.name / row.version
    copy_placed(Path(local_path(uri)), model_dir)
    return model_dir


def _create_child(workspace, parent: str, settings: dict, props: dict) -> str:
    """The ``batchscoring`` child job, as the studio shows it under the pipeline job."""
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.entities import JobResourceConfiguration
    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    from labkit.sim.jobs.operations import JobOperations

    ops = JobOperations(workspace, root=workspace.folder.parent,
                        scope=(workspace.subscription_id, workspace.resource_group))
    child = str(uuid.uuid4())
    given = props["inputs"][INPUT_NAME]
    environment = settings["environment"] or ops._group("_environments")._resolve_reference(MLFLOW_ENVIRONMENT).id
    job = command(name=child, display_name=SCORING_STEP, experiment_name=props["experimentName"],
                  command="python -m labkit.sim.endpoints.batch_scoring  # the batch scoring driver (simulated)",
                  environment=environment, compute=props.get("computeId"),
                  inputs={INPUT_NAME: Input(type=given["jobInputType"], path=given["uri"])},
                  outputs={OUTPUT_NAME: Output(type="uri_folder", path=props["outputs"][OUTPUT_NAME]["uri"])},
                  environment_variables=settings["environment_variables"] or None)
    job.resources = JobResourceConfiguration(instance_count=settings["instance_count"])
    rest = to_rest_job_object(job)
    payload = rest.as_dict()
    child_props = payload["properties"]
    child_props["computeId"] = props.get("computeId")
    child_props["environmentId"] = environment
    child_props["codeId"] = settings["code"]
    child_props["inputs"] = {INPUT_NAME: dict(given)}
    child_props["properties"] = {"azureml.parentrunid": parent}
    child_props["services"] = ops._services(child)
    child_props["status"] = "Running"
    with workspace.store.transaction() as db:
        workspace.store.put(db, job_state.KIND, child, "", type(rest)(payload))
    job_state.write_runtime(workspace, child, pid=os.getpid(), start_time=utc_now())
    return child


def run(workspace, name: str) -> None:
    """Run a batch endpoint's model deployment job (the pipeline job ``name``)."""
    from labkit.sim.jobs.job_runner import _input_path, start_mlflow_run, wait_for_a_node

    wait_for_a_node(workspace, name)
    props = workspace.store.get(job_state.KIND, name).payload["properties"]
    settings = json.loads(props["properties"][SETTINGS_PROPERTY])
    parent_log = job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt"
    parent_log.parent.mkdir(parents=True, exist_ok=True)

    def log_parent(message: str) -> None:
        with open(parent_log, "a") as handle:
            handle.write(f"[{utc_now()}] {message}\n")

    child = _create_child(workspace, name, settings, props)
    log_parent(f"step '{SCORING_STEP}': child job {child} started (endpoint {settings['endpoint']}, deployment "
               f"{settings['deployment']})")
    start_mlflow_run(workspace, child)
    folder = job_state.job_folder(workspace, child)
    child_log = folder / "user_logs" / "std_log.txt"
    child_log.parent.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        with open(child_log, "a") as handle:
            handle.write(f"[{utc_now()}] {message}\n")

    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    status, error = "Failed", None
    try:
        code_dir = folder / "code"
        code_dir.mkdir(parents=True, exist_ok=True)
        if settings["code"]:
            code_name = settings["code"].split("/codes/")[1].split("/")[0]
            code_row = workspace.store.get("code", code_name, "1")
            shutil.copytree(local_path(code_row.payload["properties"]["codeUri"]), code_dir, dirs_exist_ok=True)
        model_dir = _place_model(workspace, settings["model"], folder)
        log(f"model {settings['model'].rsplit('/models/', 1)[-1]} placed at {model_dir}")
        # How this Python differs from what Azure would install, before anything can fail.
        model_label = settings["model"].rsplit("/models/", 1)[-1].replace("/versions/", ":")
        for line in conda.deployment_notes(workspace, settings["environment"], model_label, model_dir,
                                           "runs this batch scoring"):
            log(line)
            log_parent(line)
        source = Path(_input_path(workspace, folder, INPUT_NAME, props["inputs"][INPUT_NAME]))
        output = Path(local_path(props["outputs"][OUTPUT_NAME]["uri"]))
        output.mkdir(parents=True, exist_ok=True)
        spec = {
            "script": settings["scoring_script"] if settings["code"] else None,
            "code_dir": str(code_dir),
            "logging_level": str(settings["logging_level"]).lower(),
            "environment": {
                **{k: str(v) for k, v in settings["environment_variables"].items()},
                "AZUREML_MODEL_DIR": str(model_dir),
                "AZUREML_BI_OUTPUT_PATH": str(output),
                "AZUREML_RUN_ID": child,
                "MLFLOW_RUN_ID": child,
                "MLFLOW_TRACKING_URI": workspace.mlflow_tracking_uri,
                "MLFLOW_EXPERIMENT_NAME": props["experimentName"],
            },
        }
        files = _input_files(source)
        log(f"{len(files)} input files from {source}")
        scoring = _Scoring(workspace, name, child, settings, files, spec, logs, output, log)
        error = scoring.run()
        if error is None:
            if settings["output_action"] == "AppendRow":
                target = output / settings["output_file_name"]
                if target.exists():
                    error = (f"The output folder already holds {target.name}; batch scoring does not overwrite "
                             "an existing predictions file.")
                else:
                    target.write_text("".join(line + "\n" for line in scoring.lines))
                    log(f"{len(scoring.lines)} rows written to {OUTPUT_NAME}/{target.name}")
            status = "Completed" if error is None else "Failed"
        if error:
            log(error)
    except job_state.Canceled:
        status, error = "Canceled", "The job was canceled."
        raise
    except Exception:
        error = traceback.format_exc()
        log(f"The batch scoring could not run:\n{error}")
    finally:
        _finish_child(workspace, child, logs, child_log, status, error)
        log_parent(f"step '{SCORING_STEP}': child job {child} {status}")
        if status != "Canceled":
            message = None
            if status != "Completed":
                message = json.dumps({"code": "UserError", "message": f"Batch scoring failed: {error}"}, indent=4)
            job_state.finish(workspace, name, status, message)


def _finish_child(workspace, child: str, logs: Path, child_log: Path, status: str, error: str | None) -> None:
    props = workspace.store.get(job_state.KIND, child).payload["properties"]
    artifacts = Path(local_path(props["outputs"]["default"]["uri"]))
    if logs.is_dir():
        shutil.copytree(logs, artifacts / "logs", dirs_exist_ok=True)
    (artifacts / "user_logs").mkdir(parents=True, exist_ok=True)
    if child_log.exists():
        shutil.copy2(child_log, artifacts / "user_logs" / "std_log.txt")
    message = json.dumps({"code": "UserError", "message": error}, indent=4) if error and status == "Failed" else None
    job_state.finish(workspace, child, status, message)
