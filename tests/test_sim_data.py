"""Datastores and data assets, read back through azureml:// URIs as on Azure."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AccountKeyConfiguration,
    AzureBlobDatastore,
    AzureDataLakeGen2Datastore,
    AzureFileDatastore,
    Data,
    SasTokenConfiguration,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.ai.ml.exceptions import MlException

from helpers import write_files

DEFAULT_STORES = {"workspaceblobstore", "workspaceartifactstore", "workspaceworkingdirectory", "workspacefilestore"}


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "patients.csv"
    pd.DataFrame({"age": [30, 41, 52], "diabetic": [0, 1, 1]}).to_csv(path, index=False)
    return path


@pytest.fixture
def mltable_folder(tmp_path, csv_file):
    folder = tmp_path / "patients-table"
    folder.mkdir()
    (folder / "patients.csv").write_bytes(csv_file.read_bytes())
    (folder / "MLTable").write_text(
        "paths:\n  - file: ./patients.csv\ntransformations:\n  - read_delimited:\n"
        "      delimiter: ','\n      header: all_files_same_headers\n")
    return folder


# -- datastores ---------------------------------------------------------------------------
def test_new_workspace_has_the_default_datastores(ml_client):
    assert {d.name for d in ml_client.datastores.list()} == DEFAULT_STORES
    assert ml_client.datastores.get_default().name == "workspaceblobstore"


def test_secrets_are_never_returned_by_get_or_list(ml_client):
    store = AzureBlobDatastore(name="training_blobs", account_name="stlabs", container_name="training",
                               credentials=AccountKeyConfiguration(account_key="very-secret-key=="))
    created = ml_client.datastores.create_or_update(store)
    assert created.credentials.account_key is None
    assert ml_client.datastores.get("training_blobs").credentials.account_key is None
    listed = {d.name: d for d in ml_client.datastores.list()}
    assert listed["training_blobs"].credentials.account_key is None
    revealed = ml_client.datastores.get("training_blobs", include_secrets=True)
    assert revealed.credentials.account_key == "very-secret-key=="


@pytest.mark.parametrize("datastore", [
    AzureBlobDatastore(name="blob_sas", account_name="stlabs", container_name="c",
                       credentials=SasTokenConfiguration(sas_token="?sv=2022&sig=x")),
    AzureBlobDatastore(name="blob_identity", account_name="stlabs", container_name="c"),
    AzureDataLakeGen2Datastore(name="lake_identity", account_name="dlslabs", filesystem="raw"),
    AzureFileDatastore(name="share_key", account_name="stlabs", file_share_name="share",
                       credentials=AccountKeyConfiguration(account_key="k==")),
])
def test_datastore_kinds_and_credentials(ml_client, datastore):
    created = ml_client.datastores.create_or_update(datastore)
    assert type(created) is type(datastore)
    assert created.id.endswith(f"/datastores/{datastore.name}")
    ml_client.datastores.delete(datastore.name)
    with pytest.raises(ResourceNotFoundError):
        ml_client.datastores.get(datastore.name)


def test_default_datastore_cannot_be_deleted(ml_client):
    with pytest.raises(HttpResponseError, match="default"):
        ml_client.datastores.delete("workspaceblobstore")
    assert ml_client.datastores.get_default().name == "workspaceblobstore"


# -- data assets ----------------------------------------------------------------------------
def test_uri_file_uploads_and_reads_back_through_its_uri(ml_client, csv_file):
    asset = ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type=AssetTypes.URI_FILE))
    assert asset.version == "1"
    assert asset.path.startswith(f"azureml://subscriptions/{ml_client.subscription_id}/resourcegroups/")
    assert "/datastores/workspaceblobstore/paths/LocalUpload/" in asset.path
    assert asset.id.endswith("/data/patients/versions/1")
    assert asset.creation_context.created_by
    pd.testing.assert_frame_equal(pd.read_csv(asset.path), pd.read_csv(csv_file))


def test_uri_folder_and_mltable(ml_client, mltable_folder):
    import mltable

    folder = ml_client.data.create_or_update(
        Data(name="patients-folder", path=str(mltable_folder), type=AssetTypes.URI_FOLDER))
    assert len(pd.read_csv(folder.path.rstrip("/") + "/patients.csv")) == 3
    table = ml_client.data.create_or_update(
        Data(name="patients-table", path=str(mltable_folder), type=AssetTypes.MLTABLE))
    frame = mltable.load(table.path).to_pandas_dataframe()
    assert list(frame.columns) == ["age", "diabetic"] and len(frame) == 3


def test_azureml_paths_inside_an_mltable_file_read_the_workspace_storage(ml_client, csv_file, tmp_path):
    import mltable

    uploaded = ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type=AssetTypes.URI_FILE))
    short = "azureml://datastores/workspaceblobstore/paths/" + uploaded.path.split("/paths/", 1)[1]
    folder = tmp_path / "remote-table"
    folder.mkdir()
    (folder / "MLTable").write_text(
        f"paths:\n  - file: {uploaded.path}\n  - file: {short}\n"
        "transformations:\n  - read_delimited:\n      delimiter: ','\n      header: all_files_same_headers\n")
    table = ml_client.data.create_or_update(Data(name="patients-remote", path=str(folder), type=AssetTypes.MLTABLE))
    loaded = mltable.load(f"azureml:/{table.id}")
    assert [entry["file"] for entry in loaded.paths] == [uploaded.path, short]  # as the file says
    assert len(loaded.to_pandas_dataframe()) == 6
    assert len(mltable.from_delimited_files(paths=[{"file": short}]).to_pandas_dataframe()) == 3


def _table_with_azureml_paths(ml_client, csv_file, tmp_path):
    """An MLTable data asset listing one file by its long URI, one by its short URI and one relative."""
    uploaded = ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type=AssetTypes.URI_FILE))
    short = "azureml://datastores/workspaceblobstore/paths/" + uploaded.path.split("/paths/", 1)[1]
    folder = tmp_path / "job-table"
    folder.mkdir()
    (folder / "patients.csv").write_bytes(csv_file.read_bytes())
    (folder / "MLTable").write_text(
        f"paths:\n  - file: {uploaded.path}\n  - file: {short}\n  - file: ./patients.csv\n"
        "transformations:\n  - read_delimited:\n      delimiter: ','\n      header: all_files_same_headers\n")
    return ml_client.data.create_or_update(Data(name="patients-job-table", path=str(folder), type=AssetTypes.MLTABLE))


READ_TABLE = "import sys, mltable; print('rows', len(mltable.load(sys.argv[1]).to_pandas_dataframe()))"


def test_the_mltable_a_job_is_handed_reads_without_the_simulation(ml_client, csv_file, tmp_path):
    """A job's process has no simulation in it: the table it gets names local files only."""
    import subprocess
    import sys

    from labkit.sim.core import fs

    table = _table_with_azureml_paths(ml_client, csv_file, tmp_path)
    stored = Path(fs.local_path(table.path))
    handed = fs.mltable_for_job(stored, tmp_path / "job" / "inputs" / "data")
    assert (handed / "patients.csv").read_bytes() == csv_file.read_bytes()  # the folder's other files stay
    assert "azureml://" in (stored / "MLTable").read_text()  # the asset itself is unchanged
    env = {key: value for key, value in os.environ.items() if not key.startswith("LABKIT_SIM")}
    read = subprocess.run([sys.executable, "-c", READ_TABLE, str(handed)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert read.stdout.split() == ["rows", "9"], read.stderr


def test_a_job_reads_an_mltable_input_whose_file_lists_azureml_paths(ml_client, csv_file, tmp_path, finished_job):
    """"Working with tables in Azure Machine Learning": a job reads its MLTable input with mltable.load."""
    from azure.ai.ml import Input, command

    table = _table_with_azureml_paths(ml_client, csv_file, tmp_path)
    src = write_files(tmp_path / "src", {"read_table.py": READ_TABLE.replace("; ", "\n") + "\n"})
    job = ml_client.jobs.create_or_update(command(
        code=str(src), command="python read_table.py ${{inputs.data}}",
        inputs={"data": Input(type=AssetTypes.MLTABLE, path=f"azureml:{table.name}:{table.version}")},
        environment="azureml:AzureML-sklearn-1.5@latest"))
    assert finished_job(ml_client, job.name).status == "Completed"
    ml_client.jobs.download(job.name, download_path=str(tmp_path / "downloaded"), all=True)
    logs = list((tmp_path / "downloaded").rglob("std_log*.txt"))
    assert "rows 9" in logs[0].read_text()


def test_versions_automatic_explicit_latest_and_list(ml_client, csv_file, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("age,diabetic\n60,1\n")
    first = ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type="uri_file"))
    second = ml_client.data.create_or_update(Data(name="patients", path=str(other), type="uri_file"))
    named = ml_client.data.create_or_update(Data(name="patients", version="2025.1", path=str(csv_file), type="uri_file"))
    assert (first.version, second.version, named.version) == ("1", "2", "2025.1")
    assert ml_client.data.get("patients", label="latest").version == "2025.1"
    assert [d.version for d in ml_client.data.list(name="patients")] == ["1", "2", "2025.1"]
    containers = list(ml_client.data.list())
    assert [(c.name, c.latest_version) for c in containers] == [("patients", "2025.1")]
    third = ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type="uri_file"))
    assert third.version == "3"  # one more than the largest number, ignoring named versions


def test_a_version_is_immutable_but_its_tags_are_not(ml_client, csv_file, tmp_path):
    from azure.ai.ml.exceptions import AssetPathException

    ml_client.data.create_or_update(Data(name="patients", version="1", path=str(csv_file), type="uri_file", tags={"a": "1"}))
    retagged = ml_client.data.create_or_update(
        Data(name="patients", version="1", path=str(csv_file), type="uri_file", tags={"a": "2"}, description="now described"))
    assert retagged.tags == {"a": "2"} and retagged.description == "now described"
    other = tmp_path / "other.csv"
    other.write_text("x\n1\n")
    with pytest.raises(AssetPathException):
        ml_client.data.create_or_update(Data(name="patients", version="1", path=str(other), type="uri_file"))
    assert ml_client.data.get("patients", version="1").tags == {"a": "2"}


def test_archive_hides_from_list_and_latest_and_restore_brings_back(ml_client, csv_file):
    from azure.ai.ml.constants import ListViewType

    for _ in range(2):
        ml_client.data.create_or_update(Data(name="patients", path=str(csv_file), type="uri_file"))
    ml_client.data.archive("patients", version="2")
    assert ml_client.data.get("patients", label="latest").version == "1"
    assert [d.version for d in ml_client.data.list("patients")] == ["1"]
    assert [d.version for d in ml_client.data.list("patients", list_view_type=ListViewType.ARCHIVED_ONLY)] == ["2"]
    assert ml_client.data.get("patients", version="2").version == "2"  # still readable by number
    ml_client.data.restore("patients", version="2")
    assert ml_client.data.get("patients", label="latest").version == "2"


def test_short_datastore_uri_is_stored_in_the_long_form(ml_client):
    asset = ml_client.data.create_or_update(
        Data(name="remote", path="azureml://datastores/workspaceblobstore/paths/raw/file.csv", type="uri_file"))
    assert asset.path == (f"azureml://subscriptions/{ml_client.subscription_id}/resourcegroups/"
                          f"{ml_client.resource_group_name}/workspaces/{ml_client.workspace_name}"
                          "/datastores/workspaceblobstore/paths/raw/file.csv")


def test_client_level_create_or_update_dispatches_as_the_sdk_does(ml_client, csv_file):
    # The SDK's MLClient.create_or_update takes jobs, models, environments, components and
    # datastores, not data assets: the simulation keeps that behaviour.
    with pytest.raises(TypeError):
        ml_client.create_or_update(Data(name="via-client", path=str(csv_file), type="uri_file"))
    store = ml_client.create_or_update(AzureBlobDatastore(name="via_client", account_name="st", container_name="c"))
    assert ml_client.datastores.get("via_client").container_name == store.container_name == "c"


def test_missing_things(ml_client, tmp_path):
    with pytest.raises(ResourceNotFoundError):
        ml_client.data.get("nothing", version="1")
    with pytest.raises(ResourceNotFoundError):
        ml_client.data.get("nothing", label="latest")
    # The SDK's DataOperations reports its validation errors as a formatted MlException.
    with pytest.raises(MlException, match="version or label") as raised:
        ml_client.data.get("nothing")
    assert type(raised.value) is MlException
    with pytest.raises(MlException, match="MLTable") as raised:
        ml_client.data.create_or_update(Data(name="t", path=str(tmp_path), type=AssetTypes.MLTABLE))
    assert type(raised.value) is MlException


def test_azureml_filesystem_browses_a_datastore_as_on_azure(ml_client, mltable_folder):
    from azureml.fsspec import AzureMachineLearningFileSystem

    asset = ml_client.data.create_or_update(
        Data(name="patients-folder", path=str(mltable_folder), type=AssetTypes.URI_FOLDER))
    workspace_uri = (f"azureml://subscriptions/{ml_client.subscription_id}/resourcegroups/"
                     f"{ml_client.resource_group_name}/workspaces/{ml_client.workspace_name}")
    datastore = AzureMachineLearningFileSystem(f"{workspace_uri}/datastores/workspaceblobstore")
    assert datastore.ls() == ["LocalUpload"]
    csv_files = datastore.glob("LocalUpload/**/*.csv")
    assert len(csv_files) == 1 and csv_files[0].endswith("patients-table/patients.csv")
    with datastore.open(csv_files[0]) as handle:
        assert pd.read_csv(handle).shape == (3, 2)
    assert AzureMachineLearningFileSystem(asset.path).ls() == ["MLTable", "patients.csv"]
    by_asset = AzureMachineLearningFileSystem(f"{workspace_uri}/data/patients-folder/versions/1")
    assert by_asset.ls() == ["MLTable", "patients.csv"]


def test_uris_of_an_unknown_workspace_or_datastore_fail_clearly(ml_client):
    bad_workspace = ("azureml://subscriptions/s/resourcegroups/g/workspaces/no-such-ws"
                     "/datastores/workspaceblobstore/paths/x.csv")
    with pytest.raises(FileNotFoundError, match="no-such-ws"):
        pd.read_csv(bad_workspace)
    bad_store = (f"azureml://subscriptions/s/resourcegroups/g/workspaces/{ml_client.workspace_name}"
                 "/datastores/nostore/paths/x.csv")
    with pytest.raises(ResourceNotFoundError, match="nostore"):
        pd.read_csv(bad_store)
