"""Bad input to the simulated workspace: refused as Azure refuses it, and nothing changes.

One row per mistake a learner can make. Each row builds its own preconditions in a fresh
workspace, then makes the bad call and checks three things:

- the exception type is the one the real client gives: the SDK's own type where the SDK
  checks before sending the request (``ValidationException``, or the formatted
  ``MlException`` that ``DataOperations`` and ``Environment.validate`` turn it into), and
  the service's type (``HttpResponseError`` 400, ``ResourceNotFoundError`` 404,
  ``ResourceExistsError`` 409, or the ``AssetPathException`` the SDK makes of the
  service's changed-path error) where only the service checks;
- the message says what is wrong;
- the workspace is exactly as before: every row of ``resources`` and ``secrets`` and every
  file under ``storage/``, in every workspace folder of the simulation root.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from azure.ai.ml import Input, Output, command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AccountKeyConfiguration,
    AmlCompute,
    AzureBlobDatastore,
    AzureFileDatastore,
    BuildContext,
    CommandComponent,
    ComputeInstance,
    Data,
    Environment,
    Model,
    Workspace,
)
from azure.ai.ml.exceptions import AssetPathException, EmptyDirectoryError, MlException, ValidationException
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

CURATED = "AzureML-sklearn-1.5"
CLUSTER_SIZE = "Standard_DS3_v2"
INSTANCE_SIZE = "Standard_DS11_v2"


# -- inputs -------------------------------------------------------------------------------
@dataclass
class Files:
    """Local files and folders the rows register from (outside the workspace)."""
    folder: Path

    def file(self, name: str = "patients.csv", text: str = "age,diabetic\n30,0\n41,1\n") -> str:
        path = self.folder / name
        path.write_text(text)
        return str(path)

    def dir(self, name: str = "patients", files: dict[str, str] | None = None) -> str:
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        for file_name, text in (files if files is not None else {"patients.csv": "age\n30\n"}).items():
            (path / file_name).write_text(text)
        return str(path)

    def code(self) -> str:
        return self.dir("src", {"train.py": "print('training')\n"})


def component(files: Files, name: str = "train_model", version: str | None = "1",
              command_line: str = "python train.py --data ${{inputs.data}}",
              environment: str = f"azureml:{CURATED}@latest", code: bool = True) -> CommandComponent:
    return command(
        name=name, version=version, command=command_line, environment=environment,
        code=files.code() if code else None,
        inputs={"data": Input(type="uri_folder")}, outputs={"model": Output(type="mlflow_model")},
    ).component


def cluster(name: str = "cpu-cluster", **settings: Any) -> AmlCompute:
    return AmlCompute(name=name, **{"size": CLUSTER_SIZE, "max_instances": 2, **settings})


# -- the table ----------------------------------------------------------------------------
# A row's ``bad(ml_client, files)`` makes the preconditions, then returns the bad call.
Setup = Callable[[Any, Files], Callable[[], Any]]


def row(id: str, bad: Setup, error: type, match: str, status: int | None = None):
    return pytest.param(bad, error, match, status, id=id)


def _registered_data(ml, files, **data):
    ml.data.create_or_update(Data(name="patients", version="1", path=files.file(), type=AssetTypes.URI_FILE))
    return lambda: ml.data.create_or_update(Data(name="patients", **data))


def _data_version_changed(ml, files):
    ml.data.create_or_update(Data(name="patients", version="1", path=files.file(), type=AssetTypes.URI_FILE))
    other = files.file("other.csv", "age,diabetic\n52,1\n")
    # The other content is already in storage (as another asset), so the row shows only what
    # the refused call itself does. (On Azure, as here, the SDK uploads new content before
    # the service refuses the version, so new content would stay behind in storage.)
    ml.data.create_or_update(Data(name="other", version="1", path=other, type=AssetTypes.URI_FILE))
    return lambda: ml.data.create_or_update(Data(name="patients", version="1", path=other, type=AssetTypes.URI_FILE))


def _model_version_changed(ml, files):
    first, second = files.file("model.pkl", "first"), files.file("model2.pkl", "second")
    ml.models.create_or_update(Model(name="diabetes-model", version="1", path=first))
    ml.models.create_or_update(Model(name="other-model", version="1", path=second))  # content already stored
    return lambda: ml.models.create_or_update(Model(name="diabetes-model", version="1", path=second))


def _model_property_replaced(ml, files):
    path = files.file("model.pkl", "weights")
    ml.models.create_or_update(Model(name="diabetes-model", version="1", path=path, properties={"auc": "0.8"}))
    return lambda: ml.models.create_or_update(
        Model(name="diabetes-model", version="1", path=path, properties={"auc": "0.9"}))


def _component_version_changed(ml, files):
    ml.components.create_or_update(component(files))
    return lambda: ml.components.create_or_update(
        component(files, command_line="python train.py --data ${{inputs.data}} --epochs 3"))


def _environment_version_changed(ml, files):
    ml.environments.create_or_update(Environment(name="sklearn-env", version="1", image="python:3.11"))
    return lambda: ml.environments.create_or_update(
        Environment(name="sklearn-env", version="1", image="python:3.12"))


def _compute_instance(ml, files):
    ml.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size=INSTANCE_SIZE)).result()
    return ml


ROWS = [
    # -- workspaces -----------------------------------------------------------------------
    row("workspace-name-too-short",
        lambda ml, f: lambda: ml.workspaces.begin_create(Workspace(name="ab")),
        HttpResponseError, r"Workspace name 'ab' is invalid", 400),
    row("workspace-name-with-a-dot",
        lambda ml, f: lambda: ml.workspaces.begin_create(Workspace(name="mlw.labs")),
        HttpResponseError, r"Workspace name 'mlw.labs' is invalid", 400),
    row("workspace-get-missing",
        lambda ml, f: lambda: ml.workspaces.get("mlw-missing"),
        ResourceNotFoundError, r"workspaces/mlw-missing.*not found", 404),
    row("workspace-update-missing",
        lambda ml, f: lambda: ml.workspaces.begin_update(Workspace(name="mlw-missing", description="x")),
        ResourceNotFoundError, r"mlw-missing.*not found", 404),
    row("workspace-delete-missing",
        lambda ml, f: lambda: ml.workspaces.begin_delete("mlw-missing", delete_dependent_resources=True),
        ResourceNotFoundError, r"mlw-missing.*not found", 404),
    # -- datastores -----------------------------------------------------------------------
    row("datastore-name-with-hyphen",
        lambda ml, f: lambda: ml.datastores.create_or_update(
            AzureBlobDatastore(name="training-blobs", account_name="stlabs", container_name="training")),
        HttpResponseError, r"Datastore name 'training-blobs' is invalid", 400),
    row("datastore-get-missing",
        lambda ml, f: lambda: ml.datastores.get("no_such_store"),
        ResourceNotFoundError, r"Datastore 'no_such_store' was not found", 404),
    row("datastore-delete-missing",
        lambda ml, f: lambda: ml.datastores.delete("no_such_store"),
        ResourceNotFoundError, r"Datastore 'no_such_store' was not found", 404),
    row("datastore-delete-default",
        lambda ml, f: lambda: ml.datastores.delete("workspaceblobstore"),
        HttpResponseError, r"default datastore and cannot be deleted", 400),
    row("datastore-change-type",
        lambda ml, f: (ml.datastores.create_or_update(
            AzureBlobDatastore(name="shared", account_name="stlabs", container_name="c")),
            lambda: ml.datastores.create_or_update(
                AzureFileDatastore(name="shared", account_name="stlabs", file_share_name="s")))[1],
        HttpResponseError, r"type of a datastore cannot be changed", 400),
    # -- data -----------------------------------------------------------------------------
    row("data-name-with-space",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients data", path=f.file(), type=AssetTypes.URI_FILE)),
        HttpResponseError, r"name 'patients data' is invalid", 400),
    row("data-name-leading-hyphen",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="-patients", path=f.file(), type=AssetTypes.URI_FILE)),
        HttpResponseError, r"name '-patients' is invalid", 400),
    row("data-version-with-slash",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", version="1/2", path=f.file(), type=AssetTypes.URI_FILE)),
        HttpResponseError, r"Version '1/2' of 'patients' is invalid", 400),
    row("data-version-exists-with-other-content", _data_version_changed,
        AssetPathException, r"patients:1 already exists with different content"),
    row("data-get-missing-version",
        lambda ml, f: lambda: ml.data.get("patients", version="7"),
        ResourceNotFoundError, r"patients:7 was not found", 404),
    row("data-get-missing-latest",
        lambda ml, f: lambda: ml.data.get("patients", label="latest"),
        ResourceNotFoundError, r"'patients' has no active version", 404),
    row("data-get-version-and-label",
        lambda ml, f: (_registered_data(ml, f), lambda: ml.data.get("patients", version="1", label="latest"))[1],
        MlException, r"Cannot specify both version and label"),
    row("data-get-neither-version-nor-label",
        lambda ml, f: (_registered_data(ml, f), lambda: ml.data.get("patients"))[1],
        MlException, r"Must provide either version or label"),
    row("data-get-unknown-label",
        lambda ml, f: (_registered_data(ml, f), lambda: ml.data.get("patients", label="production"))[1],
        MlException, r"version label production does not exist"),
    row("data-path-does-not-exist",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", path=str(f.folder / "missing.csv"), type=AssetTypes.URI_FILE)),
        MlException, r"does not match asset type uri_file: .*missing\.csv"),
    row("data-file-as-uri-folder",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", path=f.file(), type=AssetTypes.URI_FOLDER)),
        MlException, r"does not match asset type uri_folder: .*patients\.csv"),
    row("data-folder-as-uri-file",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", path=f.dir(), type=AssetTypes.URI_FILE)),
        MlException, r"does not match asset type uri_file: .*patients"),
    row("data-mltable-without-mltable-file",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", path=f.dir(), type=AssetTypes.MLTABLE)),
        MlException, r"No MLTable file in"),
    row("data-mltable-with-invalid-mltable-file",
        lambda ml, f: lambda: ml.data.create_or_update(
            Data(name="patients", path=f.dir("table", {"MLTable": "paths: [[[\n  - nonsense: {"}),
                 type=AssetTypes.MLTABLE)),
        MlException, r"MLTable file in .* is not valid"),
    row("data-without-path",
        lambda ml, f: lambda: ml.data.create_or_update(Data(name="patients", type=AssetTypes.URI_FILE)),
        MlException, r"Missing data path"),
    row("data-same-version-new-path-via-create",
        lambda ml, f: _registered_data(ml, f, version="1", path="azureml://datastores/workspaceblobstore/paths/x.csv",
                                       type=AssetTypes.URI_FILE),
        AssetPathException, r"patients:1 already exists with different content"),
    row("data-archive-missing",
        lambda ml, f: lambda: ml.data.archive("patients", version="1"),
        ResourceNotFoundError, r"patients:1 was not found", 404),
    row("data-archive-version-and-label",
        lambda ml, f: (_registered_data(ml, f), lambda: ml.data.archive("patients", version="1", label="latest"))[1],
        ValidationException, r"Cannot specify both version and label"),
    # -- compute --------------------------------------------------------------------------
    row("compute-name-starts-with-digit",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(cluster("1cluster")),
        HttpResponseError, r"Compute name '1cluster' is not valid", 400),
    row("compute-name-ends-with-hyphen-and-digits",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(cluster("cpu-cluster-1")),
        HttpResponseError, r"Compute name 'cpu-cluster-1' is not valid", 400),
    row("compute-name-too-long",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(cluster("c" * 25)),
        HttpResponseError, r"is not valid: a compute name has 3 to 24 characters", 400),
    row("compute-unknown-vm-size",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(cluster(size="Standard_XYZ99_v9")),
        HttpResponseError, r"VM size 'Standard_XYZ99_v9' is not supported", 400),
    row("compute-instance-unknown-vm-size",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(ComputeInstance(name="ci-learner", size="Standard_Q1")),
        HttpResponseError, r"VM size 'Standard_Q1' is not supported", 400),
    row("compute-min-greater-than-max",
        lambda ml, f: lambda: ml.compute.begin_create_or_update(cluster(min_instances=3, max_instances=1)),
        HttpResponseError, r"min_instances \(3\) cannot be greater than max_instances \(1\)", 400),
    row("compute-start-a-cluster",
        lambda ml, f: (ml.compute.begin_create_or_update(cluster()).result(),
                       lambda: ml.compute.begin_start("cpu-cluster"))[1],
        HttpResponseError, r"'Start' applies only to compute instances", 400),
    row("compute-stop-a-cluster",
        lambda ml, f: (ml.compute.begin_create_or_update(cluster()).result(),
                       lambda: ml.compute.begin_stop("cpu-cluster"))[1],
        HttpResponseError, r"'Stop' applies only to compute instances", 400),
    row("compute-start-a-running-instance",
        lambda ml, f: (_compute_instance(ml, f), lambda: ml.compute.begin_start("ci-learner"))[1],
        ResourceExistsError, r"'ci-learner' is already running", 409),
    row("compute-change-type-of-a-name",
        lambda ml, f: (_compute_instance(ml, f),
                       lambda: ml.compute.begin_create_or_update(cluster("ci-learner")))[1],
        ResourceExistsError, r"'ci-learner' already exists as ComputeInstance", 409),
    row("compute-get-missing",
        lambda ml, f: lambda: ml.compute.get("no-such-compute"),
        ResourceNotFoundError, r"Compute 'no-such-compute' was not found", 404),
    row("compute-delete-missing",
        lambda ml, f: lambda: ml.compute.begin_delete("no-such-compute"),
        ResourceNotFoundError, r"Compute 'no-such-compute' was not found", 404),
    # -- environments ---------------------------------------------------------------------
    row("environment-curated-prefix-on-create",
        lambda ml, f: lambda: ml.environments.create_or_update(Environment(name="AzureML-my-env", image="python:3.11")),
        HttpResponseError, r"prefix 'AzureML-' is reserved", 400),
    row("environment-name-with-space",
        lambda ml, f: lambda: ml.environments.create_or_update(Environment(name="my env", image="python:3.11")),
        HttpResponseError, r"name 'my env' is invalid", 400),
    row("environment-without-image-or-build",
        lambda ml, f: lambda: ml.environments.create_or_update(Environment(name="sklearn-env")),
        MlException, r"Docker image or Dockerfile is required"),
    row("environment-image-and-build",
        lambda ml, f: lambda: ml.environments.create_or_update(
            Environment(name="sklearn-env", image="python:3.11", build=BuildContext(path=f.dir("ctx")))),
        MlException, r"Docker image or Dockerfile should be provided not both"),
    row("environment-build-context-missing",
        lambda ml, f: lambda: ml.environments.create_or_update(
            Environment(name="docker-env", build=BuildContext(path=str(f.folder / "no-context")))),
        ValidationException, r"no-context is not a folder"),
    row("environment-version-exists-with-other-image", _environment_version_changed,
        ResourceExistsError, r"sklearn-env:1 already exists with a different definition", 409),
    row("environment-get-missing",
        lambda ml, f: lambda: ml.environments.get("no-such-env", version="1"),
        ResourceNotFoundError, r"no-such-env:1 was not found", 404),
    row("environment-get-unknown-label",
        lambda ml, f: lambda: ml.environments.get("sklearn-env", label="stable"),
        ValidationException, r"version label stable does not exist"),
    row("environment-get-version-and-label",
        lambda ml, f: lambda: ml.environments.get("sklearn-env", version="1", label="latest"),
        ValidationException, r"Cannot specify both version and label"),
    row("environment-curated-version-not-published",
        lambda ml, f: lambda: ml.environments.get(CURATED, version="100000"),
        ResourceNotFoundError, rf"{CURATED}:100000 was not found", 404),
    row("environment-archive-curated",
        lambda ml, f: lambda: ml.environments.archive(CURATED),
        HttpResponseError, r"Cannot archive environment .*reserved", 400),
    # -- models ---------------------------------------------------------------------------
    row("model-mlflow-folder-without-mlmodel",
        lambda ml, f: lambda: ml.models.create_or_update(
            Model(name="diabetes-model", path=f.dir("model", {"model.pkl": "w"}), type=AssetTypes.MLFLOW_MODEL)),
        ValidationException, r"No MLmodel file in"),
    row("model-empty-folder",
        lambda ml, f: lambda: ml.models.create_or_update(Model(name="diabetes-model", path=f.dir("empty", {}))),
        EmptyDirectoryError, r"empty"),
    row("model-name-with-slash",
        lambda ml, f: lambda: ml.models.create_or_update(Model(name="models/diabetes", path=f.file())),
        HttpResponseError, r"name 'models/diabetes' is invalid", 400),
    row("model-version-exists-with-other-file", _model_version_changed,
        AssetPathException, r"diabetes-model:1 already exists with different content"),
    row("model-property-replaced-in-version", _model_property_replaced,
        HttpResponseError, r"Value of property auc .* cannot be replaced", 400),
    row("model-get-missing",
        lambda ml, f: lambda: ml.models.get("diabetes-model", version="3"),
        ResourceNotFoundError, r"diabetes-model:3 was not found", 404),
    row("model-get-neither-version-nor-label",
        lambda ml, f: lambda: ml.models.get("diabetes-model"),
        ValidationException, r"Must provide either version or label"),
    row("model-get-unknown-label",
        lambda ml, f: lambda: ml.models.get("diabetes-model", label="champion"),
        ValidationException, r"version label champion does not exist"),
    # -- components -----------------------------------------------------------------------
    row("component-name-with-uppercase-and-hyphen",
        lambda ml, f: lambda: ml.components.create_or_update(component(f, name="Train-Model")),
        ValidationException, r"Component name should only contain lower letter.*Train-Model"),
    row("component-name-refused-by-service-without-validation",
        lambda ml, f: lambda: ml.components.create_or_update(component(f, name="Train-Model"), skip_validation=True),
        HttpResponseError, r"Component name 'Train-Model' is invalid", 400),
    row("component-code-folder-missing",
        lambda ml, f: lambda: ml.components.create_or_update(
            command(name="train_model", version="1", command="python train.py",
                    environment=f"azureml:{CURATED}@latest", code=str(f.folder / "no-src")).component),
        ValidationException, r"no-src"),
    row("component-environment-without-version",
        lambda ml, f: lambda: ml.components.create_or_update(component(f, environment="azureml:sklearn-env", code=False)),
        ValidationException, r"Version must be provided"),
    row("component-version-exists-with-other-command", _component_version_changed,
        HttpResponseError, r"train_model:1 already exists with a different definition", 400),
    row("component-get-missing",
        lambda ml, f: lambda: ml.components.get("train_model", version="1"),
        ResourceNotFoundError, r"train_model:1 was not found", 404),
    row("component-get-unknown-label",
        lambda ml, f: lambda: ml.components.get("train_model", label="stable"),
        ValidationException, r"version label stable does not exist"),
    # -- jobs -----------------------------------------------------------------------------
    row("job-input-without-path",
        lambda ml, f: lambda: ml.jobs.create_or_update(command(
            command="echo ${{inputs.data}}", environment=f"azureml:{CURATED}@latest",
            inputs={"data": Input(type="uri_folder", folder=f.dir())})),
        HttpResponseError, r"input 'data' of type uri_folder has no path", 400),
    row("job-registry-environment-missing",
        lambda ml, f: lambda: ml.jobs.create_or_update(command(
            command="echo hi", environment="azureml://registries/azureml/environments/sklearn-0.1/labels/latest")),
        ResourceNotFoundError, r"sklearn-0.1 was not found in registry 'azureml'", 404),
]


# -- the workspace before and after ---------------------------------------------------------
def snapshot(root: Path) -> dict:
    """Every row of every workspace's ``resources`` and ``secrets``, and every file under
    each workspace's ``storage/`` folder."""
    state: dict = {"workspaces": sorted(p.name for p in root.iterdir())}
    for db_path in sorted(root.glob("*/workspace.db")):
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            resources = sorted(tuple(r) for r in db.execute("SELECT * FROM resources"))
            secrets = sorted(tuple(r) for r in db.execute("SELECT * FROM secrets"))
        finally:
            db.close()
        storage = db_path.parent / "storage"
        files = sorted(str(p.relative_to(storage)) for p in storage.rglob("*"))
        state[db_path.parent.name] = {"resources": resources, "secrets": secrets, "storage": files}
    return state


@pytest.mark.parametrize("bad, error, match, status", ROWS)
def test_bad_input_is_refused_and_changes_nothing(ml_client, sim_root, tmp_path, bad, error, match, status):
    files = Files(tmp_path / "inputs")
    files.folder.mkdir()
    call = bad(ml_client, files)
    before = snapshot(sim_root)

    with pytest.raises(error, match=match) as raised:
        result = call()
        if hasattr(result, "result"):
            result.result()

    assert type(raised.value) is error, f"{type(raised.value).__name__}: {raised.value}"
    if status is not None:
        assert raised.value.status_code == status
    assert snapshot(sim_root) == before


def test_the_table_is_wide():
    groups = {param.id.split("-")[0] for param in ROWS}
    assert groups == {"workspace", "datastore", "data", "compute", "environment", "model", "component", "job"}
    assert len(ROWS) >= 30


def test_the_snapshot_sees_rows_secrets_and_files(ml_client, sim_root, tmp_path):
    files = Files(tmp_path)
    before = snapshot(sim_root)
    ml_client.data.create_or_update(Data(name="patients", path=files.file(), type=AssetTypes.URI_FILE))
    after_data = snapshot(sim_root)
    assert after_data != before
    workspace = ml_client.workspace_name
    assert len(after_data[workspace]["storage"]) > len(before[workspace]["storage"])
    ml_client.datastores.create_or_update(AzureBlobDatastore(
        name="keyed", account_name="stlabs", container_name="c", credentials=AccountKeyConfiguration(account_key="k==")))
    assert snapshot(sim_root)[workspace]["secrets"] != after_data[workspace]["secrets"]
