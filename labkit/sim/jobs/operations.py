"""``ml_client.jobs``: command jobs that really run, as local processes.

Submitting a job does what the service does before the job starts: it checks the job with
the SDK's own validation, uploads the code snapshot and local inputs, resolves the
environment, the compute and the data assets the job names, gives outputs their default
datastore paths, and returns at once. A detached worker process (``labkit.sim.jobs.job_runner``) then moves the
job through Queued -> Running -> Completed / Failed / Canceled.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from azure.ai.ml._exception_helper import log_and_raise_error
from azure.ai.ml._restclient.arm_ml_service.models import ListViewType
from azure.ai.ml._utils.utils import is_data_binding_expression, is_url
from azure.ai.ml.constants._common import (
    BATCH_JOB_CHILD_RUN_OUTPUT_NAME,
    DEFAULT_ARTIFACT_STORE_OUTPUT_NAME,
    SERVERLESS_COMPUTE,
    SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME,
)
from azure.ai.ml.constants._job.pipeline import PipelineConstants
from azure.ai.ml.entities import Job, ValidationResult
from azure.ai.ml.entities._builders import BaseNode, Command
from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException, ValidationException
from azure.ai.ml.operations import JobOperations as _SdkJobOperations
from azure.ai.ml.operations._job_ops_helper import _incremental_print
from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller

from labkit.sim.core import references
from labkit.sim.jobs import job_state, warm_worker
from labkit.sim.core.base import (
    SimOperations,
    bad_request,
    conflict,
    done,
    not_found,
    pages,
    readable,
    with_service_fields,
)
from labkit.sim.core.groups import load
from labkit.sim.core.storage import DEFAULT_DATASTORE

KIND = job_state.KIND
STREAM_POLL_S = 0.3
# Job types other modules submit: "module:function(job_operations, job) -> Job".
OTHER_JOB_TYPES: dict[str, str] = {
    "SweepJob": "labkit.sim.jobs.sweep.submission:submit",
    "PipelineJob": "labkit.sim.jobs.pipeline:submit",
    "ClassificationJob": "labkit.sim.jobs.automl.submission:submit",
    "RegressionJob": "labkit.sim.jobs.automl.submission:submit",
    "ForecastingJob": "labkit.sim.jobs.automl.submission:submit",
}


class JobOperations(SimOperations, _SdkJobOperations):
    """Submit, follow and read back jobs of the simulated workspace."""

    def _entity(self, row) -> Job:
        job_state.refresh_if_worker_died(self._workspace, row.name)
        row = self._store.get(KIND, row.name)
        return Job._from_rest_object(with_service_fields(row, self._workspace.child_id("jobs", row.name), row.name))

    def _row(self, name: str):
        row = self._store.get(KIND, name)
        if row is None:
            raise not_found(f"Job '{name}' was not found in workspace '{self._workspace.name}'.")
        return row

    # -- reading ------------------------------------------------------------------------------
    def get(self, name: str) -> Job:
        if not isinstance(name, str):
            raise ValidationException(
                message=f"{name} is a invalid input for client.jobs.get().", no_personal_data_message="invalid name",
                target=ErrorTarget.JOB, error_category=ErrorCategory.USER_ERROR)
        return self._entity(self._row(name))

    def list(self, *, parent_job_name: Optional[str] = None,
             list_view_type: ListViewType = ListViewType.ACTIVE_ONLY, **kwargs: Any) -> Iterable[Job]:
        view = ListViewType(list_view_type) if list_view_type else ListViewType.ACTIVE_ONLY
        rows = self._store.list(KIND, include_archived=True)
        if parent_job_name:
            self._row(parent_job_name)
            rows = [r for r in rows if r.payload["properties"].get("properties", {}).get(
                "azureml.parentrunid") == parent_job_name]
        else:
            rows = [r for r in rows if not r.payload["properties"].get("properties", {}).get("azureml.parentrunid")]
        keep = {ListViewType.ACTIVE_ONLY: lambda r: not r.archived, ListViewType.ARCHIVED_ONLY: lambda r: r.archived,
                ListViewType.ALL: lambda r: True}[view]
        # Newest first, as the studio and the service list them.
        rows = sorted((r for r in rows if keep(r)), key=lambda r: r.created_at, reverse=True)
        return pages(readable(rows, self._entity))

    # -- submitting ---------------------------------------------------------------------------
    def validate(self, job: Job, *, raise_on_failure: bool = False, **kwargs: Any) -> ValidationResult:
        """The SDK's own ``JobOperations.validate``, documented for pipeline jobs only: a pipeline
        gets its schema checks and its computes looked up; a command job only its schema checks
        (an undeclared ``${{inputs.x}}`` is caught later, when the job is serialized for
        submission); a sweep job only the git-path check."""
        # The SDK's body without its telemetry decorator (the simulation sends no telemetry).
        return _SdkJobOperations._validate.__wrapped__(self, job, raise_on_failure=raise_on_failure, **kwargs)

    def _try_get_compute_arm_id(self, compute):
        """What ``validate`` looks a pipeline's compute up with: here, in the simulated workspace."""
        name = getattr(compute, "name", compute)
        if not isinstance(name, str) or name in (SERVERLESS_COMPUTE, "local") or is_data_binding_expression(name):
            return compute
        name = name.rsplit("/", 1)[-1].removeprefix("azureml:")
        if self._store.get("compute", name.lower()) is None:
            raise not_found(f"Not found compute with name {name}")
        return self._workspace.child_id("computes", name)

    def create_or_update(self, job: Job, *, description: Optional[str] = None, compute: Optional[str] = None,
                         tags: Optional[dict] = None, experiment_name: Optional[str] = None,
                         skip_validation: bool = False, **kwargs: Any) -> Job:
        if isinstance(job, BaseNode) and not isinstance(job, Command):
            job = job._to_job()
        if description is not None:
            job.description = description
        if compute is not None:
            job.compute = compute
        if tags is not None:
            job.tags = tags
        if experiment_name is not None:
            job.experiment_name = experiment_name
        if job.name and self._store.get(KIND, job.name):
            raise conflict(f"A job named '{job.name}' already exists in workspace '{self._workspace.name}'; "
                           "job names are unique. Leave the name out to get a generated one.")
        if not skip_validation:
            try:
                self.validate(job, raise_on_failure=True)
            except ValidationException as error:
                log_and_raise_error(error)  # as the SDK's create_or_update reports it: a formatted MlException
        job_type = type(job).__name__
        if job_type in ("Command", "CommandJob"):
            return self._submit_command(job)
        if job_type not in OTHER_JOB_TYPES:
            raise NotImplementedError(f"{job_type} jobs are not part of the simulated workspace yet.")
        return load(OTHER_JOB_TYPES[job_type])(self, job)

    def _submit_command(self, job, parent: Optional[str] = None) -> Job:
        """Submit a command job (``parent``: the sweep or pipeline job it is a child of)."""
        base_path = Path(getattr(job, "base_path", None) or os.getcwd())
        rest = to_rest_job_object(job)
        payload = rest.as_dict()
        props = payload["properties"]
        name = payload["name"]
        self._refuse_inputs_without_uri(props.get("inputs") or {})
        props["experimentName"] = props.get("experimentName") or job_state.DEFAULT_EXPERIMENT
        props["computeId"] = self._resolve_compute(props.get("computeId"), job)
        props["environmentId"] = self._resolve_environment(job.environment)
        if props.get("codeId"):
            props["codeId"] = self._resolve_code(props["codeId"], base_path)
        self._resolve_inputs_and_outputs(props, name, base_path)
        props["services"] = self._services(name)
        props.setdefault("properties", {})
        if parent:
            props["properties"]["azureml.parentrunid"] = parent
        return self._store_and_start(type(rest), payload)

    @staticmethod
    def _refuse_inputs_without_uri(inputs: dict) -> None:
        """A data input must name its data. The SDK sends ``Input(type="uri_folder", folder=...)``
        (an unknown keyword it ignores) with no ``uri``, which the REST contract marks required
        ("uri: [Required] Input Asset URI", UriFolderJobInput and the other JobInput types); the
        service refuses the request, so the job is never created."""
        for input_name, value in inputs.items():
            if value and value.get("jobInputType") != "literal" and not value.get("uri"):
                raise bad_request(f"Job input '{input_name}' of type {value.get('jobInputType')} has no path: a "
                                  "data input needs a uri (Input(type=..., path=...)). The job was not created.")

    def _services(self, name: str) -> dict:
        """The job's links: ``studio_url`` (here its local summary page) and MLflow tracking."""
        page = job_state.job_folder(self._workspace, name) / "index.html"
        return {"Studio": {"jobServiceType": "Studio", "endpoint": page.as_uri()},
                "Tracking": {"jobServiceType": "Tracking", "endpoint": self._workspace.mlflow_tracking_uri}}

    def _store_and_start(self, rest_class: type, payload: dict) -> Job:
        """Record a job's payload (status NotStarted) and start its worker."""
        payload["properties"]["status"] = "NotStarted"
        self._refuse_unreadable(rest_class, payload)
        # A stored job always gets its worker: a cancel or an interrupt waits until it has one.
        # If this process is killed in between, a later reader fails the job (job_state).
        with job_state.cancel_deferred(), job_state.interrupt_deferred():
            job_state.write_runtime(self._workspace, payload["name"], submitter=os.getpid())
            with self._store.transaction() as db:
                self._store.put(db, KIND, payload["name"], "", rest_class(payload))
            job_state.write_summary(self._workspace, payload["name"])
            self._start_worker(payload["name"])
        return self.get(payload["name"])

    def _refuse_unreadable(self, rest_class: type, payload: dict) -> None:
        """Never store a job the SDK could not read back: it would break ``get`` and ``list``."""
        from labkit.sim.core.store import Row, rest_class_name, utc_now

        now = utc_now()
        row = Row(KIND, payload["name"], "", rest_class_name(rest_class(payload)), payload, False, now, now)
        try:
            Job._from_rest_object(with_service_fields(row, self._workspace.child_id("jobs", row.name), row.name))
        except Exception as error:  # the SDK's parsers raise many types
            raise bad_request(f"Job '{row.name}' is not valid and was not created: {error}") from error

    def _start_worker(self, name: str) -> None:
        folder = job_state.job_folder(self._workspace, name)
        (folder / "system_logs").mkdir(parents=True, exist_ok=True)
        # A session of its own: the job outlives the notebook cell (and the kernel), as on Azure.
        warm_worker.start_job(self._workspace.folder, name, folder, folder / "system_logs" / "runner.txt")

    # -- what the service resolves at submission -------------------------------------------------
    def _resolve_compute(self, compute_id: Optional[str], job) -> Optional[str]:
        if not compute_id:
            return None  # serverless compute: Azure picks a VM size for the job's resources
        name = compute_id.rsplit("/", 1)[-1].removeprefix("azureml:")
        row = self._store.get("compute", name)
        if row is None:
            raise bad_request(f"Compute '{name}' was not found in workspace '{self._workspace.name}'. Create it "
                              "first, or leave compute out to use serverless compute.")
        props = row.payload.get("properties", {})
        if props.get("computeType") == "ComputeInstance":
            state = (props.get("properties") or {}).get("state")
            if state and state != "Running":
                raise bad_request(f"Compute instance '{name}' is {state}; start it before submitting a job to it.")
        return self._workspace.child_id("computes", name)

    def _resolve_environment(self, environment) -> str:
        environments = self._group("_environments")
        if environment is None:
            raise ValidationException(
                message="A command job needs an environment.", no_personal_data_message="missing environment",
                target=ErrorTarget.JOB, error_category=ErrorCategory.USER_ERROR)
        if not isinstance(environment, str):
            return environments.create_or_update(environment).id
        return environments._resolve_reference(environment).id

    def _resolve_code(self, code: str, base_path: Path) -> str:
        if code.startswith(("azureml:", "/subscriptions/")) or is_url(code):
            return code
        from azure.ai.ml.entities._assets import Code

        local = Path(code) if Path(code).is_absolute() else (base_path / code).resolve()
        return self._group("_components")._register_code(Code(path=str(local)))

    def _resolve_inputs_and_outputs(self, props: dict, name: str, base_path: Path) -> None:
        """A job's inputs resolved (``_resolve_input``), and each output that names no path given
        the default datastore's ``azureml/<job>/<output>/``, as the service does (command and sweep jobs)."""
        for input_name, value in (props.get("inputs") or {}).items():
            self._resolve_input(input_name, value, base_path)
        outputs = props.get("outputs") or {}
        for output_name, value in outputs.items():
            if not value.get("uri"):
                value["uri"] = self._workspace.long_uri(DEFAULT_DATASTORE, f"azureml/{name}/{output_name}/")
        props["outputs"] = outputs

    def _resolve_input(self, input_name: str, value: dict, base_path: Path) -> None:
        """What the SDK and the service do to an input: a local path is uploaded, an asset
        reference (``name:version``, ``name@latest``) becomes the ARM id of that version."""
        uri = value.get("uri")
        if value.get("jobInputType") == "literal" or not uri:
            return
        if uri.startswith("azureml://jobs/"):
            references.job_output_uri(self._workspace, uri)  # raises if that job or output is missing
        elif is_url(uri):
            return
        elif uri.startswith("/subscriptions/") or ":" in uri or "@" in uri:
            value["uri"] = self._asset_arm_id(uri, model=value.get("jobInputType") in ("mlflow_model", "custom_model"))
        else:
            local = Path(uri) if Path(uri).is_absolute() else (base_path / uri).resolve()
            if not local.exists():
                raise ValidationException(
                    message=f"Input '{input_name}': the local path {local} does not exist.",
                    no_personal_data_message="input path missing", target=ErrorTarget.JOB,
                    error_category=ErrorCategory.USER_ERROR)
            info = self._group("_data")._upload(local)
            value["uri"] = self._workspace.long_uri(DEFAULT_DATASTORE, info.relative_path)

    def _asset_arm_id(self, reference: str, model: bool) -> str:
        """``[azureml:]name:version`` or ``name@label`` -> the ARM id of that version (it must exist)."""
        group = self._group("_models" if model else "_data")
        body = reference.removeprefix("azureml:")
        if body.startswith("/subscriptions/"):
            body = "{name}:{version}".format(**references.ARM_VERSION.search(body).groupdict())
        if "@" in body:
            name, label = body.split("@", 1)
            asset = group.get(name, label=label)
        else:
            name, _, version = body.partition(":")
            asset = group.get(name, version=version)
        return asset.id

    # -- following a job ------------------------------------------------------------------------
    def stream(self, name: str) -> None:
        job = self.get(name)
        out = sys.stdout
        out.write(f"RunId: {name}\nWeb View: {job.studio_url}\n")
        log = job_state.job_folder(self._workspace, name) / "user_logs" / "std_log.txt"
        processed: dict[str, int] = {}
        while True:
            status = self.get(name).status
            if log.exists():
                _incremental_print(log.read_text(errors="replace"), processed, "user_logs/std_log.txt", out)
            if status in job_state.TERMINAL_STATUSES:
                if log.exists():
                    _incremental_print(log.read_text(errors="replace"), processed, "user_logs/std_log.txt", out)
                break
            time.sleep(STREAM_POLL_S)
        out.write(f"\nExecution Summary\n=================\nRunId: {name}\nWeb View: {job.studio_url}\n\n")
        out.flush()
        if status == "Failed":
            error = job_state.error_of(self._workspace, name)
            raise JobException(message=f"Exception : \n {error} ", target=ErrorTarget.JOB,
                               no_personal_data_message="Exception raised on failed job.",
                               error_category=ErrorCategory.SYSTEM_ERROR)

    def download(self, name: str, *, download_path: Union[os.PathLike, str] = ".", output_name: Optional[str] = None,
                 all: bool = False) -> None:  # noqa: A002  (the SDK's parameter name)
        """The SDK's ``JobOperations.download`` case by case (azure/ai/ml/operations/_job_operations.py):
        a reused step downloads from the job it reused; a sweep from its best trial; a batch
        scoring job (tag ``azureml.batchrun``, not a pipeline component's job) writes its child's
        ``score`` output straight into ``download_path``, whatever ``output_name`` and ``all`` say;
        any other job puts ``default`` under ``artifacts/`` and each named output under
        ``named-outputs/<name>/``. An output the job does not have is skipped, as the SDK does."""
        job = self.get(name)
        props = job.properties or {}
        if (props.get(PipelineConstants.REUSED_FLAG_FIELD) == PipelineConstants.REUSED_FLAG_TRUE
                and PipelineConstants.REUSED_JOB_ID in props):
            name = props[PipelineConstants.REUSED_JOB_ID]
            job = self.get(name)
        if job.status not in job_state.TERMINAL_STATUSES:
            raise JobException(
                message=(f"This job is in state {job.status}. Download is allowed only in states "
                         f"{job_state.TERMINAL_STATUSES}"),
                no_personal_data_message="job not finished", target=ErrorTarget.JOB,
                error_category=ErrorCategory.USER_ERROR)
        artifacts_folder = "artifacts"
        if job.type == "sweep":  # the best trial's outputs, then the sweep's own logs (labkit.sim.jobs.sweep)
            if download_best_trial(self, job, download_path=download_path, output_name=output_name, all=all):
                return
            output_name, all, artifacts_folder = None, False, "hd-artifacts"
        download_path = Path(download_path)
        tags = job.tags or {}
        if tags.get("azureml.batchrun") == "true" and tags.get("azureml.jobtype") != PipelineConstants.PIPELINE_JOB_TYPE:
            # the "score" output of the child that has one (the service's batchscoring step)
            for child in self.list(parent_job_name=name):
                if BATCH_JOB_CHILD_RUN_OUTPUT_NAME in (child.outputs or {}):
                    self._copy_output(child.name, BATCH_JOB_CHILD_RUN_OUTPUT_NAME, download_path)
                    break
            return
        outputs = set(job.outputs or {})
        if output_name:
            wanted = [output_name] if output_name in outputs else []
        else:
            wanted = sorted(outputs) if all else [DEFAULT_ARTIFACT_STORE_OUTPUT_NAME]
        for item in wanted:
            folder = artifacts_folder if item == DEFAULT_ARTIFACT_STORE_OUTPUT_NAME else f"named-outputs/{item}"
            self._copy_output(name, item, download_path / folder)

    def _copy_output(self, job: str, output: str, destination: Path) -> None:
        """A job output's files into ``destination``, laid out as the SDK's blob download does
        (a folder's contents in it, a file by its own name)."""
        try:
            source = Path(references.local_output_path(self._workspace, job, output))
        except ResourceNotFoundError:
            return
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        elif source.is_file():
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / source.name)

    # -- changing a job -------------------------------------------------------------------------
    def begin_cancel(self, name: str, **kwargs: Any) -> LROPoller[None]:
        row = self._row(name)
        if row.payload["properties"].get("status") in job_state.TERMINAL_STATUSES:
            raise bad_request(f"Job '{name}' has already ended ({row.payload['properties']['status']}); "
                              "only a job in progress can be canceled.")
        job_state.request_cancel(self._workspace, name)
        return done(None)

    def archive(self, name: str) -> None:
        self._row(name)
        self._store.set_archived(KIND, name, "", True)

    def restore(self, name: str) -> None:
        self._row(name)
        self._store.set_archived(KIND, name, "", False)


# -- jobs.download of a sweep ----------------------------------------------------------------------
def download_best_trial(job_operations, job, *, download_path, output_name, all) -> bool:  # noqa: A002
    """``jobs.download`` of a sweep, as the SDK does it: the best trial's outputs first; with
    ``output_name`` that is all (True), otherwise the caller adds the sweep's own logs."""
    best = (job.properties or {}).get(SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME)
    if best:
        job_operations.download(best, download_path=download_path, output_name=output_name, all=all)
    return bool(output_name)
