"""MLflow's model registry for a simulated workspace: a front end over ``ml_client.models``.

On Azure a workspace has one model registry: a model registered with
``mlflow.register_model`` (or ``log_model(..., registered_model_name=...)``) is a model asset
that ``ml_client.models.get`` returns, and a model created with
``ml_client.models.create_or_update`` is a registered model MLflow can search and load, with
one sequence of versions ("Manage models registry in Azure Machine Learning with MLflow",
https://learn.microsoft.com/azure/machine-learning/how-to-manage-models-mlflow).

The single source of truth is the workspace store's model rows, and this MLflow registry
store reads and writes them, for three reasons: everything else in the workspace (the SDK's
``models`` group, deployments, jobs' model inputs) already reads those rows; a version number
is taken inside the store's one write transaction, so the two front ends can never hand out
the same version; and a registration from MLflow goes through the service's own checks
(an ``mlflow_model`` folder must hold a loadable ``MLmodel``). MLflow's view of a version is
derived from its row on every read, so the two never disagree. The one MLflow-only part,
stages, lives in a table of its own: the documentation says stages are kept by the MLflow
API and cannot be retrieved with the Azure ML SDK, CLI or REST API.

What Azure does not support, refused here with an ``MlflowException`` (the table "Review
supported capabilities for managing models" in that article): renaming a model, deleting a
whole model (delete its versions instead), searching models with ``LIKE``/``ILIKE`` or by tag.
Aliases, model-level tags and descriptions, and copying versions are not simulated.
"""
from __future__ import annotations

import contextlib
import functools
from datetime import datetime
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities.model_registry import ModelVersion, ModelVersionTag, RegisteredModel
from mlflow.entities.model_registry.model_version_stages import ALL_STAGES, STAGE_ARCHIVED, STAGE_NONE, \
    get_canonical_stage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, \
    RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils

from labkit.sim.core.store import SIMULATED_USER
from labkit.sim.core.workspace import SimWorkspace

KIND = "model"
DOCS_URL = "https://learn.microsoft.com/azure/machine-learning/how-to-manage-models-mlflow"
STAGES_TABLE = """CREATE TABLE IF NOT EXISTS mlflow_model_stages (
    name TEXT NOT NULL, version TEXT NOT NULL, stage TEXT NOT NULL, PRIMARY KEY (name, version))"""
# MLflow adds this condition to every search of registered models (prompts are models too).
PROMPT_TAG = "mlflow.prompt.is_prompt"
ARTIFACT_STORE = "workspaceartifactstore"


def _refused(message: str) -> MlflowException:
    return MlflowException(f"{message} Azure Machine Learning does not support it (see {DOCS_URL}).",
                           error_code=INVALID_PARAMETER_VALUE)


def _not_simulated(what: str) -> MlflowException:
    return MlflowException(f"{what} is not part of the simulated workspace's model registry.",
                           error_code=INVALID_PARAMETER_VALUE)


def _millis(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


class WorkspaceRegistryStore(AbstractStore):
    """The ``mlflow.model_registry_store`` plugin for ``labkit-sim://`` URIs."""

    def __init__(self, store_uri: str, tracking_uri: str | None = None):
        super().__init__(store_uri, tracking_uri)
        from labkit.sim.core.tracking import _folder

        self._store_uri = store_uri
        self._workspace = SimWorkspace.from_folder(_folder(store_uri).parent)
        with self._workspace.store.transaction() as db:
            db.execute(STAGES_TABLE)

    @cached_property
    def _models(self):
        from labkit.sim.assets.models import ModelOperations

        workspace = self._workspace
        return ModelOperations(workspace, scope=(workspace.subscription_id, workspace.resource_group))

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, name: str | None = None) -> list:
        store = self._workspace.store
        return store.versions(KIND, name) if name else store.list(KIND)

    def _row(self, name: str, version) -> object:
        row = self._workspace.store.get(KIND, name, str(version))
        if row is None:
            raise MlflowException(f"Model version {name}:{version} was not found in workspace "
                                  f"'{self._workspace.name}'.", error_code=RESOURCE_DOES_NOT_EXIST)
        return row

    def _stages(self) -> dict[tuple[str, str], str]:
        with self._workspace.store.transaction() as db:
            return {(r["name"], r["version"]): r["stage"]
                    for r in db.execute("SELECT name, version, stage FROM mlflow_model_stages")}

    def _model_version(self, row, stages: dict | None = None) -> ModelVersion:
        props = row.payload["properties"]
        stages = self._stages() if stages is None else stages
        return ModelVersion(
            name=row.name, version=row.version,
            creation_timestamp=_millis(row.created_at), last_updated_timestamp=_millis(row.modified_at),
            description=props.get("description") or "", user_id=SIMULATED_USER,
            current_stage=stages.get((row.name, row.version), STAGE_NONE),
            source=props.get("modelUri"), run_id=props.get("jobName"),
            tags=[ModelVersionTag(key, value) for key, value in (props.get("tags") or {}).items()],
        )

    def _registered_model(self, name: str, rows: list, stages: dict) -> RegisteredModel:
        versions = [self._model_version(row, stages) for row in rows]
        latest_by_stage = {version.current_stage: version for version in versions}
        return RegisteredModel(
            name=name, creation_timestamp=versions[0].creation_timestamp,
            last_updated_timestamp=max(v.last_updated_timestamp for v in versions),
            latest_versions=list(latest_by_stage.values()))

    def get_model_version(self, name, version):
        return self._model_version(self._row(name, version))

    def get_registered_model(self, name):
        rows = self._rows(name)
        if not rows:
            raise MlflowException(f"Registered model '{name}' was not found in workspace "
                                  f"'{self._workspace.name}'.", error_code=RESOURCE_DOES_NOT_EXIST)
        return self._registered_model(name, rows, self._stages())

    def get_latest_versions(self, name, stages=None):
        latest = self.get_registered_model(name).latest_versions
        if not stages:
            return latest
        wanted = {get_canonical_stage(stage) for stage in stages}
        return [version for version in latest if version.current_stage in wanted]

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        for condition in SearchModelUtils.parse_search_filter(filter_string) if filter_string else []:
            if condition["type"] == "tag" and condition["key"] != PROMPT_TAG:
                raise _refused("Searching registered models by tag is not possible.")
            if condition["comparator"].upper() in ("LIKE", "ILIKE"):
                raise _refused(f"Searching registered models with {condition['comparator']} is not possible.")
        by_name: dict[str, list] = {}
        for row in self._rows():
            if not row.archived:
                by_name.setdefault(row.name, []).append(row)
        stages = self._stages()
        models = [self._registered_model(name, rows, stages) for name, rows in by_name.items()]
        models = SearchModelUtils.sort(SearchModelUtils.filter(models, filter_string), order_by or ["name ASC"])
        return self._page(models, max_results, page_token)

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        stages = self._stages()
        versions = [self._model_version(row, stages) for row in self._rows() if not row.archived]
        versions = SearchModelVersionUtils.filter(versions, filter_string)
        versions = SearchModelVersionUtils.sort(versions, order_by or ["last_updated_timestamp DESC"])
        return self._page(versions, max_results, page_token)

    @staticmethod
    def _page(items: list, max_results, page_token) -> PagedList:
        start = SearchUtils.parse_start_offset_from_page_token(page_token)
        end = start + max_results if max_results else len(items)
        token = SearchUtils.create_page_token(end) if end < len(items) else None
        return PagedList(items[start:end], token)

    def get_model_version_download_uri(self, name, version):
        from labkit.sim.assets.models import model_files

        return model_files(self._workspace, self._row(name, version).payload["properties"]["modelUri"]).as_uri()

    # -- registering ------------------------------------------------------------------------
    def create_registered_model(self, name, tags=None, description=None, deployment_job_id=None):
        """A model exists on Azure with its first version; until then there is nothing to store."""
        if tags or description:
            raise _not_simulated("A registered model's own tags and description")
        if self._rows(name):
            raise MlflowException(f"Registered model '{name}' already exists.", error_code=RESOURCE_ALREADY_EXISTS)
        return RegisteredModel(name=name)

    def create_model_version(self, name, source, run_id=None, tags=None, run_link=None, description=None,
                             local_model_path=None, model_id=None):
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model
        from azure.ai.ml.exceptions import MlException
        from azure.core.exceptions import HttpResponseError

        folder, run_id = self._source_folder(source, run_id, model_id)
        model = Model(name=name, path=self._model_path(folder), type=AssetTypes.MLFLOW_MODEL,
                      description=description, tags={tag.key: tag.value for tag in tags or []})
        try:
            created = self._models._create(model, job_name=run_id)
        except (MlException, HttpResponseError) as error:
            raise MlflowException(str(getattr(error, "message", error)), error_code=INVALID_PARAMETER_VALUE) from error
        return self.get_model_version(name, created.version)

    def _source_folder(self, source: str, run_id: str | None, model_id: str | None) -> tuple[Path, str | None]:
        """The local folder an MLflow model source stands for, and the run that logged it."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self._store_uri, registry_uri=self._store_uri)
        if model_id or source.startswith("models:/"):
            logged = client.get_logged_model(model_id or source.removeprefix("models:/").strip("/"))
            source, run_id = logged.artifact_location, run_id or logged.source_run_id
        elif source.startswith("runs:/"):
            from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

            run_id = run_id or RunsArtifactRepository.parse_runs_uri(source)[0]
            source = RunsArtifactRepository.get_underlying_uri(source)
        parsed = urlparse(source)
        if parsed.scheme not in ("", "file"):
            raise _refused(f"Registering a model from {source!r} (outside this workspace) is not possible.")
        return Path(unquote(parsed.path)), run_id

    def _model_path(self, folder: Path) -> str:
        """A folder in the workspace's artifact store is registered where it is, as Azure shows a
        model registered from a run (a path in ``workspaceartifactstore``); any other is uploaded."""
        from labkit.sim.core.storage import datastore_folder

        artifacts = datastore_folder(self._workspace, ARTIFACT_STORE).resolve()
        with contextlib.suppress(ValueError):
            return self._workspace.long_uri(ARTIFACT_STORE, folder.resolve().relative_to(artifacts).as_posix())
        return str(folder)

    # -- changing ---------------------------------------------------------------------------
    def _change(self, name: str, version, change) -> ModelVersion:
        """Apply ``change(properties)`` to a version's payload in one transaction."""
        import json

        from labkit.sim.core.store import load_rest_class

        store = self._workspace.store
        with store.transaction() as db:
            found = db.execute("SELECT payload, rest_class FROM resources WHERE kind=? AND name=? AND version=?",
                               (KIND, name, str(version))).fetchone()
            if found is None:
                self._row(name, version)  # raises the not-found error
            payload = json.loads(found["payload"])
            change(payload["properties"])
            store.put(db, KIND, name, str(version), load_rest_class(found["rest_class"])(payload))
        return self.get_model_version(name, version)

    def update_model_version(self, name, version, description):
        return self._change(name, version, lambda props: props.update(description=description))

    def set_model_version_tag(self, name, version, tag):
        return self._change(name, version, lambda props: props.setdefault("tags", {}).update({tag.key: tag.value}))

    def delete_model_version_tag(self, name, version, key):
        return self._change(name, version, lambda props: (props.get("tags") or {}).pop(key, None))

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False):
        stage = get_canonical_stage(stage)
        self._row(name, version)
        with self._workspace.store.transaction() as db:
            if archive_existing_versions and stage in ALL_STAGES and stage not in (STAGE_NONE, STAGE_ARCHIVED):
                db.execute("UPDATE mlflow_model_stages SET stage=? WHERE name=? AND stage=? AND version<>?",
                           (STAGE_ARCHIVED, name, stage, str(version)))
            db.execute("INSERT OR REPLACE INTO mlflow_model_stages VALUES (?,?,?)", (name, str(version), stage))
        return self.get_model_version(name, version)

    def delete_model_version(self, name, version):
        self._row(name, version)
        self._workspace.store.delete(KIND, name, str(version))
        with self._workspace.store.transaction() as db:
            db.execute("DELETE FROM mlflow_model_stages WHERE name=? AND version=?", (name, str(version)))

    # -- what Azure refuses, and what is not simulated ------------------------------------------
    def rename_registered_model(self, name, new_name):
        raise _refused("Renaming a registered model (models are immutable) is not possible.")

    def delete_registered_model(self, name):
        raise _refused("Deleting a whole registered model is not possible: delete its versions instead.")

    def update_registered_model(self, name, description, deployment_job_id=None):
        raise _not_simulated("A registered model's own description")

    def set_registered_model_tag(self, name, tag):
        raise _not_simulated("A registered model's own tags")

    def delete_registered_model_tag(self, name, key):
        raise _not_simulated("A registered model's own tags")

    def set_registered_model_alias(self, name, alias, version):
        raise _not_simulated("Model aliases")

    def delete_registered_model_alias(self, name, alias):
        raise _not_simulated("Model aliases")

    def get_model_version_by_alias(self, name, alias):
        raise _not_simulated("Model aliases")

    def copy_model_version(self, src_mv, dst_name):
        raise _not_simulated("Copying a model version")


# -- the MLflow plugin entry point (pyproject.toml: mlflow.model_registry_store) -----------------
@functools.lru_cache(maxsize=None)
def registry_store(store_uri: str, tracking_uri: str | None = None):
    """The workspace's model registry, which MLflow and ``ml_client.models`` share."""
    return WorkspaceRegistryStore(store_uri, tracking_uri)
