"""``ml_client.environments``: Docker image + conda file, or Docker build context.

Workspace environments follow the versioned-asset rules of ``assets/shared.py``, with the two
twists the service and SDK give environments:

- registering without a version first tries to update the latest version: the same
  definition (image, conda file, build context) keeps that version and only updates its
  description and tags; a different definition becomes the next version;
- changing the definition of an existing version is refused with a 409 conflict
  (``ResourceExistsError``), which is what the SDK's own retry logic expects.

A build context folder is uploaded to the default datastore (``LocalUpload/<hash>/...``)
and referenced by its ``azureml://`` URI; Azure records an https blob URL instead and
builds the image in the workspace's container registry, which the simulation does not do.

Curated ``AzureML-*`` environments (``labkit.sim.assets.curated``) are returned by ``get`` and
``list`` like workspace ones, are read-only, and their prefix is reserved.

For the job runner: :func:`conda_packages`, :func:`pip_packages` and
:func:`python_version` read an environment's recorded dependencies, and
:func:`resolve_environment` turns ``azureml:name@latest`` / ``name:version`` references
into entities.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from azure.ai.ml._restclient.arm_ml_service.models import EnvironmentContainer, EnvironmentVersion, ListViewType
from azure.ai.ml._utils.utils import is_url
from azure.ai.ml.constants._common import ANONYMOUS_ENV_NAME
from azure.ai.ml.entities import Environment
from azure.ai.ml.exceptions import ErrorTarget, ValidationErrorType
from azure.ai.ml.operations import EnvironmentOperations as _SdkEnvironmentOperations

from labkit.sim.assets import conda
from labkit.sim.assets.shared import VersionedAssetOperations, invalid
from labkit.sim.core.base import bad_request, conflict, not_found, pages, system_data
from labkit.sim.assets.curated import (
    CURATED_CREATED_AT,
    CURATED_ENVIRONMENTS,
    RESERVED_PREFIX,
    CuratedEnvironment,
    find_curated,
    find_in_registry,
    is_reserved,
)

ANONYMOUS_VERSION = re.compile(r"^[0-9a-f]{32,64}$")
REFERENCE = re.compile(r"^(?:azureml:)?(?P<name>[^:@/]+)(?:@(?P<label>[^:@/]+)|:(?P<version>[^:@/]+))?$")
# A registry asset as jobs, components and deployments name it (the SDK passes these through
# untouched; the service resolves them): azureml://registries/<registry>/environments/<name>/
# versions/<version> or .../labels/<label>.
REGISTRY_REFERENCE = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)"
    r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))/?$", re.IGNORECASE)


def _definition(properties: dict) -> tuple:
    """What may not change within one environment version."""
    build = properties.get("build") or {}
    return (properties.get("image"), properties.get("condaFile"), build.get("contextUri"),
            build.get("dockerfilePath"), properties.get("osType"), properties.get("inferenceConfig"))


class EnvironmentOperations(VersionedAssetOperations, _SdkEnvironmentOperations):
    kind = "environment"
    collection = "environments"
    entity_class = Environment
    container_rest_class = EnvironmentContainer
    target = ErrorTarget.ENVIRONMENT

    # -- curated ----------------------------------------------------------------------------
    def _curated_entity(self, curated: CuratedEnvironment, version: Optional[str] = None,
                        registry_id: Optional[str] = None) -> Environment:
        # Azure serves these from the shared ``azureml`` registry; each workspace sees them
        # under its own environments collection, which is the id given here unless the
        # environment was named by its registry URI.
        version = str(version or curated.version)
        payload = {
            "id": registry_id or self._workspace.child_id(self.collection, curated.name, version),
            "name": version,
            "properties": {
                "description": curated.description,
                "tags": dict(curated.tags),
                "image": f"{curated.image.rsplit(':', 1)[0]}:{version}",
                "osType": "Linux",
                "isAnonymous": False,
                "isArchived": False,
            },
            "systemData": system_data(CURATED_CREATED_AT, CURATED_CREATED_AT),
        }
        return Environment._from_rest_object(EnvironmentVersion(payload))

    def _curated_container(self, curated: CuratedEnvironment) -> Environment:
        payload = {
            "id": self._workspace.child_id(self.collection, curated.name),
            "name": curated.name,
            "properties": {"description": curated.description, "tags": dict(curated.tags), "isArchived": False,
                           "latestVersion": curated.version, "nextVersion": str(int(curated.version) + 1)},
            "systemData": system_data(CURATED_CREATED_AT, CURATED_CREATED_AT),
        }
        return Environment._from_container_rest_object(EnvironmentContainer(payload))

    @staticmethod
    def _refuse_reserved(name: str, action: str) -> None:
        raise bad_request(
            f"Cannot {action} environment '{name}': the prefix '{RESERVED_PREFIX}' is reserved for curated "
            "environments, which are read-only. Register your own environment under another name "
            "(for example by using the curated image as your image).")

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str, version: Optional[str] = None, label: Optional[str] = None) -> Environment:
        name = name[len("azureml:"):] if name and name.startswith("azureml:") else name
        curated = find_curated(name)
        if curated is not None:
            if version and label:
                raise invalid("Cannot specify both version and label.", self.target)
            if label and label != "latest":
                raise invalid(f"Asset {name} with version label {label} does not exist in workspace.", self.target)
            if not version and not label:
                raise invalid("Must provide either version or label.", self.target, ValidationErrorType.MISSING_FIELD)
            if version and not curated.has_version(version):
                raise not_found(f"Environment {curated.name}:{version} was not found; the curated environment's "
                                f"versions run from 1 to {curated.version}.")
            return self._curated_entity(curated, version)
        return self._get(name, version, label)

    def list(self, name: Optional[str] = None, *,
             list_view_type: ListViewType = ListViewType.ACTIVE_ONLY) -> Iterable[Environment]:
        archived_only = list_view_type == ListViewType.ARCHIVED_ONLY
        if name:
            curated = find_curated(name)
            if curated is not None:
                return pages([] if archived_only else [self._curated_entity(curated)])
            return self._list(name, list_view_type)
        # Anonymous environments (made for jobs from an inline definition) are not listed.
        workspace = [env for env in self._list(None, list_view_type) if env.name != ANONYMOUS_ENV_NAME]
        curated = [] if archived_only else [self._curated_container(c) for c in CURATED_ENVIRONMENTS]
        return pages(sorted(workspace + curated, key=lambda env: env.name.lower()))

    # -- writing ----------------------------------------------------------------------------
    def _check_name_and_version(self, name: str | None, version: str | None) -> None:
        # Anonymous environments (made for jobs) carry a content hash as their version.
        if name == ANONYMOUS_ENV_NAME and version and ANONYMOUS_VERSION.match(str(version)):
            return
        super()._check_name_and_version(name, version)

    def _refuse_changed_version(self, name: str, version: str) -> None:
        raise conflict(f"Environment {name}:{version} already exists with a different definition (image, "
                       "conda file or build context). An environment version cannot be changed: register it "
                       "under a new version, or omit the version to get the next one.")

    def create_or_update(self, environment: Environment) -> Environment:
        if is_reserved(environment.name):
            self._refuse_reserved(environment.name, "create or update")
        environment.validate()
        self._check_name_and_version(environment.name, environment.version)
        if environment.build is not None and environment.build.path and not is_url(str(environment.build.path)):
            context = Path(environment.path) if environment.path else Path(environment.base_path, environment.build.path)
            if not context.is_dir():
                raise invalid(f"Docker build context {context} is not a folder.", self.target,
                              ValidationErrorType.FILE_OR_FOLDER_NOT_FOUND)
            stored = self._upload(context, environment.datastore)
            environment.build.path = self._workspace.long_uri(
                environment.datastore or "workspaceblobstore", stored.relative_path) + "/"
        elif environment.build is not None and environment.build.path:
            environment.build.path = self._service_uri(str(environment.build.path))

        if environment.version or not environment._auto_increment_version:
            return self._create_version(environment, immutable=_definition)
        # The SDK's own order: try the latest version, fall back to the next one.
        latest = self._store.latest(self.kind, environment.name)
        if latest is not None:
            proposed = environment._to_rest_object().as_dict().get("properties", {})
            if _definition(latest.payload.get("properties", {})) == _definition(proposed):
                environment.version = latest.version
                return self._create_version(environment, immutable=_definition)
        environment.version = None
        return self._create_version(environment, immutable=_definition)

    def archive(self, name: str, version: Optional[str] = None, label: Optional[str] = None,
                **kwargs: Any) -> None:
        name = name[len("azureml:"):] if name.startswith("azureml:") else name
        if find_curated(name):
            self._refuse_reserved(name, "archive")
        self._set_archived(name, version, label, archived=True)

    def restore(self, name: str, version: Optional[str] = None, label: Optional[str] = None,
                **kwargs: Any) -> None:
        name = name[len("azureml:"):] if name.startswith("azureml:") else name
        if find_curated(name):
            self._refuse_reserved(name, "restore")
        self._set_archived(name, version, label, archived=False)

    # -- references ---------------------------------------------------------------------------
    def _resolve_reference(self, reference: str) -> Environment:
        """The environment a job's ``environment=`` string names.

        Accepts ``azureml:name@latest``, ``azureml:name:version``, the same without the
        ``azureml:`` prefix, the ARM id of an environment version, and a registry URI
        (``azureml://registries/azureml/environments/<name>/versions/<n>`` or ``/labels/latest``).
        """
        registry = REGISTRY_REFERENCE.match(reference.strip())
        if registry:
            return self._registry_environment(reference, registry)
        arm = re.search(r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", reference)
        if arm:
            return self.get(arm["name"], version=arm["version"])
        match = REFERENCE.match(reference.strip())
        if not match:
            raise invalid(f"'{reference}' is not an environment reference: use azureml:<name>@latest or "
                          "azureml:<name>:<version>.", self.target)
        if match["version"]:
            return self.get(match["name"], version=match["version"])
        return self.get(match["name"], label=match["label"] or "latest")


    def _registry_environment(self, reference: str, match: re.Match) -> Environment:
        """A curated environment named by its registry URI; a label resolves to a version, as the
        service resolves ``labels/latest`` when it takes the job (jobs read back name the version)."""
        found = find_in_registry(match["registry"], match["name"])
        if found is None:
            # The service's answer for an asset it cannot find in a registry: 404.
            raise not_found(f"Environment {match['name']} was not found in registry '{match['registry']}' "
                            f"({reference}). The simulated workspace knows the curated environments of the "
                            "'azureml' registry (see ml_client.environments.list()).")
        curated, by_registry_name = found
        newest = curated.registry_version if by_registry_name else curated.version
        version = match["version"]
        if match["label"]:
            if match["label"].lower() != "latest":
                raise not_found(f"Label '{match['label']}' of environment {match['name']} was not found in "
                                f"registry '{match['registry']}': curated environments carry the label 'latest'.")
            version = newest
        elif not curated.has_version(version, registry=by_registry_name):
            raise not_found(f"Environment {match['name']}:{version} was not found in registry "
                            f"'{match['registry']}'; its versions run from 1 to {newest}.")
        registry_id = f"azureml://registries/{match['registry']}/environments/{match['name']}/versions/{version}"
        return self._curated_entity(curated, version, registry_id=registry_id)


# -- what a job runner reads -------------------------------------------------------------------
def resolve_environment(ml_client: Any, reference: Union[str, Environment]) -> Environment:
    """The registered (or curated) environment a job refers to, or the inline one given."""
    if isinstance(reference, Environment):
        return reference
    return ml_client.environments._resolve_reference(reference)


def conda_specification(environment: Environment) -> dict:
    """The environment's conda file as a dict (empty when it has none).

    Curated environments bake their packages into the image; the simulation answers from
    its curated table so a local run knows what the image would contain.
    """
    from_registry = conda.specification_of_registry_asset(environment.id)
    if from_registry is not None:
        return from_registry
    return conda.specification(environment.name, environment.conda_file)


def conda_packages(environment: Environment) -> list[str]:
    """Conda-level dependencies (``python=3.10``, ``pandas~=1.5.3``...), without ``pip`` itself."""
    return conda.conda_packages(conda_specification(environment))


def pip_packages(environment: Environment) -> list[str]:
    """Packages the conda file installs with pip."""
    return conda.pip_packages(conda_specification(environment))


def python_version(environment: Environment) -> str | None:
    """The Python version the conda file pins (``3.10``), if it pins one."""
    return conda.python_version(conda_specification(environment))
