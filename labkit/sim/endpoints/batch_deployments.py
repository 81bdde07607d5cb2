"""``ml_client.batch_deployments``: model and pipeline component deployments of batch endpoints.

A deployment is stored as the ``BatchDeployment`` payload the SDK's ``_to_rest_object``
produces, with its code, environment, model (or pipeline component) resolved to asset ids
(local folders and files uploaded and registered, as the SDK does before it calls the service),
the settings the service fills in when they are left out, and its provisioning state. Nothing
runs when a deployment is created: batch deployments use their cluster only while a job
started by ``batch_endpoints.invoke`` runs (``labkit.sim.endpoints.batch_scoring``).

The service's rules (batch deployment YAML reference, "Deploy models for scoring in batch
endpoints", "Deploy MLflow models in batch deployments"):
- a model deployment needs ``compute``: an existing compute cluster (AmlCompute) or attached
  Kubernetes compute of the workspace; there is no serverless compute for model deployments;
- a model that is not an MLflow model needs a scoring script, and a scoring script needs an
  environment; an MLflow model may come with neither (the service supplies both);
- that environment is the learner's own: curated environments are not supported in batch
  deployments ("Deploy models for scoring in batch endpoints": use the base image of a curated
  environment in an environment of your own);
- left out, the settings are: ``mini_batch_size`` 10, ``max_concurrency_per_instance`` 1,
  ``instance_count`` 1, ``error_threshold`` -1, ``retry_settings`` 3 tries of 30 seconds,
  ``output_action`` append_row, ``output_file_name`` predictions.csv, ``logging_level`` info;
- the first deployment of an endpoint without a default deployment becomes its default (the
  documents invoke a one-deployment endpoint without naming the deployment).

``get`` and ``list`` return ``BatchDeployment`` entities, as the SDK's own ``get`` does (its
``_from_rest_object`` is the base class's); creating a pipeline component deployment returns a
``PipelineComponentBatchDeployment``, as the SDK's ``begin_create_or_update`` does.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Optional

from azure.ai.ml._restclient.arm_ml_service.models import BatchDeployment as RestBatchDeployment
from azure.ai.ml.constants._common import ANONYMOUS_COMPONENT_NAME
from azure.ai.ml.entities import BatchDeployment, Environment, PipelineComponent
from azure.ai.ml.entities._deployment.pipeline_component_batch_deployment import PipelineComponentBatchDeployment
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import BatchDeploymentOperations as _SdkBatchDeploymentOperations
from azure.core.exceptions import ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller

from labkit.sim.endpoints.deployments import DeploymentDependencies, EndpointLookup
from labkit.sim.core.base import SimOperations, bad_request, done, not_found, with_service_fields
from labkit.sim.assets.curated import find_curated
from labkit.sim.core.store import load_rest_class

ENDPOINT_KIND = "batchEndpoint"
DEPLOYMENT_KIND = "batchDeployment"
COMPONENT_KIND = "component"
ARM_COMPONENT = re.compile(r"/components/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")
# What the service sets when a model deployment leaves a setting out (batch deployment YAML reference).
DEFAULT_SETTINGS = {
    "miniBatchSize": 10,
    "maxConcurrencyPerInstance": 1,
    "errorThreshold": -1,
    "loggingLevel": "Info",
    "outputAction": "AppendRow",
    "outputFileName": "predictions.csv",
}
DEFAULT_RETRY = {"maxRetries": 3, "timeout": "PT30S"}
CLUSTER_TYPES = ("AmlCompute", "Kubernetes")


class BatchDeploymentOperations(EndpointLookup, DeploymentDependencies, SimOperations, _SdkBatchDeploymentOperations):
    """Create, read, list and delete the deployments of the simulated batch endpoints."""

    _ENDPOINT_KIND, _DEPLOYMENT_KIND, _ENDPOINT_LABEL = ENDPOINT_KIND, DEPLOYMENT_KIND, "Batch endpoint"

    # -- helpers ------------------------------------------------------------------------------------
    def _rest(self, row):
        arm_id = f"{self._workspace.child_id('batchEndpoints', row.name)}/deployments/{row.version}"
        return with_service_fields(row, arm_id, row.version)

    def _entity(self, row) -> BatchDeployment:
        deployment = BatchDeployment._from_rest_object(self._rest(row))
        deployment.endpoint_name = row.name
        return deployment

    # -- reading --------------------------------------------------------------------------------------
    def get(self, name: str, endpoint_name: str) -> BatchDeployment:
        return self._entity(self._deployment_row(name, endpoint_name))

    def list(self, endpoint_name: str) -> ItemPaged[BatchDeployment]:
        return self._deployments_page(endpoint_name, self._entity)

    def list_jobs(self, endpoint_name: str, *, name: Optional[str] = None):
        if name:
            self._deployment_row(name, endpoint_name)
        return self._group("_batch_endpoints")._jobs_of(endpoint_name, name)

    # -- writing --------------------------------------------------------------------------------------
    def begin_create_or_update(self, deployment, *, skip_script_validation: bool = False,
                               **kwargs: Any) -> LROPoller:
        if kwargs.pop("package_model", False):
            raise NotImplementedError("Model packaging (package_model=True) is not part of the simulated workspace.")
        pipeline = isinstance(deployment, PipelineComponentBatchDeployment)
        code_configuration = None if pipeline else deployment.code_configuration
        endpoint = self._target_endpoint(deployment, code_configuration, skip_script_validation)
        if pipeline:
            self._resolve_component(deployment)
        else:
            self._resolve_dependencies(deployment)
        location = str(self._group("_workspaces").get(self._workspace.name).location)
        rest = deployment._to_rest_object(location=location)
        payload = rest.as_dict()
        props = payload["properties"]
        if pipeline:
            self._check_pipeline(deployment.name, props)
        else:
            self._check_model_deployment(deployment.name, props)
        props["provisioningState"] = "Succeeded"
        with self._store.transaction() as db:
            self._store.put(db, DEPLOYMENT_KIND, deployment.endpoint_name, deployment.name, RestBatchDeployment(payload))
        self._default_if_first(endpoint.name, deployment.name)
        row = self._deployment_row(deployment.name, deployment.endpoint_name)
        if pipeline:
            created = PipelineComponentBatchDeployment._from_rest_object(self._rest(row))
            created.endpoint_name = row.name
            return done(created)
        return done(self._entity(row))

    def begin_delete(self, name: str, endpoint_name: str) -> LROPoller[None]:
        self._deployment_row(name, endpoint_name)
        self._store.delete(DEPLOYMENT_KIND, endpoint_name, name)
        # Jobs the deployment ran stay (as on Azure); an endpoint whose default it was has none now.
        self._set_default(endpoint_name, name, None)
        return done(None)

    # -- the endpoint's default deployment ---------------------------------------------------------
    def _default_if_first(self, endpoint_name: str, deployment_name: str) -> None:
        def change(props: dict) -> bool:
            defaults = props.get("defaults") or {}
            if defaults.get("deploymentName"):
                return False
            props["defaults"] = {"deploymentName": deployment_name}
            return True

        self._change_endpoint(endpoint_name, change)

    def _set_default(self, endpoint_name: str, old: str, new: Optional[str]) -> None:
        def change(props: dict) -> bool:
            if (props.get("defaults") or {}).get("deploymentName") != old:
                return False
            props["defaults"] = {"deploymentName": new} if new else {}
            return True

        self._change_endpoint(endpoint_name, change)

    def _change_endpoint(self, endpoint_name: str, change) -> None:
        import json

        with self._store.transaction() as db:
            found = db.execute("SELECT payload, rest_class FROM resources WHERE kind=? AND name=? AND version=''",
                               (ENDPOINT_KIND, endpoint_name)).fetchone()
            if found is None:
                return
            payload = json.loads(found["payload"])
            if change(payload["properties"]):
                self._store.put(db, ENDPOINT_KIND, endpoint_name, "", load_rest_class(found["rest_class"])(payload))

    # -- what the SDK and the service resolve -------------------------------------------------------
    def _resolve_dependencies(self, deployment) -> None:
        self._refuse_curated_environment(deployment)
        super()._resolve_dependencies(deployment)
        if deployment.compute is not None:
            deployment.compute = str(getattr(deployment.compute, "name", deployment.compute))

    def _refuse_curated_environment(self, deployment) -> None:
        if deployment.environment is None or isinstance(deployment.environment, Environment):
            return
        environment = self._group("_environments")._resolve_reference(str(deployment.environment))
        # Curated environments are the azureml registry's; the simulation knows no other registry.
        if find_curated(environment.name) or str(environment.id).startswith("azureml://registries/"):
            raise bad_request(f"Deployment '{deployment.name}': environment {deployment.environment} is a curated "
                              "environment, and curated environments are not supported in batch deployments. "
                              "Create an environment of your own (its image may be the curated environment's "
                              f"base image, {environment.image}) with the packages your scoring script needs.")

    def _check_model_deployment(self, name: str, props: dict) -> None:
        compute = props.get("compute")
        if not compute:
            raise bad_request(f"Deployment '{name}': compute is required. Batch deployments run on a compute "
                              "cluster of the workspace (create an AmlCompute cluster and name it in compute).")
        props["compute"] = self._cluster_id(name, compute)
        for key, value in DEFAULT_SETTINGS.items():
            if props.get(key) is None:
                props[key] = value
        if props["outputAction"] == "SummaryOnly":
            props.pop("outputFileName", None)
        props["retrySettings"] = {**DEFAULT_RETRY, **{k: v for k, v in (props.get("retrySettings") or {}).items()
                                                      if v is not None}}
        resources = props.get("resources") or {}
        resources.setdefault("instanceCount", 1)
        props["resources"] = resources
        for key, least in (("miniBatchSize", 1), ("maxConcurrencyPerInstance", 1), ("errorThreshold", -1)):
            if int(props[key]) < least:
                raise bad_request(f"Deployment '{name}': {key} must be at least {least}; it is {props[key]}.")
        if int(resources["instanceCount"]) < 1:
            raise bad_request(f"Deployment '{name}': instance_count must be at least 1; it is "
                              f"{resources['instanceCount']}.")
        model = (props.get("model") or {}).get("assetId")
        if not model:
            raise bad_request(f"Deployment '{name}' has no model: a model deployment needs a registered model.")
        self._check_scoring(name, props, model)

    def _cluster_id(self, name: str, compute: str) -> str:
        compute_name = compute.rsplit("/", 1)[-1].removeprefix("azureml:")
        row = self._store.get("compute", compute_name)
        if row is None:
            raise bad_request(f"Deployment '{name}': compute '{compute_name}' was not found in workspace "
                              f"'{self._workspace.name}'. Create the compute cluster first.")
        kind = (row.payload.get("properties") or {}).get("computeType")
        if kind not in CLUSTER_TYPES:
            raise bad_request(f"Deployment '{name}': compute '{compute_name}' is a {kind}; batch deployments run "
                              "on compute clusters (AmlCompute) or attached Kubernetes compute.")
        return self._workspace.child_id("computes", compute_name)

    # -- pipeline component deployments -----------------------------------------------------------
    def _resolve_component(self, deployment: PipelineComponentBatchDeployment) -> None:
        """The component becomes a registered pipeline component version, referred to by id."""
        component = deployment.component
        if component is None and deployment.job_definition is not None:
            raise NotImplementedError("Deployments from a pipeline job (job_definition) are not simulated; build the "
                                      "pipeline component with dsl.pipeline or load_component and deploy that.")
        if hasattr(component, "_pipeline_builder"):  # a @dsl.pipeline function
            component = component._pipeline_builder.build()
        if isinstance(component, PipelineComponent):
            deployment.component = self._register_pipeline_component(component)
        elif isinstance(component, str):
            deployment.component = self._pipeline_component_row(component)[1]
        else:
            raise ValidationException(
                message="A pipeline component deployment needs a pipeline component (component=...).",
                no_personal_data_message="missing component", target=ErrorTarget.BATCH_DEPLOYMENT,
                error_category=ErrorCategory.USER_ERROR, error_type=ValidationErrorType.INVALID_VALUE)

    def _register_pipeline_component(self, component: PipelineComponent) -> str:
        """As the SDK's batch deployment operations do: the component's registered version if there
        is one (``components.get(name, version)``), else the component registered now (its steps'
        components first, by ``components.create_or_update``)."""
        components = self._group("_components")
        name = component.name
        if not name or name == ANONYMOUS_COMPONENT_NAME:  # an unnamed pipeline: named after its display name
            component.name = re.sub(r"[^a-z0-9_]", "_", (component.display_name or "batch_pipeline").lower())
        try:
            return components.get(component.name, version=component.version).id
        except ResourceNotFoundError:
            component._is_anonymous = False
            return components.create_or_update(component).id

    def _pipeline_component_row(self, reference: str):
        body = reference.removeprefix("azureml:")
        arm = ARM_COMPONENT.search(body)
        if arm:
            name, version = arm["name"], arm["version"]
        elif "@" in body:
            name, version = body.split("@", 1)[0], None
        else:
            name, _, version = body.partition(":")
        row = (self._store.get(COMPONENT_KIND, name, version) if version
               else self._store.latest(COMPONENT_KIND, name))
        if row is None or row.payload["properties"]["componentSpec"].get("type") != "pipeline":
            raise not_found(f"Pipeline component {reference} was not found in workspace '{self._workspace.name}'.")
        return row, self._workspace.child_id("components", row.name, row.version)

    def _check_pipeline(self, name: str, props: dict) -> None:
        settings = (props.get("deploymentConfiguration") or {}).get("settings") or {}
        compute = settings.get("default_compute")
        if compute:
            settings["default_compute"] = self._cluster_id(name, str(compute)).rsplit("/", 1)[-1]


def copy_placed(source: Path, destination: Path) -> None:
    """Copy a registered file or folder under ``destination`` as the storage initializer does."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination / source.name, dirs_exist_ok=True)
    else:
        shutil.copy2(source, destination / source.name)
