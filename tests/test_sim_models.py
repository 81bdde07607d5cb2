"""Registering, reading and downloading models in the simulated workspace, as a learner does."""
from __future__ import annotations

import filecmp
import os
import pickle

import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model
from azure.ai.ml.exceptions import AssetPathException, ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from helpers import sklearn_pins

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def pickled_model(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return path


@pytest.fixture
def mlflow_folder(tmp_path):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    folder = tmp_path / "diabetes_model"
    mlflow.sklearn.save_model(model, str(folder), pip_requirements=sklearn_pins())
    return folder


def test_custom_model_from_a_file(ml_client, pickled_model):
    model = ml_client.models.create_or_update(
        Model(name="diabetes-pkl", path=pickled_model, type=AssetTypes.CUSTOM_MODEL, description="pickled"))
    assert model.version == "1"
    assert model.type == "custom_model"
    assert model.description == "pickled"
    assert str(model.path).startswith("azureml://subscriptions/")
    assert "/datastores/workspaceblobstore/paths/" in str(model.path)
    assert str(model.path).endswith("/model.pkl")
    assert model.id.endswith("/models/diabetes-pkl/versions/1")
    again = ml_client.models.get("diabetes-pkl", version="1")
    assert (again.name, again.version, again.path) == ("diabetes-pkl", "1", model.path)
    assert again.creation_context.created_at is not None


def test_versions_auto_explicit_and_latest(ml_client, pickled_model, tmp_path):
    first = ml_client.models.create_or_update(Model(name="clf", path=pickled_model))
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": [1, 2]}))
    second = ml_client.models.create_or_update(Model(name="clf", path=other))
    explicit = ml_client.models.create_or_update(Model(name="clf", version="7", path=other))
    after = ml_client.create_or_update(Model(name="clf", path=pickled_model))  # client-level dispatch
    assert [first.version, second.version, explicit.version, after.version] == ["1", "2", "7", "8"]
    assert ml_client.models.get("clf", label="latest").version == "8"
    assert sorted(m.version for m in ml_client.models.list(name="clf")) == ["1", "2", "7", "8"]
    containers = list(ml_client.models.list())
    assert [c.name for c in containers] == ["clf"]
    assert containers[0].latest_version == "8"


def test_a_version_cannot_change_its_files(ml_client, pickled_model, tmp_path):
    ml_client.models.create_or_update(Model(name="fixed", version="1", path=pickled_model))
    other = tmp_path / "other.pkl"
    other.write_bytes(b"different bytes")
    with pytest.raises(AssetPathException):
        ml_client.models.create_or_update(Model(name="fixed", version="1", path=other))
    assert ml_client.models.get("fixed", version="1").path.endswith("/model.pkl")


def test_only_tags_and_description_of_a_version_can_be_updated(ml_client, pickled_model):
    """"Work with models", Update: only description and tags can be updated; a new stage takes
    a new version."""
    ml_client.models.create_or_update(Model(name="tagged", path=pickled_model, tags={"team": "a"}))
    model = ml_client.models.get("tagged", version="1")
    assert model.stage == "Development"
    model.tags["accuracy"] = "0.91"
    model.description = "now described"
    ml_client.models.create_or_update(model)
    updated = ml_client.models.get("tagged", version="1")
    assert updated.tags == {"team": "a", "accuracy": "0.91"}
    assert updated.description == "now described"
    updated.stage = "Production"
    with pytest.raises(HttpResponseError, match="only the description and tags") as refused:
        ml_client.models.create_or_update(updated)
    assert refused.value.status_code == 400
    assert ml_client.models.get("tagged", version="1").stage == "Development"
    ml_client.models.create_or_update(Model(name="tagged", path=pickled_model, stage="Production"))
    assert sorted(m.version for m in ml_client.models.list(name="tagged")) == ["1", "2"]
    assert [m.version for m in ml_client.models.list(name="tagged", stage="Production")] == ["2"]
    assert list(ml_client.models.list(name="tagged", stage="Archived")) == []


def test_download_a_file_model(ml_client, pickled_model, tmp_path):
    ml_client.models.create_or_update(Model(name="pkl", path=pickled_model))
    target = tmp_path / "downloads"
    ml_client.models.download("pkl", version="1", download_path=target)
    downloaded = target / "pkl" / "model.pkl"
    assert downloaded.read_bytes() == pickled_model.read_bytes()
    assert pickle.loads(downloaded.read_bytes()).predict([[3.0]])[0] == 1


def test_mlflow_model_folder_round_trip(ml_client, mlflow_folder, tmp_path):
    model = ml_client.models.create_or_update(
        Model(name="diabetes-mlflow", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL))
    assert model.type == "mlflow_model"
    assert str(model.path).endswith("/diabetes_model")
    assert "sklearn" in model.flavors and "python_function" in model.flavors
    assert model.flavors["python_function"]["loader_module"] == "mlflow.sklearn"

    target = tmp_path / "downloads"
    ml_client.models.download("diabetes-mlflow", version=model.version, download_path=str(target))
    downloaded = target / "diabetes-mlflow" / "diabetes_model"
    assert (downloaded / "MLmodel").is_file()
    comparison = filecmp.dircmp(mlflow_folder, downloaded)
    assert sorted(comparison.same_files) == sorted(p.name for p in mlflow_folder.iterdir() if p.is_file())
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files

    import mlflow.pyfunc

    assert list(mlflow.pyfunc.load_model(str(downloaded)).predict([[0.0], [3.0]])) == [0, 1]


def test_invalid_mlflow_models_are_refused(ml_client, tmp_path, pickled_model):
    no_mlmodel = tmp_path / "no_mlmodel"
    no_mlmodel.mkdir()
    (no_mlmodel / "model.pkl").write_bytes(b"x")
    with pytest.raises(ValidationException, match="MLmodel"):
        ml_client.models.create_or_update(Model(name="bad", path=no_mlmodel, type=AssetTypes.MLFLOW_MODEL))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: [this is: not\n  valid")
    with pytest.raises(ValidationException, match="MLmodel"):
        ml_client.models.create_or_update(Model(name="bad", path=broken, type=AssetTypes.MLFLOW_MODEL))

    with pytest.raises(ValidationException):
        ml_client.models.create_or_update(Model(name="bad", path=pickled_model, type=AssetTypes.MLFLOW_MODEL))

    assert list(ml_client.models.list()) == []


@pytest.mark.parametrize("uri, kind", [
    ("azureml://jobs/sleepy_kiwi_1234/outputs/artifacts/paths/model/", AssetTypes.MLFLOW_MODEL),
    # The form Microsoft's AutoML samples use: the artifacts output's path with no paths/.
    ("azureml://jobs/sleepy_kiwi_1234/outputs/artifacts/outputs/model.pkl", AssetTypes.CUSTOM_MODEL),
])
def test_model_from_a_job_output_is_stored_as_given(ml_client, uri, kind):
    model = ml_client.models.create_or_update(Model(name="from-job", path=uri, type=kind))
    assert model.path == uri
    assert model.job_name == "sleepy_kiwi_1234"
    assert ml_client.models.get("from-job", version="1").path == uri


def test_archive_and_restore(ml_client, pickled_model, tmp_path):
    other = tmp_path / "other.pkl"
    other.write_bytes(b"v2")
    ml_client.models.create_or_update(Model(name="arch", path=pickled_model))
    ml_client.models.create_or_update(Model(name="arch", path=other))
    ml_client.models.archive("arch", version="2")
    assert [m.version for m in ml_client.models.list(name="arch")] == ["1"]
    assert ml_client.models.get("arch", label="latest").version == "1"
    assert ml_client.models.get("arch", version="2").version == "2"  # still readable by number
    ml_client.models.restore("arch", version="2")
    assert ml_client.models.get("arch", label="latest").version == "2"

    ml_client.models.archive("arch")
    assert list(ml_client.models.list()) == []
    from azure.ai.ml.constants import ListViewType

    assert [m.name for m in ml_client.models.list(list_view_type=ListViewType.ARCHIVED_ONLY)] == ["arch"]


def test_missing_models_are_not_found(ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.models.get("nothing", version="1")
    with pytest.raises(ResourceNotFoundError):
        ml_client.models.get("nothing", label="latest")
    with pytest.raises(ValidationException):
        ml_client.models.get("nothing")
