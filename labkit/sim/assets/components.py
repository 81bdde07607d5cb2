"""``ml_client.components``: command components, from YAML or from Python.

What the service does with a component, and the simulation with it:
- the component's ``code`` folder becomes a code asset (uploaded once per content to the
  default datastore, as the SDK's upload does) and the component refers to it by ARM id;
- ``environment`` stays the reference given (``azureml:name:version`` as the SDK sends it,
  an ARM id; curated and ``@label`` references as written), except a registry URI
  (``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``), which must exist
  and is stored as the version it names; an inline ``Environment`` is registered through the
  simulated environments group, as the SDK registers it;
- a version never changes: sending it again with a different command, inputs, outputs, code
  or environment is refused; description, display name and tags may change.

A pipeline component (``type: pipeline`` YAML, or a ``@dsl.pipeline`` function) registers its
steps' components first and is versioned as any component; its steps are command steps.
Pipeline steps defined inline arrive as anonymous components (``azureml_anonymous``, versioned
by the hash of their definition), registered when the pipeline job is submitted; they are
not listed.
"""
from __future__ import annotations

import json
import re
import types
import uuid
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from azure.ai.ml._restclient.arm_ml_service.models import ComponentContainer, ListViewType
from azure.ai.ml._utils._arm_id_utils import (
    is_ARM_id_for_resource,
    is_registry_id_for_resource,
    parse_prefixed_name_version,
)
from azure.ai.ml._utils.utils import is_url
from azure.ai.ml.constants._common import ANONYMOUS_COMPONENT_NAME, CURATED_ENV_PREFIX, AzureMLResourceType
from azure.ai.ml.entities import CommandComponent, Component, Environment, PipelineComponent
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, ValidationErrorType, ValidationException
from azure.ai.ml.operations import ComponentOperations as _SdkComponentOperations
from azure.ai.ml.operations._component_operations import _refine_component

from labkit.sim.assets.shared import VersionedAssetOperations, invalid
from labkit.sim.core.base import bad_request, not_found, pages
from labkit.sim.core.storage import DEFAULT_DATASTORE

# The SDK's rule for component names (its ComponentNameStr schema field), applied again
# on the service side for callers that pass skip_validation=True.
COMPONENT_NAME = re.compile(r"^[a-z][a-z\d_]*$")
CODE_KIND = "code"
# Parts of a component version that may change when the same version is sent again.
MUTABLE_SPEC_FIELDS = {"description", "display_name", "tags", "version", "_source"}


class ComponentOperations(VersionedAssetOperations, _SdkComponentOperations):
    kind = "component"
    collection = "components"
    entity_class = Component
    container_rest_class = ComponentContainer
    target = ErrorTarget.COMPONENT

    # -- reading --------------------------------------------------------------------------
    def get(self, name: str, version: Optional[str] = None, label: Optional[str] = None) -> Component:
        if not version and not label:
            label = "latest"  # the SDK's default for components
        return self._get(name, version, label)

    def list(self, name: Union[str, None] = None, *,
             list_view_type: ListViewType = ListViewType.ACTIVE_ONLY) -> Iterable[Component]:
        if name is None:
            # Anonymous components (pipeline steps defined inline) are not listed, as on Azure.
            return pages(c for c in self._list(name, list_view_type) if c.name != ANONYMOUS_COMPONENT_NAME)
        return self._list(name, list_view_type)

    def _container_extras(self, version_properties: dict) -> dict:
        spec = version_properties.get("componentSpec") or {}
        return {"description": spec.get("description")}

    # -- writing --------------------------------------------------------------------------
    def create_or_update(self, component: Component, version: Optional[str] = None, *,
                         skip_validation: bool = False, **kwargs: Any) -> Component:
        if isinstance(component, types.FunctionType):
            component = _refine_component(component)
        if isinstance(component, PipelineComponent):
            return self._create_pipeline_component(component, version, skip_validation)
        if not isinstance(component, CommandComponent):
            raise NotImplementedError(
                f"{type(component).__name__} is not simulated yet; the simulated workspace registers "
                "command components.")
        if version is not None:
            component.version = version
        if not component._is_anonymous:
            component._is_anonymous = kwargs.pop("is_anonymous", False)
        if not skip_validation:
            component._validate(raise_error=True)
        elif not component._is_anonymous and not COMPONENT_NAME.match(component.name or ""):
            raise bad_request(f"Component name {component.name!r} is invalid: use lowercase letters, digits "
                              "and underscores, starting with a letter.")
        name, version = component._get_rest_name_version()
        if not component._is_anonymous:
            self._check_name_and_version(name, version)
        self._resolve_code(component)
        self._resolve_environment(component)
        if component._is_anonymous:
            # An anonymous component (a pipeline step defined inline) is named by the hash of its
            # definition, taken once its code is the content-addressed code asset: new code, new version.
            name, version = component._get_rest_name_version()
        return self._store_version(component, name, version)

    def _create_pipeline_component(self, component: PipelineComponent, version: Optional[str],
                                   skip_validation: bool) -> Component:
        """A pipeline component (``type: pipeline`` YAML or a ``@dsl.pipeline`` function), as the SDK
        sends it: each step's component registered first (an inline one as an anonymous component)
        and named by id, then the pipeline component, versioned as any component."""
        if version is not None:
            component.version = version
        if not skip_validation:
            component._validate(raise_error=True)
        for step_name, node in component.jobs.items():
            if type(node).__name__ != "Command":
                raise NotImplementedError(f"Step '{step_name}' is a {type(node).__name__} step; the simulated "
                                          "workspace runs pipelines of command steps.")
            node._component = _component_id(self, step_name, node._component)
        name, version = component._get_rest_name_version()
        self._check_name_and_version(name, version)
        return self._store_version(component, name, version)

    def _store_version(self, component: Component, name: str, version: str | None) -> Component:
        rest = component._to_rest_object()
        payload = rest.as_dict()
        with self._store.transaction() as db:
            version = str(version) if version else self._store.next_version(db, self.kind, name)
            payload["properties"]["componentSpec"]["version"] = version
            old = db.execute("SELECT payload FROM resources WHERE kind=? AND name=? AND version=?",
                             (self.kind, name, version)).fetchone()
            if old is not None:
                old_spec = json.loads(old["payload"])["properties"]["componentSpec"]
                if _fixed_part(old_spec) != _fixed_part(payload["properties"]["componentSpec"]):
                    raise bad_request(
                        f"Component {name}:{version} already exists with a different definition; a component "
                        "version cannot be changed (only its description, display name and tags can). "
                        "Register it with a new version.")
            self._store.put(db, self.kind, name, version, type(rest)(payload))
        return self._entity(self._row(name, version))

    # -- dependencies ---------------------------------------------------------------------
    def _resolve_code(self, component: Component) -> None:
        """Upload a local ``code`` folder as a code asset and refer to it by ARM id."""
        with component._build_code() as code:
            if code is None:
                value = component._get_origin_code_value()
                if value is not None:
                    component._fill_back_code_value(self._reference(str(value), AzureMLResourceType.CODE))
                return
            if is_url(str(code.path)):
                raise NotImplementedError(f"Code from {code.path} is not simulated; give a local folder.")
            component._fill_back_code_value(self._register_code(code))

    def _register_code(self, code) -> str:
        local = Path(code.path)
        if not local.exists():
            raise invalid(f"The component's code path {local} does not exist.", ErrorTarget.COMPONENT,
                          ValidationErrorType.FILE_OR_FOLDER_NOT_FOUND)
        info = self._upload(local, DEFAULT_DATASTORE)
        # A single file is stored in its own folder, and the code asset is that folder (as the SDK does).
        relative = info.relative_path.rsplit("/", 1)[0] if info.is_file else info.relative_path
        code.path = self._workspace.long_uri(DEFAULT_DATASTORE, relative)
        # Anonymous code is named after its content, so the same code is registered once.
        content_hash = getattr(code, "_hash_sha256", None) or relative.split("/")[1]
        name, version = str(uuid.UUID(hex=content_hash[:32])), "1"
        with self._store.transaction() as db:
            exists = db.execute("SELECT 1 FROM resources WHERE kind=? AND name=? AND version=?",
                                (CODE_KIND, name, version)).fetchone()
            if not exists:
                self._store.put(db, CODE_KIND, name, version, code._to_rest_object())
        return self._workspace.child_id(AzureMLResourceType.CODE, name, version)

    def _resolve_environment(self, component: Component) -> None:
        environment = component.environment
        if isinstance(environment, Environment):
            component.environment = environment.id or self._register_environment(environment)
        elif isinstance(environment, str) and is_registry_id_for_resource(environment):
            # The service resolves a registry environment when it takes the component: a missing one
            # is refused, and a label becomes the version it names (components read back from Azure
            # name .../environments/sklearn-1.5/versions/<n>).
            component.environment = self._group("_environments")._resolve_reference(environment).id
        elif isinstance(environment, str):
            component.environment = self._reference(environment, AzureMLResourceType.ENVIRONMENT)

    def _register_environment(self, environment: Environment) -> str:
        """An inline environment becomes an environment asset, through the simulated group."""
        return self._group("_environments").create_or_update(environment).id

    def _reference(self, value: str, collection: str) -> str:
        """A reference as the SDK sends it: ``azureml:name:version`` becomes an ARM id."""
        if is_ARM_id_for_resource(value, collection) or is_registry_id_for_resource(value) or is_url(value):
            return value
        body = value[len("azureml:"):] if value.startswith("azureml:") else value
        if collection == AzureMLResourceType.ENVIRONMENT and (body.startswith(CURATED_ENV_PREFIX) or "@" in body):
            # Curated environments and labels are resolved by the service when the component runs.
            return f"azureml:{body}"
        name, version = parse_prefixed_name_version(value)
        if not version:
            raise invalid(f"Failed to extract version when parsing asset {value} of type {collection} as arm id. "
                          "Version must be provided.", ErrorTarget.ASSET, ValidationErrorType.MISSING_FIELD)
        if collection == AzureMLResourceType.CODE and self._store.get(CODE_KIND, name, version) is None:
            raise not_found(f"Code {name}:{version} was not found in workspace '{self._workspace.name}'.")
        return self._workspace.child_id(collection, name, version)



def _fixed_part(spec: dict) -> dict:
    return {key: value for key, value in spec.items() if key not in MUTABLE_SPEC_FIELDS}


# -- a pipeline step's component, by id (pipelines and pipeline components resolve steps alike) ----
ARM_COMPONENT = re.compile(r"/components/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


def _component_id(ops, step_name: str, component: Any) -> str:
    """The ARM id of a step's component, registering an inline one as an anonymous component."""
    components = ops._group("_components")
    if isinstance(component, str) and is_registry_id_for_resource(component):
        raise NotImplementedError(
            f"Step '{step_name}' uses the registry component {component}. Components from registries are not "
            "part of the simulated workspace; register the component in the workspace, or define it inline.")
    if isinstance(component, str):
        reference = component.removeprefix("azureml:")
        arm = ARM_COMPONENT.search(reference)
        if arm:
            return components.get(arm["name"], version=arm["version"]).id
        if "@" in reference:
            name, label = reference.split("@", 1)
            return components.get(name, label=label).id
        name, _, version = reference.partition(":")
        return components.get(name, version=version or None).id
    if not isinstance(component, Component):
        raise ValidationException(
            message=f"Step '{step_name}' has no component.", no_personal_data_message="step without component",
            target=ErrorTarget.PIPELINE, error_category=ErrorCategory.USER_ERROR)
    if component.id:  # a registered component (ml_client.components.get): it must still exist
        arm = ARM_COMPONENT.search(component.id)
        return components.get(arm["name"], version=arm["version"]).id if arm else component.id
    return components.create_or_update(component, is_anonymous=True).id
