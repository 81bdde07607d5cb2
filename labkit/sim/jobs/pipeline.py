"""Pipeline jobs: submitted as the service takes them, run step by step as child command jobs.

Submitting (``submit``, in the notebook's process) does what the SDK and the service do
before a pipeline starts: the SDK's validation; each step's component registered (an inline
component becomes an anonymous component, ``azureml_anonymous`` versioned by the hash of its
definition; a registered one keeps its id); each step's compute checked (the step's own, else
the pipeline's ``settings.default_compute``, else serverless); the default datastore checked;
pipeline inputs resolved (local paths uploaded, data assets named by id). The pipeline job is
stored NotStarted and its worker started.

Running (``run``, in the pipeline's worker process) follows the step graph that the bindings
``${{parent.inputs.x}}`` and ``${{parent.jobs.<step>.outputs.<y>}}`` describe: steps start as
soon as the steps they read from have completed, so independent steps run at the same time;
each step is a child command job (``azureml.parentrunid`` names the pipeline) and reads its
upstream outputs from the datastore URIs they were written to.

Reuse, as the service documents it: a step whose component is deterministic, in a pipeline
without ``force_rerun``, whose component version, code, environment, inputs (values, and for
data the identity of the data: an upstream output is identified by where it was written) and
output and run settings equal those of an earlier step run that completed, is not run again:
its child job is recorded Completed with ``azureml.isreused`` = ``true`` and
``azureml.reusedrunid`` naming the earlier run, and its outputs are the earlier run's
outputs. Children of a ``force_rerun`` pipeline are never reused by later pipelines.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from azure.ai.ml.constants._common import SERVERLESS_COMPUTE
from azure.ai.ml.constants._job.pipeline import PipelineConstants
from azure.ai.ml.entities import Job
from azure.ai.ml.entities._builders import Command
from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

from labkit.sim.jobs import job_state
from labkit.sim.assets.components import ARM_COMPONENT, _component_id
from labkit.sim.core.base import bad_request
from labkit.sim.core.storage import DEFAULT_DATASTORE
from labkit.sim.core.store import utc_now

POLL_S = 0.2
BINDING = re.compile(
    r"^\$\{\{\s*parent\.(?:inputs\.(?P<input>\w+)|jobs\.(?P<step>\w+)\.outputs\.(?P<output>\w+)|"
    r"outputs\.(?P<pipeline_output>\w+))\s*\}\}$")
# The simulation's own bookkeeping on a child job: what its reuse was decided on.
REUSE_KEY = "labkit.sim.reusekey"


# -- submitting (notebook process) --------------------------------------------------------------
def submit(job_operations, pipeline_job) -> Job:
    payload, rest_class = resolve(job_operations, pipeline_job)
    payload["properties"]["services"] = job_operations._services(payload["name"])
    return job_operations._store_and_start(rest_class, payload)


def resolve(ops, pipeline_job) -> tuple[dict, type]:
    """What the SDK and the service do to a pipeline job (already validated with the SDK's
    ``_validate``) before it can run or be scheduled: components registered; computes, datastore
    and inputs resolved. Returns the REST payload and its REST class."""
    base_path = Path(getattr(pipeline_job, "_base_path", None) or ".").resolve()
    settings = pipeline_job.settings
    default_compute = _compute_name(settings.default_compute if settings else None) or _compute_name(
        pipeline_job.compute)
    parent_compute = ops._resolve_compute(default_compute, pipeline_job) if default_compute else None
    if settings is not None and settings.default_datastore:
        settings.default_datastore = f"azureml:{_datastore_name(ops, settings.default_datastore)}"

    for step_name, node in pipeline_job.jobs.items():
        if not isinstance(node, Command):
            kind = type(node).__name__
            raise NotImplementedError(
                f"Step '{step_name}' is a {kind} step; the simulated workspace runs pipelines of command steps "
                "(components from YAML, command(...) or registered command components).")
        node._component = _component_id(ops, step_name, node._component)
        compute = _compute_name(node.compute)
        node.compute = ops._resolve_compute(compute, node) if compute else None

    rest = to_rest_job_object(pipeline_job)
    payload = rest.as_dict()
    props = payload["properties"]
    props["experimentName"] = props.get("experimentName") or "Default"
    props["computeId"] = parent_compute
    for input_name, value in (props.get("inputs") or {}).items():
        ops._resolve_input(input_name, value, base_path)
    for step_name, step in (props.get("jobs") or {}).items():
        for input_name, value in (step.get("inputs") or {}).items():
            if value.get("uri"):  # data given to the step itself, not bound to the pipeline
                resolved = {"uri": value["uri"], "jobInputType": value.get("job_input_type")}
                ops._resolve_input(f"{step_name}.{input_name}", resolved, base_path)
                value["uri"] = resolved["uri"]
    props.setdefault("properties", {})
    return payload, type(rest)


def _compute_name(compute: Any) -> Optional[str]:
    if compute is None:
        return None
    value = getattr(compute, "name", compute)
    if not isinstance(value, str) or not value or value.lower() == SERVERLESS_COMPUTE:
        return None
    return value


def _datastore_name(ops, reference: str) -> str:
    name = str(reference).removeprefix("azureml:").rstrip("/").rsplit("/datastores/", 1)[-1].split("/")[0]
    if ops._store.get("datastore", name) is None:
        raise bad_request(f"settings.default_datastore: datastore '{name}' was not found in workspace "
                          f"'{ops._workspace.name}'.")
    return name


# -- running (the pipeline's worker process) ----------------------------------------------------
class _Pipeline:
    """One run of a pipeline job: its graph, its children, its log."""

    def __init__(self, workspace, name: str):
        from labkit.sim.jobs.operations import JobOperations

        self.workspace = workspace
        self.name = name
        self.ops = JobOperations(workspace, root=workspace.folder.parent,
                                 scope=(workspace.subscription_id, workspace.resource_group))
        self.props = workspace.store.get(job_state.KIND, name).payload["properties"]
        settings = self.props.get("settings") or {}
        # The SDK leaves this unset; the pipeline job YAML reference gives True as the service's
        # default (an older schedule reference said False; the newer pipeline reference wins).
        self.continue_on_failure = settings.get("continue_on_step_failure")
        if self.continue_on_failure is None:
            self.continue_on_failure = True
        self.force_rerun = bool(settings.get("force_rerun"))
        datastore = settings.get("default_datastore")
        self.datastore = (str(datastore).removeprefix("azureml:").rsplit("/datastores/", 1)[-1].split("/")[0]
                          if datastore else DEFAULT_DATASTORE)
        self.default_compute = _compute_name(settings.get("default_compute")) or self.props.get("computeId")
        self.steps: dict[str, dict] = self.props.get("jobs") or {}
        self.upstream = {step: _upstream_steps(node) for step, node in self.steps.items()}
        for step, needs in self.upstream.items():
            unknown = needs - set(self.steps)
            if unknown:
                raise ValueError(f"Step '{step}' reads outputs of {sorted(unknown)}, which the pipeline does not have.")
        self.children: dict[str, str] = {}  # step -> child job name
        self.status: dict[str, str] = {}  # step -> final status of its child
        self.log_path = job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"[{utc_now()}] {message}\n")

    # -- the graph --------------------------------------------------------------------------
    def ready(self) -> list[str]:
        waiting = [s for s in self.steps if s not in self.children and s not in self.status]
        return sorted(s for s in waiting if all(self.status.get(u) == "Completed" for u in self.upstream[s]))

    def blocked(self) -> list[str]:
        """Steps that can no longer run: something they read from did not complete."""
        waiting = [s for s in self.steps if s not in self.children and s not in self.status]
        ended = {s for s, st in self.status.items() if st != "Completed"}
        blocked, changed = set(), True
        while changed:
            changed = False
            for step in waiting:
                if step not in blocked and self.upstream[step] & (ended | blocked):
                    blocked.add(step)
                    changed = True
        return sorted(blocked)

    # -- one step ---------------------------------------------------------------------------
    def start(self, step: str) -> None:
        from azure.ai.ml import Input, Output, command

        node = self.steps[step]
        component_id = node["componentId"]
        arm = ARM_COMPONENT.search(component_id)
        component_row = self.workspace.store.get("component", arm["name"], arm["version"])
        if component_row is None:
            raise ValueError(f"Step '{step}': component {component_id} no longer exists.")
        spec = component_row.payload["properties"]["componentSpec"]
        compute = node.get("computeId") or self.default_compute
        compute = None if _compute_name(compute) is None else compute
        environment = self.ops._group("_environments")._resolve_reference(spec["environment"]).id

        inputs: dict[str, Any] = {}
        identity: dict[str, Any] = {}
        for input_name, definition in (spec.get("inputs") or {}).items():
            value = self._input_value(step, input_name, (node.get("inputs") or {}).get(input_name), definition)
            if value is None:
                continue
            if isinstance(value, dict):
                inputs[input_name] = Input(type=value["type"], path=value["uri"], mode=value.get("mode"))
                identity[input_name] = [value["type"], value["uri"], value.get("mode")]
            else:
                inputs[input_name] = value
                identity[input_name] = str(value)

        child = str(uuid.uuid4())
        outputs: dict[str, Any] = {}
        output_settings: dict[str, Any] = {}
        for output_name, definition in (spec.get("outputs") or {}).items():
            given = (node.get("outputs") or {}).get(output_name) or {}
            kind = given.get("job_output_type") or definition.get("type") or "uri_folder"
            mode = given.get("mode") or definition.get("mode")
            path = given.get("uri")
            bound = BINDING.match(str(given.get("value", "")))
            if bound and bound["pipeline_output"]:
                pipeline_output = (self.props.get("outputs") or {}).get(bound["pipeline_output"]) or {}
                path = pipeline_output.get("uri") or path
                mode = pipeline_output.get("mode") or mode
            mode = _mode(mode)
            output_settings[output_name] = [kind, mode, path]
            default_path = self.workspace.long_uri(self.datastore, f"azureml/{child}/{output_name}/")
            outputs[output_name] = Output(type=kind, mode=mode, path=path or default_path)

        key = _fingerprint({
            "component": component_id, "code": spec.get("code"), "environment": environment,
            "command": spec.get("command"), "inputs": identity, "outputs": output_settings,
            "datastore": self.datastore, "compute": compute,
            "environment_variables": {**(spec.get("environment_variables") or {}),
                                      **(node.get("environment_variables") or {})},
            "resources": node.get("resources"), "distribution": node.get("distribution"),
        })
        deterministic = spec.get("is_deterministic", True) not in (False, "false", "False")
        if deterministic and not self.force_rerun:
            earlier = _earlier_run(self.workspace, key)
            if earlier:
                self._record_reused(step, child, earlier)
                return
        properties = {REUSE_KEY: key} if deterministic and not self.force_rerun else {}
        job = command(
            name=child, display_name=step, command=spec["command"], code=_code_reference(spec.get("code")),
            environment=environment, inputs=inputs, outputs=outputs, compute=compute,
            experiment_name=self.props.get("experimentName"),
            environment_variables={**(spec.get("environment_variables") or {}),
                                   **(node.get("environment_variables") or {})} or None,
            properties=properties, tags=node.get("tags") or None)
        with job_state.cancel_deferred():  # a step started is a step the pipeline knows (and cancels)
            self.ops._submit_command(job, parent=self.name)
            self.children[step] = child
        self.log(f"step '{step}': child job {child} submitted")

    def _input_value(self, step: str, input_name: str, given: Optional[dict], definition: dict):
        """A step input: a literal, or {type, uri, mode} for data; None when absent and optional."""
        kind = definition.get("type")
        if given is None:
            default = definition.get("default")
            if default is None:
                if definition.get("optional"):
                    return None
                raise ValueError(f"Step '{step}': required input '{input_name}' is not given.")
            return default
        value = given.get("value")
        bound = BINDING.match(str(value)) if value is not None else None
        if bound and bound["input"]:
            parent_input = (self.props.get("inputs") or {}).get(bound["input"])
            if parent_input is None:
                if definition.get("optional"):
                    return None
                raise ValueError(f"Step '{step}': input '{input_name}' is bound to pipeline input "
                                 f"'{bound['input']}', which is not given.")
            if parent_input.get("jobInputType") == "literal":
                return parent_input.get("value")
            return {"type": parent_input.get("jobInputType") or kind, "uri": parent_input["uri"],
                    "mode": _mode(given.get("mode") or parent_input.get("mode"))}
        if bound and bound["step"]:
            upstream = self.children[bound["step"]]
            outputs = self.workspace.store.get(job_state.KIND, upstream).payload["properties"].get("outputs") or {}
            produced = outputs.get(bound["output"])
            if produced is None:
                raise ValueError(f"Step '{step}' reads output '{bound['output']}' of step '{bound['step']}', "
                                 "which that step does not have.")
            data_kind = kind if kind and kind.startswith(("uri_", "mltable", "mlflow", "custom")) else None
            return {"type": data_kind or produced.get("jobOutputType") or "uri_folder", "uri": produced["uri"],
                    "mode": _mode(given.get("mode"))}
        if given.get("uri"):
            return {"type": given.get("job_input_type") or kind, "uri": given["uri"], "mode": _mode(given.get("mode"))}
        return value

    def _record_reused(self, step: str, child: str, earlier: str) -> None:
        """A reused step: a Completed child that points at the earlier run and its outputs."""
        from labkit.sim.core.store import load_rest_class

        store = self.workspace.store
        original = store.get(job_state.KIND, earlier)
        payload = copy.deepcopy(original.payload)
        payload["name"] = child
        props = payload["properties"]
        props["displayName"] = step
        props["status"] = "Completed"
        props["services"] = self.ops._services(child)
        props["properties"] = {
            "azureml.parentrunid": self.name,
            PipelineConstants.REUSED_FLAG_FIELD: PipelineConstants.REUSED_FLAG_TRUE,
            PipelineConstants.REUSED_JOB_ID: earlier,
        }
        folder = job_state.job_folder(self.workspace, child)
        (folder / "user_logs").mkdir(parents=True, exist_ok=True)
        earlier_log = job_state.job_folder(self.workspace, earlier) / "user_logs" / "std_log.txt"
        if earlier_log.exists():
            shutil.copy2(earlier_log, folder / "user_logs" / "std_log.txt")
        now = utc_now()
        job_state.write_runtime(self.workspace, child, start_time=now, end_time=now, reused_from=earlier)
        with store.transaction() as db:
            store.put(db, job_state.KIND, child, "", load_rest_class(original.rest_class)(payload))
        job_state.write_summary(self.workspace, child)
        self.children[step] = child
        self.status[step] = "Completed"
        self.log(f"step '{step}': reused the output of job {earlier} (child job {child})")
        self._bind_pipeline_outputs(step)

    def _bind_pipeline_outputs(self, step: str) -> None:
        """Pipeline outputs bound to this step's outputs point where the step wrote them."""
        child_outputs = self.workspace.store.get(job_state.KIND, self.children[step]).payload["properties"].get(
            "outputs") or {}
        bindings = {}
        for output_name, given in (self.steps[step].get("outputs") or {}).items():
            bound = BINDING.match(str((given or {}).get("value", "")))
            if bound and bound["pipeline_output"] and output_name in child_outputs:
                bindings[bound["pipeline_output"]] = child_outputs[output_name]["uri"]
        if bindings:
            def change(props):
                outputs = props.setdefault("outputs", {}) or {}
                for pipeline_output, uri in bindings.items():
                    outputs.setdefault(pipeline_output, {"jobOutputType": "uri_folder"})["uri"] = uri
                props["outputs"] = outputs
            job_state.update_properties(self.workspace, self.name, change)

    # -- the whole pipeline ------------------------------------------------------------------
    def poll(self) -> list[str]:
        """Record children that have ended; return the steps that failed just now."""
        failed = []
        for step, child in self.children.items():
            if step in self.status:
                continue
            job_state.refresh_if_worker_died(self.workspace, child)
            status = job_state.status_of(self.workspace, child)
            if status in job_state.TERMINAL_STATUSES:
                self.status[step] = status
                self.log(f"step '{step}': child job {child} {status}")
                if status == "Completed":
                    self._bind_pipeline_outputs(step)
                else:
                    failed.append(step)
        return failed

    def running(self) -> list[str]:
        return [step for step in self.children if step not in self.status]

    def cancel_children(self) -> None:
        for step in self.running():
            child = self.children[step]
            try:
                self.ops.begin_cancel(child)
            except Exception:  # it ended meanwhile
                pass
        deadline = time.time() + 60
        while self.running() and time.time() < deadline:
            self.poll()
            time.sleep(POLL_S)

    def run(self) -> None:
        Canceled = job_state.Canceled
        try:
            stop = False
            while True:
                if job_state.status_of(self.workspace, self.name) == "CancelRequested":
                    raise Canceled()
                if not stop:
                    for step in self.ready():
                        self.start(step)
                failed = self.poll()
                if failed and not self.continue_on_failure:
                    self.log(f"step(s) {', '.join(failed)} did not complete and continue_on_step_failure is "
                             "False: canceling the steps still running")
                    stop = True
                    self.cancel_children()
                if not self.running() and (stop or not self.ready()):
                    break
                time.sleep(POLL_S)
        except Canceled:
            self.log("the pipeline job was canceled: canceling its running steps")
            self.cancel_children()
            raise
        not_run = [s for s in self.steps if s not in self.children]
        if not_run:
            self.log(f"step(s) not run because a step they depend on did not complete: {', '.join(not_run)}")
        unsuccessful = sorted(s for s, st in self.status.items() if st != "Completed")
        if unsuccessful or not_run:
            details = ", ".join(f"{s} ({self.status[s]}, job {self.children[s]})" for s in unsuccessful)
            message = json.dumps({"code": "UserError", "message": (
                f"Pipeline has failed child jobs: {details}. Steps not run: {', '.join(not_run) or 'none'}. "
                "See the child jobs' logs (ml_client.jobs.list(parent_job_name=...)) for details.")}, indent=4)
            job_state.finish(self.workspace, self.name, "Failed", message)
        else:
            job_state.finish(self.workspace, self.name, "Completed")


def run(workspace, name: str) -> None:
    if not job_state.set_status(workspace, name, "Running", only_from=("NotStarted", "Queued")):
        raise job_state.Canceled()
    job_state.write_runtime(workspace, name, start_time=utc_now())
    _Pipeline(workspace, name).run()


# -- helpers ------------------------------------------------------------------------------------
def _upstream_steps(node: dict) -> set[str]:
    steps = set()
    for value in (node.get("inputs") or {}).values():
        bound = BINDING.match(str((value or {}).get("value", "")))
        if bound and bound["step"]:
            steps.add(bound["step"])
    return steps


def _mode(mode: Optional[str]) -> Optional[str]:
    """REST modes (``ReadOnlyMount``) as the SDK's ``Input`` takes them (``ro_mount``)."""
    if not mode:
        return None
    return {"readonlymount": "ro_mount", "readwritemount": "rw_mount", "download": "download",
            "upload": "upload", "direct": "direct", "evalmount": "eval_mount",
            "evaldownload": "eval_download"}.get(mode.replace("_", "").lower(), mode)


def _code_reference(code: Optional[str]) -> Optional[str]:
    if not code:
        return None
    return code if code.startswith("azureml:") else f"azureml:{code}"


def _fingerprint(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _earlier_run(workspace, key: str) -> Optional[str]:
    """The newest completed step run with this reuse key (one that really ran, not a reused one)."""
    matches = [row for row in workspace.store.list(job_state.KIND, include_archived=True)
               if (row.payload["properties"].get("properties") or {}).get(REUSE_KEY) == key
               and row.payload["properties"].get("status") == "Completed"]
    if not matches:
        return None
    return max(matches, key=lambda row: row.created_at).name
