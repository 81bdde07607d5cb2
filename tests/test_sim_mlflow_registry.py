"""MLflow against the simulated workspace as on Azure ML: the default tracking URI of a compute
instance, one model registry shared with ``ml_client.models``, and the documented subset of
MLflow the workspace supports."""
from __future__ import annotations

import json
import os

import pytest
from azure.ai.ml import command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model

from helpers import sklearn_pins, write_files

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"  # a subscription id as config.json holds one

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def fitted_model():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pytest.fixture
def mlflow_folder(tmp_path):
    import mlflow.sklearn

    folder = tmp_path / "diabetes_model"
    mlflow.sklearn.save_model(fitted_model(), str(folder), pip_requirements=sklearn_pins())
    return folder


@pytest.fixture
def run_with_model(ml_client):
    """A notebook run that logged an MLflow model under ``model``, no tracking URI set."""
    import mlflow

    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.8)
        mlflow.sklearn.log_model(fitted_model(), name="model", pip_requirements=sklearn_pins())
    return run


# -- the tracking URI, as on a compute instance -------------------------------------------------
def test_mlflow_talks_to_the_workspace_once_a_client_exists(ml_client, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    workspace_uri = ml_client.workspaces.get().mlflow_tracking_uri
    assert mlflow.get_tracking_uri() == workspace_uri
    assert mlflow.get_registry_uri() == workspace_uri
    mlflow.set_experiment("compute-instance")
    assert "compute-instance" in [e.name for e in mlflow.search_experiments()]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_tracking_uri_the_learner_set_wins(sim_root, tmp_path, monkeypatch):
    import mlflow

    from labkit import sim

    own = (tmp_path / "own-mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)
    try:
        sim.connect(root=sim_root)
        assert mlflow.get_tracking_uri() == own
    finally:
        sim.deactivate()
    assert os.environ["MLFLOW_TRACKING_URI"] == own


def test_activate_with_a_configured_workspace_sets_the_tracking_uri(sim_root, tmp_path, monkeypatch):
    import mlflow

    from labkit import sim

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "config.json").write_text(json.dumps(
        {"subscription_id": SUBSCRIPTION, "resource_group": "rg-1", "workspace_name": "ws-configured"}))
    monkeypatch.chdir(tmp_path)
    with sim.activate(root=sim_root):
        assert mlflow.get_tracking_uri().endswith("/ws-configured/mlflow")
        assert mlflow.search_experiments()  # the workspace's Default experiment
    assert "MLFLOW_TRACKING_URI" not in os.environ


# -- one model registry ---------------------------------------------------------------------------
def test_a_model_registered_with_mlflow_is_a_workspace_model(ml_client, run_with_model):
    import mlflow

    version = mlflow.register_model(f"runs:/{run_with_model.info.run_id}/model", "diabetes-mlflow")
    assert version.version == "1"
    model = ml_client.models.get("diabetes-mlflow", version="1")
    assert model.type == AssetTypes.MLFLOW_MODEL
    assert "/datastores/workspaceartifactstore/paths/ExperimentRun/" in str(model.path)
    assert str(model.path).endswith("/model")
    assert model.job_name == run_with_model.info.run_id
    assert "sklearn" in model.flavors
    assert [m.name for m in ml_client.models.list()] == ["diabetes-mlflow"]


def test_log_model_with_a_registered_name_registers_in_the_workspace(ml_client):
    import mlflow

    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(fitted_model(), name="model", registered_model_name="diabetes-logged",
                                 pip_requirements=sklearn_pins())
    model = ml_client.models.get("diabetes-logged", version="1")
    assert model.type == AssetTypes.MLFLOW_MODEL and model.job_name == run.info.run_id


def test_a_workspace_model_is_an_mlflow_registered_model(ml_client, mlflow_folder):
    import mlflow
    from mlflow.tracking import MlflowClient

    created = ml_client.models.create_or_update(
        Model(name="diabetes-sdk", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL, description="from the SDK",
              tags={"team": "dp100"}))
    client = MlflowClient()
    assert [m.name for m in client.search_registered_models()] == ["diabetes-sdk"]
    version = client.get_model_version("diabetes-sdk", created.version)
    assert version.source == created.path and version.description == "from the SDK"
    assert version.tags == {"team": "dp100"}
    loaded = mlflow.pyfunc.load_model(f"models:/diabetes-sdk/{created.version}")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]


def test_versions_are_one_sequence_across_both(ml_client, run_with_model, mlflow_folder):
    import mlflow

    first = mlflow.register_model(f"runs:/{run_with_model.info.run_id}/model", "diabetes")
    second = ml_client.models.create_or_update(Model(name="diabetes", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL))
    third = mlflow.register_model(f"file://{mlflow_folder}", "diabetes")
    assert [first.version, second.version, third.version] == ["1", "2", "3"]
    assert sorted(m.version for m in ml_client.models.list(name="diabetes")) == ["1", "2", "3"]
    latest = mlflow.MlflowClient().get_registered_model("diabetes").latest_versions
    assert [v.version for v in latest] == ["3"]


def test_edits_through_mlflow_show_in_the_sdk(ml_client, mlflow_folder):
    from mlflow.tracking import MlflowClient

    ml_client.models.create_or_update(Model(name="edited", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL))
    client = MlflowClient()
    client.update_model_version("edited", "1", description="My classifier description")
    client.set_model_version_tag("edited", "1", "type", "classification")
    model = ml_client.models.get("edited", "1")
    assert model.description == "My classifier description" and model.tags == {"type": "classification"}
    client.delete_model_version_tag("edited", "1", "type")
    assert ml_client.models.get("edited", "1").tags == {}
    client.delete_model_version("edited", "1")
    assert list(ml_client.models.list(name="edited")) == []


def test_stages_are_kept_by_mlflow_only(ml_client, mlflow_folder):
    import mlflow
    from mlflow.tracking import MlflowClient

    for _ in range(2):
        ml_client.models.create_or_update(Model(name="staged", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL))
    client = MlflowClient()
    client.transition_model_version_stage("staged", version="1", stage="Staging")
    client.transition_model_version_stage("staged", version="2", stage="Staging", archive_existing_versions=True)
    assert [v.version for v in client.get_latest_versions("staged", stages=["Staging"])] == ["2"]
    assert client.get_model_version("staged", "1").current_stage == "Archived"
    # Stages cannot be retrieved with the Azure ML SDK: its own stage stays as registered.
    assert ml_client.models.get("staged", "2").stage == "Development"
    assert list(mlflow.pyfunc.load_model("models:/staged/Staging").predict([[3.0]])) == [1]


def test_what_the_workspace_registry_refuses(ml_client, mlflow_folder, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    ml_client.models.create_or_update(Model(name="fixed", path=mlflow_folder, type=AssetTypes.MLFLOW_MODEL))
    client = MlflowClient()
    with pytest.raises(MlflowException, match="Renaming"):
        client.rename_registered_model("fixed", "renamed")
    with pytest.raises(MlflowException, match="delete its versions"):
        client.delete_registered_model("fixed")
    with pytest.raises(MlflowException, match="LIKE"):
        client.search_registered_models(filter_string="name LIKE 'fix%'")
    with pytest.raises(MlflowException, match="by tag"):
        client.search_registered_models(filter_string="tags.team = 'dp100'")
    assert [m.name for m in client.search_registered_models(filter_string="name = 'fixed'")] == ["fixed"]
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "weights.bin").write_bytes(b"\0")
    with pytest.raises(MlflowException, match="MLmodel"):
        mlflow.register_model(f"file://{not_a_model}", "fixed")
    assert [m.version for m in ml_client.models.list(name="fixed")] == ["1"]


# -- the support matrix for querying runs ---------------------------------------------------------
@pytest.mark.parametrize("order_by", ["metrics.auc DESC", "params.depth", "tags.team ASC"])
def test_ordering_runs_by_metrics_params_or_tags_is_refused(ml_client, run_with_model, order_by):
    import mlflow
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="sort the returned DataFrame with pandas"):
        mlflow.search_runs(experiment_names=["registry-test"], order_by=[order_by])


def test_ordering_by_attributes_and_supported_filters_work(ml_client, run_with_model):
    import mlflow

    mlflow.set_experiment("registry-test")
    with mlflow.start_run():
        mlflow.log_param("estimator", "tree")
        mlflow.set_tag("team", "dp100")
        mlflow.log_metric("auc", 0.9)
    newest_first = mlflow.search_runs(experiment_names=["registry-test"], order_by=["start_time DESC"], max_results=1)
    assert newest_first.loc[0, "metrics.auc"] == pytest.approx(0.9)
    query = "metrics.auc > 0.85 and tags.team = 'dp100' and params.estimator LIKE 'tr%'"
    assert len(mlflow.search_runs(experiment_names=["registry-test"], filter_string=query)) == 1
    assert len(mlflow.search_runs(experiment_names=["registry-test"], filter_string="params.estimator != 'x'")) == 1


@pytest.mark.parametrize("filter_string", [
    "tags.team != 'dp100'",                # != on tags
    "params.estimator ILIKE 'TR%'",        # params take =, != and LIKE only
    "metrics.`test-auc` > 0.5",            # metric names with escaped special characters
])
def test_unsupported_run_filters_are_refused(ml_client, run_with_model, filter_string):
    import mlflow
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="Azure Machine Learning does not support it"):
        mlflow.search_runs(experiment_names=["registry-test"], filter_string=filter_string)


def test_renaming_an_experiment_is_refused(ml_client, run_with_model):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with pytest.raises(MlflowException, match="Renaming an experiment"):
        MlflowClient().rename_experiment(run_with_model.info.experiment_id, "renamed")


# -- models logged by MLflow 3 inside a job -----------------------------------------------------------
def test_a_model_logged_in_a_job_registers_from_the_jobs_artifacts(ml_client, tmp_path, finished_job):
    import mlflow

    src = write_files(tmp_path / "src", {"train.py": """
        import mlflow
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        mlflow.sklearn.log_model(model, "model")
    """})
    job = ml_client.create_or_update(command(code=str(src), command="python train.py",
                                             environment="AzureML-sklearn-1.5@latest", experiment_name="log-models"))
    assert finished_job(ml_client, job.name).status == "Completed"
    registered = ml_client.models.create_or_update(Model(
        path=f"azureml://jobs/{job.name}/outputs/artifacts/paths/model/", name="mlflow-diabetes",
        description="Model created from run.", type=AssetTypes.MLFLOW_MODEL))
    assert "sklearn" in registered.flavors and registered.job_name == job.name
    assert list(mlflow.pyfunc.load_model(f"runs:/{job.name}/model").predict([[3.0]])) == [1]
    assert list(mlflow.pyfunc.load_model("models:/mlflow-diabetes/1").predict([[0.0]])) == [0]
    ml_client.models.download("mlflow-diabetes", "1", download_path=tmp_path / "dl")
    assert (tmp_path / "dl" / "mlflow-diabetes" / "model" / "MLmodel").is_file()
