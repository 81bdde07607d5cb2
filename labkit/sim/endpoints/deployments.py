"""What online and batch endpoints and deployments share.

``EndpointLookup``: how an endpoint's row and its deployments' rows are found, with the
service's not-found errors (and the SDK's check of a deployment named in an ``invoke``).
``DeploymentDependencies``: what a deployment resolves before it is stored (local code, an
inline environment and a local model become registered assets, referred to by id), and the
model a stored deployment names.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from azure.ai.ml._utils._endpoint_utils import validate_scoring_script
from azure.ai.ml.entities import Environment, Model
from azure.ai.ml.entities._assets import Code
from azure.ai.ml.exceptions import ErrorCategory, ValidationErrorType, ValidationException

from labkit.sim.core.base import bad_request, not_found, pages, readable

ARM_MODEL = re.compile(r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


class EndpointLookup:
    """Mixed into the endpoint and deployment operation groups of one kind of endpoint, which
    name the store's kinds and how messages call the endpoint."""

    _ENDPOINT_KIND: str  # the store's kind of the endpoint rows
    _DEPLOYMENT_KIND: str  # and of the deployment rows (named by endpoint, versioned by deployment)
    _ENDPOINT_LABEL: str  # "Online endpoint", "Batch endpoint"

    def _endpoint_row(self, endpoint_name: str):
        row = self._store.get(self._ENDPOINT_KIND, endpoint_name or "")
        if row is None:
            raise not_found(f"{self._ENDPOINT_LABEL} '{endpoint_name}' was not found in workspace "
                            f"'{self._workspace.name}'.")
        return row

    def _deployment_rows(self, endpoint_name: str) -> list:
        """The endpoint's deployments, oldest first (an unknown endpoint has none)."""
        return self._store.versions(self._DEPLOYMENT_KIND, endpoint_name)

    def _deployment_row(self, name: str, endpoint_name: str):
        self._endpoint_row(endpoint_name)
        row = self._store.get(self._DEPLOYMENT_KIND, endpoint_name, name or "")
        if row is None:
            raise not_found(f"Deployment '{name}' was not found in {self._ENDPOINT_LABEL.lower()} "
                            f"'{endpoint_name}'.")
        return row

    def _deployments_page(self, endpoint_name: str, entity):
        """``list``: the endpoint's deployments as entities, after the endpoint's not-found check."""
        self._endpoint_row(endpoint_name)
        return pages(readable(self._deployment_rows(endpoint_name), entity))

    def _check_deployment_named(self, endpoint_name: str, deployment_name: str, target,
                                anonymous_message: Optional[str] = None) -> None:
        """What the SDK checks before it invokes a deployment by name: the ValidationException it
        raises when the endpoint has no such deployment (``anonymous_message``, the error's
        ``no_personal_data_message`` for an unknown name, differs between the SDK's online and
        batch operations; left out, it is the message itself)."""
        names = [row.version for row in self._deployment_rows(endpoint_name)]
        if deployment_name in names:
            return
        if names:
            message = f"Deployment name {deployment_name} not found for this endpoint"
            anonymous = anonymous_message or message
        else:
            message = anonymous = "No deployment exists for this endpoint"
        raise ValidationException(message=message, no_personal_data_message=anonymous, target=target,
                                  error_category=ErrorCategory.USER_ERROR,
                                  error_type=ValidationErrorType.RESOURCE_NOT_FOUND)

    def _target_endpoint(self, deployment, code_configuration, skip_script_validation: bool):
        """Before a deployment is created or updated: its local scoring script checked as the SDK
        checks it, and the row of the endpoint it names (which must exist)."""
        code = getattr(code_configuration, "code", None)
        if (not skip_script_validation and code_configuration and isinstance(code, str)
                and not code.startswith(("azureml:", "/subscriptions/"))):
            validate_scoring_script(deployment)
        if not deployment.endpoint_name:
            raise bad_request(f"Deployment '{deployment.name}' names no endpoint: set endpoint_name.")
        return self._endpoint_row(deployment.endpoint_name)


class DeploymentDependencies:
    """Mixed into the deployment operation groups (which provide ``_group`` and ``_store``)."""

    def _resolve_dependencies(self, deployment) -> None:
        code_configuration = deployment.code_configuration
        if code_configuration and code_configuration.code is not None:
            code = code_configuration.code
            code = str(code.path if isinstance(code, Code) else code)
            components = self._group("_components")
            if code.startswith(("azureml:", "/subscriptions/")):
                code_configuration.code = components._reference(code, "codes")
            else:
                local = Path(code) if Path(code).is_absolute() else Path(deployment.base_path, code).resolve()
                code_configuration.code = components._register_code(Code(path=str(local)))
        if deployment.environment is not None:
            environments = self._group("_environments")
            if isinstance(deployment.environment, Environment):
                deployment.environment = environments.create_or_update(deployment.environment).id
            else:
                deployment.environment = environments._resolve_reference(str(deployment.environment)).id
        if deployment.model is not None:
            if isinstance(deployment.model, Model):
                model = deployment.model
                if model.path and not Path(str(model.path)).is_absolute() and "://" not in str(model.path):
                    model.path = str(Path(deployment.base_path, str(model.path)).resolve())
                deployment.model = self._group("_models").create_or_update(model).id
            else:
                deployment.model = self._model_id(str(deployment.model))

    def _model_id(self, reference: str) -> str:
        """``azureml:name:version``, ``name@label`` or an ARM id -> the model version's id."""
        models = self._group("_models")
        if reference.startswith("azureml://registries/"):
            raise NotImplementedError(
                f"Model {reference} comes from a registry. Registry models are not part of the simulated "
                "workspace; register the model in the workspace (ml_client.models.create_or_update) and deploy that.")
        arm = ARM_MODEL.search(reference)
        if arm:
            return models.get(arm["name"], version=arm["version"]).id
        body = reference.removeprefix("azureml:")
        if "@" in body:
            name, label = body.split("@", 1)
            return models.get(name, label=label).id
        name, _, version = body.partition(":")
        if not version:
            raise bad_request(f"Model reference '{reference}' names no version: use azureml:<name>:<version> or "
                              "azureml:<name>@latest.")
        return models.get(name, version=version).id

    def _model_row(self, model_id: str):
        """The stored model version a deployment names by id."""
        match = ARM_MODEL.search(model_id)
        row = self._store.get("model", match["name"], match["version"]) if match else None
        if row is None:
            raise not_found(f"Model {model_id} was not found in workspace '{self._workspace.name}'.")
        return row

    def _model_type(self, model_id: str) -> str:
        return self._model_row(model_id).payload["properties"].get("modelType", "")

    def _check_scoring(self, name: str, props: dict, model_id: Optional[str]) -> None:
        """The service's rule for online and batch deployments alike: a scoring script needs an
        environment, and only an MLflow model may come with neither."""
        has_script = bool(props.get("codeConfiguration"))
        if has_script and not props.get("environmentId"):
            raise bad_request(f"Deployment '{name}' has a scoring script but no environment: a deployment with "
                              "code_configuration needs an environment to run it in.")
        if not has_script and (not model_id or self._model_type(model_id) != "mlflow_model"):
            raise bad_request(f"Deployment '{name}' has no scoring script: only an MLflow model (type "
                              "mlflow_model) can be deployed without code_configuration and environment.")
