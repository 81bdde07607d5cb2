"""``ml_client.batch_endpoints``: batch endpoints, and the batch scoring jobs they start.

An endpoint is stored as the ``BatchEndpoint`` payload the SDK's ``_to_rest_batch_endpoint``
produces, plus what the service fills in (provisioning state, ``scoringUri``, ``swaggerUri``).
Its ``defaults.deployment_name`` is the deployment that ``invoke`` runs when no deployment is
named; setting it to a deployment the endpoint does not have is refused.

``invoke`` starts a batch job, as the service does, and returns the SDK's ``BatchJob``:
- for a model deployment, a pipeline job (experiment: the endpoint's name) whose child job
  ``batchscoring`` scores the input (``labkit.sim.endpoints.batch_scoring``) and writes the predictions
  file to its output ``score``; the pipeline job's output ``score`` is the same folder, so
  ``jobs.download(name, output_name="score", download_path=...)`` puts the file under
  ``named-outputs/score/`` (the job is tagged as the service tags a batch job, ``BATCH_RUN_TAG`` below);
- for a pipeline component deployment, a pipeline job of the component's steps, run by
  ``labkit.sim.jobs.pipeline``, with the deployment's settings (``default_compute`` ...).
The job is listed by ``jobs.list()``, ``batch_endpoints.list_jobs`` and
``batch_deployments.list_jobs``. Settings given in ``params_override`` (``mini_batch_size``,
``output_file_name``, ``error_threshold``, ``retry_settings``, ``compute.instance_count``) apply
to that job only.

What differs on Azure: the endpoint's ``scoring_uri`` is an HTTPS URL that accepts REST calls
with a Microsoft Entra token; here it is the endpoint's local folder, and jobs start only
through ``invoke`` (or the CLI's ``az ml batch-endpoint invoke``, which is not simulated).
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

from azure.ai.ml import Input, Output
from azure.ai.ml._restclient.arm_ml_service.models import BatchEndpoint as RestBatchEndpoint
from azure.ai.ml._schema._deployment.batch.batch_job import BatchJobSchema
from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY, PARAMS_OVERRIDE_KEY
from azure.ai.ml.constants._job.pipeline import PipelineConstants
from azure.ai.ml.entities import BatchEndpoint, BatchJob, PipelineJob
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import BatchEndpointOperations as _SdkBatchEndpointOperations
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller

from labkit.sim.jobs import job_state
from labkit.sim.core.base import SimOperations, bad_request, done, pages, readable, with_service_fields
from labkit.sim.endpoints.batch_deployments import DEPLOYMENT_KIND, ENDPOINT_KIND
from labkit.sim.endpoints.deployments import EndpointLookup
from labkit.sim.core.fs import LONG_URI, SHORT_URI
from labkit.sim.core.storage import DEFAULT_DATASTORE

# The simulation's bookkeeping on a batch job: which endpoint and deployment started it, and
# the settings the scoring runs with (the deployment's, with the invocation's overrides).
ENDPOINT_PROPERTY = "labkit.sim.batchEndpoint"
DEPLOYMENT_PROPERTY = "labkit.sim.batchDeployment"
SETTINGS_PROPERTY = "labkit.sim.batchSettings"
INPUT_NAME = "input_data"  # the name the service gives the single input of a model deployment's job
OUTPUT_NAME = "score"  # the output the service writes the predictions file to
SCORING_STEP = "batchscoring"  # the child job that scores (the studio's graph shows this step)
# The tags the service puts on a batch job. The SDK's jobs.download reads them: a job tagged
# azureml.batchrun whose azureml.jobtype is not azureml.pipelinejob gets its predictions file
# written straight into download_path (``is_batch_job`` in _job_operations.py). Today's batch
# jobs are pipeline jobs, model deployments' included: Microsoft's current pages download a
# model deployment's job with ``jobs.download(name=job.name, output_name="score")`` and read
# ``named-outputs/score/...`` (how-to-use-batch-model-deployments, how-to-mlflow-batch), which is
# what the SDK does for a job tagged azureml.pipelinejob. The service wins over the SDK's
# older branch (and over the 2022 DP-100 lab that read predictions.csv from download_path).
BATCH_RUN_TAG = "azureml.batchrun"
DEPLOYMENT_TAG = "azureml.deploymentname"
JOB_TYPE_TAG = "azureml.jobtype"


class BatchEndpointOperations(EndpointLookup, SimOperations, _SdkBatchEndpointOperations):
    """Create, read, invoke and delete the simulated workspace's batch endpoints."""

    _ENDPOINT_KIND, _DEPLOYMENT_KIND, _ENDPOINT_LABEL = ENDPOINT_KIND, DEPLOYMENT_KIND, "Batch endpoint"

    # -- helpers ------------------------------------------------------------------------------------
    def _row(self, name: str):
        return self._endpoint_row(name)

    def _entity(self, row) -> BatchEndpoint:
        return BatchEndpoint._from_rest_object(
            with_service_fields(row, self._workspace.child_id("batchEndpoints", row.name), row.name))

    def _folder(self, name: str) -> Path:
        return self._workspace.folder / "batch_endpoints" / name

    # -- reading --------------------------------------------------------------------------------------
    def list(self) -> ItemPaged[BatchEndpoint]:
        return pages(readable(self._store.list(ENDPOINT_KIND), self._entity))

    def get(self, name: str) -> BatchEndpoint:
        return self._entity(self._row(name))

    def list_jobs(self, endpoint_name: str):
        self._row(endpoint_name)
        return self._jobs_of(endpoint_name, None)

    def _jobs_of(self, endpoint_name: str, deployment_name: Optional[str]):
        """The batch jobs an endpoint (or one of its deployments) started, newest first, as ``BatchJob``."""
        jobs = []
        for row in self._store.list(job_state.KIND, include_archived=True):
            marks = row.payload["properties"].get("properties") or {}
            if marks.get(ENDPOINT_PROPERTY) != endpoint_name:
                continue
            if deployment_name and marks.get(DEPLOYMENT_PROPERTY) != deployment_name:
                continue
            job_state.refresh_if_worker_died(self._workspace, row.name)
            jobs.append(row)
        jobs.sort(key=lambda r: r.created_at, reverse=True)
        # The SDK returns a list here (it pages over the service's answer itself).
        return [self._batch_job(self._store.get(job_state.KIND, r.name)) for r in jobs]

    def _batch_job(self, row) -> BatchJob:
        return BatchJob._from_rest_object({"id": self._workspace.child_id("jobs", row.name), "name": row.name,
                                           "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                                           "properties": row.payload["properties"]})

    # -- writing --------------------------------------------------------------------------------------
    def begin_create_or_update(self, endpoint: BatchEndpoint) -> LROPoller[BatchEndpoint]:
        location = str(self._group("_workspaces").get(self._workspace.name).location)
        rest = endpoint._to_rest_batch_endpoint(location=location)
        payload = rest.as_dict()
        props = payload["properties"]
        name = endpoint.name
        default = (props.get("defaults") or {}).get("deploymentName")
        if default and self._store.get(DEPLOYMENT_KIND, name, default) is None:
            raise bad_request(f"Deployment '{default}' cannot be the default deployment of batch endpoint '{name}': "
                              "the endpoint has no such deployment.")
        old = self._store.get(ENDPOINT_KIND, name)
        if old is not None and not default:
            # A deployment made default by the service stays so unless the update names another.
            props["defaults"] = (old.payload["properties"].get("defaults") or {})
        folder = self._folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        props["provisioningState"] = "Succeeded"
        props["scoringUri"] = (folder / "jobs").as_uri()
        props["swaggerUri"] = (folder / "swagger.json").as_uri()
        props["authMode"] = props.get("authMode") or "AADToken"
        with self._store.transaction() as db:
            self._store.put(db, ENDPOINT_KIND, name, "", RestBatchEndpoint(payload))
        return done(self.get(name))

    def begin_delete(self, name: str) -> LROPoller[None]:
        self._row(name)
        # The endpoint and its deployments go; the batch jobs they ran stay, as on Azure.
        self._store.delete(DEPLOYMENT_KIND, name)
        self._store.delete(ENDPOINT_KIND, name)
        return done(None)

    # -- invoking -------------------------------------------------------------------------------------
    def invoke(self, endpoint_name: str, *, deployment_name: Optional[str] = None,
               inputs: Optional[Dict[str, Input]] = None, **kwargs: Any) -> BatchJob:
        endpoint = self._row(endpoint_name)
        if deployment_name:
            self._check_deployment_named(endpoint_name, deployment_name, ErrorTarget.DEPLOYMENT)
        else:
            deployment_name = (endpoint.payload["properties"].get("defaults") or {}).get("deploymentName")
            if not deployment_name:
                raise bad_request(f"Batch endpoint '{endpoint_name}' has no default deployment: name one with "
                                  "deployment_name, or set the endpoint's defaults.deployment_name.")
        deployment = self._store.get(DEPLOYMENT_KIND, endpoint_name, deployment_name)
        data_inputs = self._inputs(kwargs.get("input"), inputs)
        data_outputs = self._outputs(kwargs.get("outputs"))
        overrides = self._overrides(kwargs.get("params_override"), kwargs.get("output_file_name"))
        experiment = kwargs.get("experiment_name") or endpoint_name
        job_name = kwargs.get("job_name") or str(uuid.uuid4())
        marks = {ENDPOINT_PROPERTY: endpoint_name, DEPLOYMENT_PROPERTY: deployment_name}
        config = deployment.payload["properties"].get("deploymentConfiguration")
        if config:
            name = self._invoke_pipeline(config, data_inputs, data_outputs, experiment, job_name, marks)
        else:
            name = self._invoke_model(deployment, data_inputs, data_outputs, overrides, experiment, job_name, marks)
        return self._batch_job(self._store.get(job_state.KIND, name))

    def _inputs(self, single: Optional[Input], many: Optional[Dict[str, Input]]) -> dict[str, dict]:
        """Inputs as the service takes them: local paths uploaded, data assets and URIs resolved."""
        jobs = self._group("_jobs")
        given = {INPUT_NAME: single} if single is not None else dict(many or {})
        resolved = {}
        for key, value in given.items():
            if not isinstance(value, Input):
                resolved[key] = {"jobInputType": "literal", "value": str(value)}
                continue
            if value.type in ("integer", "number", "string", "boolean"):
                resolved[key] = {"jobInputType": "literal", "value": str(value.default if value.path is None
                                                                        else value.path)}
                continue
            if value.type not in ("uri_folder", "uri_file"):
                message = ("Unsupported input type please use a dictionary of either a path on the datastore, "
                           "public URI, a registered data asset, or a local folder path.")
                raise ValidationException(message=message, no_personal_data_message=message,
                                          target=ErrorTarget.BATCH_ENDPOINT, error_category=ErrorCategory.USER_ERROR,
                                          error_type=ValidationErrorType.INVALID_VALUE)
            if not value.path:
                raise bad_request("Input path can't be empty for batch endpoint invoke")
            entry = {"jobInputType": value.type, "uri": str(value.path)}
            jobs._resolve_input(key, entry, Path(os.getcwd()))
            resolved[key] = entry
        return resolved

    def _outputs(self, given: Optional[dict]) -> dict[str, dict]:
        """``outputs={name: Output(path=...)}``: where the job writes, a datastore path
        (how-to-access-data-batch-endpoints-jobs: "Configure the output location")."""
        resolved = {}
        for key, value in (given or {}).items():
            path = str(getattr(value, "path", None) or "")
            match = SHORT_URI.match(path) or LONG_URI.match(path)
            if not match:
                raise bad_request(f"Output '{key}' must name a datastore path, azureml://datastores/<datastore>/paths/"
                                  f"<path>; got '{path}'.")
            resolved[key] = {"jobOutputType": getattr(value, "type", None) or "uri_folder", "mode": "ReadWriteMount",
                             "uri": self._workspace.long_uri(match["datastore"], match["path"] or "")}
        return resolved

    @staticmethod
    def _overrides(params_override: Optional[list], output_file_name: Optional[str]) -> dict:
        """``params_override`` read by the SDK's own batch job schema, as ``invoke`` sends it."""
        params = list(params_override or [])
        if output_file_name:
            params.append({"output_file_name": output_file_name})
        if not params:
            return {}
        wire = BatchJobSchema(context={BASE_PATH_CONTEXT_KEY: Path("."), PARAMS_OVERRIDE_KEY: params}).load(data={})
        wire.pop("_output_dataset", None)
        return wire

    def _invoke_model(self, deployment, data_inputs: dict, data_outputs: dict, overrides: dict, experiment: str,
                      job_name: str, marks: dict) -> str:
        if set(data_inputs) != {INPUT_NAME}:
            raise bad_request("A model deployment takes one input: invoke it with input=Input(type='uri_folder' or "
                              "'uri_file', path=...).")
        if set(data_outputs) - {OUTPUT_NAME}:
            raise bad_request(f"A model deployment has one output, '{OUTPUT_NAME}'; outputs named "
                              f"{sorted(set(data_outputs) - {OUTPUT_NAME})} are not among its outputs.")
        jobs = self._group("_jobs")
        props = deployment.payload["properties"]
        settings = {
            "mini_batch_size": int(overrides.get("miniBatchSize") or props["miniBatchSize"]),
            "max_concurrency_per_instance": int(props["maxConcurrencyPerInstance"]),
            "instance_count": int((overrides.get("compute") or {}).get("instanceCount")
                                  or props["resources"]["instanceCount"]),
            "error_threshold": int(overrides["errorThreshold"] if overrides.get("errorThreshold") is not None
                                   else props["errorThreshold"]),
            "max_retries": int((overrides.get("retrySettings") or {}).get("maxRetries")
                               or props["retrySettings"]["maxRetries"]),
            "timeout": (overrides.get("retrySettings") or {}).get("timeout") or props["retrySettings"]["timeout"],
            "output_action": props["outputAction"],
            "output_file_name": overrides.get("outputFileName") or props.get("outputFileName") or "predictions.csv",
            "logging_level": props.get("loggingLevel") or "Info",
            "environment_variables": props.get("environmentVariables") or {},
            "model": props["model"]["assetId"],
            "code": (props.get("codeConfiguration") or {}).get("codeId"),
            "scoring_script": (props.get("codeConfiguration") or {}).get("scoringScript"),
            "environment": props.get("environmentId"),
            "endpoint": marks[ENDPOINT_PROPERTY],
            "deployment": marks[DEPLOYMENT_PROPERTY],
        }
        from azure.ai.ml.entities import PipelineJob
        from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

        rest = to_rest_job_object(PipelineJob(name=job_name, experiment_name=experiment, jobs={},
                                              display_name=job_name))
        payload = rest.as_dict()
        job_props = payload["properties"]
        job_props["experimentName"] = experiment
        job_props["computeId"] = props["compute"]
        job_props["inputs"] = data_inputs
        job_props["outputs"] = {OUTPUT_NAME: data_outputs.get(OUTPUT_NAME) or {
            "jobOutputType": "uri_folder", "mode": "ReadWriteMount",
            "uri": self._workspace.long_uri(DEFAULT_DATASTORE, f"azureml/{job_name}/{OUTPUT_NAME}/")}}
        from labkit.sim.jobs.job_runner import RUNNER_PROPERTY

        job_props["properties"] = {**marks, SETTINGS_PROPERTY: json.dumps(settings), RUNNER_PROPERTY: "BatchScoring"}
        job_props["tags"] = {BATCH_RUN_TAG: "true", DEPLOYMENT_TAG: marks[DEPLOYMENT_PROPERTY],
                             JOB_TYPE_TAG: PipelineConstants.PIPELINE_JOB_TYPE}
        job_props["services"] = jobs._services(job_name)
        if self._store.get(job_state.KIND, job_name):
            raise bad_request(f"A job named '{job_name}' already exists in workspace '{self._workspace.name}'.")
        jobs._store_and_start(type(rest), payload)
        return job_name

    def _invoke_pipeline(self, config: dict, data_inputs: dict, data_outputs: dict, experiment: str, job_name: str,
                         marks: dict) -> str:
        from azure.ai.ml.entities import Component

        from labkit.sim.endpoints.batch_deployments import BatchDeploymentOperations

        deployments = BatchDeploymentOperations(self._workspace, root=self._root, scope=self._scope)
        row, _ = deployments._pipeline_component_row(config["componentId"]["assetId"])
        component = Component._from_rest_object(
            with_service_fields(row, self._workspace.child_id("components", row.name, row.version), row.version))
        arguments = {}
        for key, value in data_inputs.items():
            if key not in (component.inputs or {}):
                raise bad_request(f"The pipeline component has no input named '{key}'; its inputs are "
                                  f"{sorted(component.inputs or {})}.")
            arguments[key] = (value["value"] if value["jobInputType"] == "literal"
                              else Input(type=value["jobInputType"], path=value["uri"]))
        unknown = set(data_outputs) - set(component.outputs or {})
        if unknown:
            raise bad_request(f"The pipeline component has no output named {sorted(unknown)}; its outputs are "
                              f"{sorted(component.outputs or {})}.")
        node = component(**arguments)
        # As the node's own _to_job(), with the outputs the caller placed (the node keeps none of
        # a component read back from the service).
        job = PipelineJob(inputs={k: v for k, v in node._job_inputs.items() if v}, component=component,
                          settings=node.settings, outputs={**node._job_outputs, **{
                              key: Output(type=value["jobOutputType"], path=value["uri"])
                              for key, value in data_outputs.items()}})
        job.name = job_name
        job.experiment_name = experiment
        job.display_name = job_name
        job.properties = {**(job.properties or {}), **marks}
        job.tags = {**(job.tags or {}), BATCH_RUN_TAG: "true", DEPLOYMENT_TAG: marks[DEPLOYMENT_PROPERTY],
                    JOB_TYPE_TAG: PipelineConstants.PIPELINE_JOB_TYPE}
        settings = config.get("settings") or {}
        for key, value in settings.items():
            if key == "continue_on_step_failure":
                value = str(value).lower() == "true"
            setattr(job.settings, key, value)
        self._group("_jobs").create_or_update(job)
        return job_name
