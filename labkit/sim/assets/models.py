"""``ml_client.models``: ``custom_model``, ``mlflow_model`` and ``triton_model`` assets.

What the service adds to the SDK's own checks, and the simulation with it:
- a local file or folder is uploaded to the default datastore and the version keeps the
  long ``azureml://subscriptions/.../datastores/<name>/paths/...`` URI;
- an ``mlflow_model`` must be a folder whose ``MLmodel`` file MLflow can load; the service
  reads the flavors from it, so ``get`` returns them;
- a version's path, type, flavors and stage never change; re-sending the version may change
  its description and tags, and add properties, but not replace a property's value ("Work
  with models", Update: only description and tags can be updated, all other properties are
  immutable; a new stage takes a new version);
- a model registered from a job output (``azureml://jobs/<job>/outputs/<output>/...``)
  records the job's name.
"""
from __future__ import annotations

import json
import re
import shutil
from os import PathLike
from pathlib import Path
from typing import Iterable, Optional, Union

from azure.ai.ml._artifacts._constants import EMPTY_DIRECTORY_ERROR
from azure.ai.ml._restclient.arm_ml_service.models import ListViewType, ModelContainer
from azure.ai.ml._utils._storage_utils import get_ds_name_and_path_prefix
from azure.ai.ml._utils.utils import is_mlflow_uri, is_url, validate_ml_flow_folder
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model
from azure.ai.ml.exceptions import (
    EmptyDirectoryError,
    ErrorCategory,
    ErrorTarget,
    ValidationErrorType,
)
from azure.ai.ml.operations import ModelOperations as _SdkModelOperations

from labkit.sim.assets.shared import VersionedAssetOperations, invalid
from labkit.sim.core.base import bad_request, not_found, pages
from labkit.sim.core.references import JOB_OUTPUT_URI
from labkit.sim.core.storage import datastore_folder

MODEL_TYPES = (AssetTypes.CUSTOM_MODEL, AssetTypes.MLFLOW_MODEL, AssetTypes.TRITON_MODEL)
# Where a model is registered from a job's output: stored as given, resolved to the job's files
# (``outputs/artifacts/...`` is the job's artifact folder) to read an MLflow model's flavors.
MLFLOW_RUN_URI = re.compile(r"^runs:/(?P<job>[^/]+)/(?P<path>.*)$")
LONG_DATASTORE_URI = re.compile(r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+"
                                r"/datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
# The stage the service gives a version registered without one.
DEFAULT_STAGE = "Development"


def read_mlflow_flavors(folder: Path) -> dict[str, dict[str, str]]:
    """The flavors of the MLflow model in ``folder``, as the service records them (string values).

    Refuses, with the SDK's ``ValidationException``, a folder without an ``MLmodel`` file
    or one MLflow cannot load or that names no flavor.
    """
    mlmodel = folder / "MLmodel"
    if not folder.is_dir() or not mlmodel.is_file():
        raise invalid(f"No MLmodel file in {folder}: an mlflow_model is a folder holding the MLmodel file "
                      "that mlflow.<flavor>.save_model writes.", ErrorTarget.MODEL,
                      ValidationErrorType.FILE_OR_FOLDER_NOT_FOUND)
    from mlflow.models import Model as MlflowModel

    try:
        flavors = MlflowModel.load(str(mlmodel)).flavors
    except Exception as error:  # YAML and MLflow errors vary by version
        raise invalid(f"The MLmodel file in {folder} is not a valid MLflow model: {error}",
                      ErrorTarget.MODEL) from error
    if not isinstance(flavors, dict) or not flavors:
        raise invalid(f"The MLmodel file in {folder} names no flavor, so the model cannot be loaded.",
                      ErrorTarget.MODEL)
    return {
        flavor: {key: value if isinstance(value, str) else json.dumps(value, indent=2)
                 for key, value in (settings or {}).items() if value is not None}
        for flavor, settings in flavors.items()
    }


def model_files(workspace, model_uri: str) -> Path:
    """The local file or folder a model's path (a datastore or job output URI) stands for."""
    if JOB_OUTPUT_URI.match(model_uri):
        from labkit.sim.core.references import job_output_uri

        model_uri = job_output_uri(workspace, model_uri)
    match = LONG_DATASTORE_URI.match(model_uri)
    datastore, prefix = (match["datastore"], match["path"]) if match else get_ds_name_and_path_prefix(model_uri)
    return datastore_folder(workspace, datastore) / prefix.rstrip("/")


class ModelOperations(VersionedAssetOperations, _SdkModelOperations):
    kind = "model"
    collection = "models"
    entity_class = Model
    container_rest_class = ModelContainer
    target = ErrorTarget.MODEL

    # -- reading --------------------------------------------------------------------------
    def get(self, name: str, version: Optional[str] = None, label: Optional[str] = None) -> Model:
        return self._get(name, version, label)

    def list(self, name: Optional[str] = None, stage: Optional[str] = None, *,
             list_view_type: ListViewType = ListViewType.ACTIVE_ONLY) -> Iterable[Model]:
        if name and stage:
            return pages(m for m in self._list(name, list_view_type) if m.stage == stage)
        return self._list(name, list_view_type)

    def download(self, name: str, version: str, download_path: Union[PathLike, str] = ".") -> None:
        """Copy the model's files to ``<download_path>/<name>/``, as the SDK lays them out:
        a file model as ``<name>/<file>``, a folder model as ``<name>/<folder>/...``."""
        model_uri = str(self.get(name=name, version=version).path)
        if MLFLOW_RUN_URI.match(model_uri):
            raise NotImplementedError(
                f"Model {name}:{version} points at an MLflow run URI ({model_uri}); download it with "
                "mlflow.artifacts.download_artifacts instead.")
        source = model_files(self._workspace, model_uri)
        if not source.exists():
            raise not_found(f"The files of model {name}:{version} ({model_uri}) were not found.")
        destination = Path(download_path, name)
        if source.is_dir():
            shutil.copytree(source, destination / source.name, dirs_exist_ok=True)
        else:
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination / source.name)

    # -- writing --------------------------------------------------------------------------
    def create_or_update(self, model: Model) -> Model:  # type: ignore[override]
        return self._create(model)

    def _create(self, model: Model, job_name: str | None = None) -> Model:
        """Register ``model``; ``job_name``: the job (MLflow run) it came from, when its path does
        not say (a model MLflow registers from a run's artifacts)."""
        self._check_name_and_version(model.name, model.version)
        if model.type not in MODEL_TYPES:
            raise invalid(f"Model type {model.type!r} is not supported: use one of {', '.join(MODEL_TYPES)}.",
                          ErrorTarget.MODEL)
        if not model.path:
            raise bad_request(f"Model {model.name} has no path: give a local file or folder, a datastore URI "
                              "or a job output URI.")
        path = str(model.path)
        flavors = None
        if not (is_url(path) or is_mlflow_uri(path)):
            local = Path(path) if Path(path).is_absolute() else Path(model.base_path, path).resolve()
            if local.is_dir() and not any(p.is_file() for p in local.rglob("*")):
                message = EMPTY_DIRECTORY_ERROR.format(local)
                raise EmptyDirectoryError(message=message, no_personal_data_message=message,
                                          target=ErrorTarget.ARTIFACT, error_category=ErrorCategory.USER_ERROR)
            if model.type == AssetTypes.MLFLOW_MODEL:
                flavors = read_mlflow_flavors(local)
            model._update_path(self._upload(local, model.datastore))
        model.path = self._service_uri(str(model.path))
        validate_ml_flow_folder(str(model.path), model.type)
        if flavors is None and model.type == AssetTypes.MLFLOW_MODEL:
            flavors = self._flavors_in_workspace(str(model.path))
        return self._store_version(model, flavors, job_name)

    def _flavors_in_workspace(self, uri: str) -> dict | None:
        """Flavors of an MLflow model already in one of this workspace's datastores."""
        if JOB_OUTPUT_URI.match(uri):
            from azure.core.exceptions import ResourceNotFoundError

            from labkit.sim.core.references import job_output_uri

            try:
                uri = job_output_uri(self._workspace, uri)
            except ResourceNotFoundError:
                # Kept as given, as before jobs were simulated (tests/test_sim_models.py relies on it);
                # the service would refuse a job output that does not exist.
                return None
        if not LONG_DATASTORE_URI.match(uri):
            return None  # storage outside the simulation
        return read_mlflow_flavors(model_files(self._workspace, uri))

    def _store_version(self, model: Model, flavors: dict | None, job_name: str | None = None) -> Model:
        rest = model._to_rest_object()
        payload = rest.as_dict()
        props = payload["properties"]
        if flavors is not None:
            props["flavors"] = {flavor: {"data": data} for flavor, data in flavors.items()}
        # The service always returns a flavors map (empty for a custom model); the SDK relies on it.
        props["flavors"] = props.get("flavors") or {}
        job = JOB_OUTPUT_URI.match(props["modelUri"]) or MLFLOW_RUN_URI.match(props["modelUri"])
        if job or job_name:
            props["jobName"] = job["job"] if job else job_name
        with self._store.transaction() as db:
            version = str(model.version) if model.version else self._store.next_version(db, self.kind, model.name)
            old = db.execute("SELECT payload FROM resources WHERE kind=? AND name=? AND version=?",
                             (self.kind, model.name, version)).fetchone()
            if old is not None:
                props = self._updated_properties(model.name, version, json.loads(old["payload"])["properties"], props)
                payload["properties"] = props
            else:
                props["stage"] = props.get("stage") or DEFAULT_STAGE
            self._store.put(db, self.kind, model.name, version, type(rest)(payload))
        return self._entity(self._row(model.name, version))

    def _updated_properties(self, name: str, version: str, old: dict, new: dict) -> dict:
        """What an existing version becomes when sent again: only the mutable parts change."""
        if (old.get("modelUri"), old.get("modelType")) != (new.get("modelUri"), new.get("modelType")):
            self._refuse_changed_version(name, version)
        if new.get("stage") and new["stage"] != old.get("stage"):
            raise bad_request(f"The stage of model {name} version {version} is {old.get('stage')} and cannot be "
                              f"changed to {new['stage']}: only the description and tags of a model version can "
                              "be updated. Register a new version with that stage.")
        merged_properties = dict(old.get("properties") or {})
        for key, value in (new.get("properties") or {}).items():
            if key in merged_properties and merged_properties[key] != value:
                raise bad_request(f"Value of property {key} for model {name} cannot be replaced to {value} "
                                  "without increasing the version.")
            merged_properties[key] = value
        return {
            **old,
            "description": new.get("description"),
            "tags": new.get("tags") or {},
            "properties": merged_properties,
            "stage": old.get("stage"),
        }
