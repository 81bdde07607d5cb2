"""What online and batch deployments resolve the same way before they are stored: local
code, an inline environment and a local model become registered assets, referred to by id."""
from __future__ import annotations

import re
from pathlib import Path

from azure.ai.ml.entities import Environment, Model
from azure.ai.ml.entities._assets import Code

from labkit.sim.core.base import bad_request

ARM_MODEL = re.compile(r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


class DeploymentDependencies:
    """Mixed into the deployment operation groups (which provide ``_group``)."""

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
