"""Automated ML on the simulated workspace: the service's metrics, its refusals, and real searches."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from azure.ai.ml import Input, automl
from azure.ai.ml.automl import ClassificationModels, ColumnTransformer
from azure.ai.ml.entities import Data, Model
from azure.ai.ml.exceptions import JobException
from azure.core.exceptions import HttpResponseError
from scipy.stats import spearmanr
from sklearn import metrics as skm

from helpers import workspace_tracking
from labkit.sim.jobs import job_state
from labkit.sim.jobs.automl.best_model import AUTOML_ENVIRONMENT, BEST_CHILD_TAG
from labkit.sim.jobs.automl.data import Plan, _featurizer
from labkit.sim.jobs.automl.metrics import (
    classification_metrics,
    forecasting_metrics,
    norm_macro_recall,
    regression_metrics,
)
from labkit.sim.jobs.automl.runtime.outputs import pickle_imports

DATA = Path(__file__).resolve().parent.parent / "data"
MLTABLE = """paths:
  - file: ./data.csv
transformations:
  - read_delimited:
      delimiter: ','
      header: all_files_same_headers
"""


def mltable_folder(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "data.csv", index=False)
    (folder / "MLTable").write_text(MLTABLE)
    return folder


@pytest.fixture
def diabetes_table(ml_client, tmp_path):
    frame = pd.read_csv(DATA / "diabetes.csv").head(300)
    folder = mltable_folder(tmp_path / "diabetes", frame)
    ml_client.data.create_or_update(Data(name="diabetes-table", version="1", path=str(folder), type="mltable"))
    return "azureml:diabetes-table:1"


# -- metrics ----------------------------------------------------------------------------------------------
def test_classification_metrics_match_scikit_learn_binary_and_multiclass():
    rng = np.random.default_rng(0)
    for n_classes in (2, 3):
        y = rng.integers(0, n_classes, 200)
        proba = rng.dirichlet(np.ones(n_classes), 200)
        proba[np.arange(200), y] += 0.4  # some signal
        proba /= proba.sum(axis=1, keepdims=True)
        ours = classification_metrics(y, proba, np.arange(n_classes))
        predicted = proba.argmax(axis=1)
        onehot = np.eye(n_classes)[y]
        assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
        expected_auc = (skm.roc_auc_score(y, proba[:, 1]) if n_classes == 2
                        else skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted"))
        assert ours["AUC_weighted"] == pytest.approx(expected_auc)
        assert ours["precision_score_weighted"] == pytest.approx(
            skm.precision_score(y, predicted, average="weighted", zero_division=0))
        assert ours["average_precision_score_weighted"] == pytest.approx(
            skm.average_precision_score(onehot, proba, average="weighted"))
        assert ours["log_loss"] == pytest.approx(skm.log_loss(y, proba))


def test_weighted_average_precision_averages_both_classes_in_the_binary_case():
    y = np.array([0, 0, 0, 1, 1])
    proba1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4])
    proba = np.column_stack([1 - proba1, proba1])
    per_class = [skm.average_precision_score(y == k, proba[:, k]) for k in (0, 1)]
    expected = (3 * per_class[0] + 2 * per_class[1]) / 5
    assert classification_metrics(y, proba, np.array([0, 1]))["average_precision_score_weighted"] == \
        pytest.approx(expected)


def test_norm_macro_recall_by_hand():
    # recalls 0.5 and 1.0: macro 0.75; chance for two classes is 0.5 -> (0.75 - 0.5) / 0.5
    assert norm_macro_recall([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    # three classes, recalls 1, 0.5, 0: macro 0.5; chance 1/3 -> (0.5 - 1/3) / (2/3) = 0.25
    assert norm_macro_recall([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 1]) == pytest.approx(0.25)
    assert norm_macro_recall([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_regression_metrics_match_scikit_learn_and_hand_computed_normalization():
    y_true, y_pred = [1.0, 2.0, 3.0, 5.0], [1.0, 3.0, 3.0, 3.0]
    ours = regression_metrics(y_true, y_pred)
    assert ours["r2_score"] == pytest.approx(skm.r2_score(y_true, y_pred))
    assert ours["root_mean_squared_error"] == pytest.approx(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert ours["spearman_correlation"] == pytest.approx(spearmanr(y_true, y_pred).statistic)
    # errors 0, 1, 0, 2: MAE 0.75, RMSE sqrt(5/4); the range of the target is 5 - 1 = 4
    assert ours["normalized_mean_absolute_error"] == pytest.approx(0.75 / 4)
    assert ours["normalized_root_mean_squared_error"] == pytest.approx(math.sqrt(1.25) / 4)
    # the range of all the data the job was given, not of these rows
    wider = regression_metrics(y_true, y_pred, y_min=0.0, y_max=10.0)
    assert wider["normalized_mean_absolute_error"] == pytest.approx(0.075)


def test_forecasting_normalizes_per_series_then_averages():
    y_true = [10.0, 20.0, 100.0, 300.0]
    y_pred = [12.0, 18.0, 150.0, 250.0]
    series = ["a", "a", "b", "b"]
    ranges = {"a": (0.0, 20.0), "b": (100.0, 300.0)}
    ours = forecasting_metrics(y_true, y_pred, series, ranges)
    # series a: MAE 2 over range 20 = 0.1; series b: MAE 50 over range 200 = 0.25
    assert ours["normalized_mean_absolute_error"] == pytest.approx((0.1 + 0.25) / 2)
    assert ours["normalized_root_mean_squared_error"] == pytest.approx((2 / 20 + 50 / 200) / 2)


# -- refusals -----------------------------------------------------------------------------------------------
def test_refusals(ml_client, diabetes_table, tmp_path):
    def classification(**kw):
        spec = dict(training_data=Input(type="mltable", path=diabetes_table), target_column_name="diabetic",
                    primary_metric="accuracy", n_cross_validations=3)
        spec.update(kw)
        return automl.classification(**spec)

    with pytest.raises(KeyError):  # the SDK's own check: not a classification metric
        automl.classification(training_data=Input(type="mltable", path=diabetes_table),
                              target_column_name="diabetic", primary_metric="r2_score")
    job = classification()
    job._primary_metric = "R2Score"  # past the SDK's setter: the service refuses it
    with pytest.raises(HttpResponseError, match="not supported for classification") as error:
        ml_client.jobs.create_or_update(job)
    assert error.value.status_code == 400

    job = classification()
    job.set_training(blocked_training_algorithms=[m.value for m in ClassificationModels])
    with pytest.raises(HttpResponseError, match="Every training algorithm is blocked"):
        ml_client.jobs.create_or_update(job)
    job = classification()
    job.set_training(allowed_training_algorithms=["LightGBM"], blocked_training_algorithms=["LightGBM"])
    with pytest.raises(HttpResponseError, match="Every training algorithm is blocked"):
        ml_client.jobs.create_or_update(job)

    forecast = automl.forecasting(training_data=Input(type="mltable", path=diabetes_table),
                                  target_column_name="diabetic", n_cross_validations=2)
    with pytest.raises(HttpResponseError, match="time column"):
        ml_client.jobs.create_or_update(forecast)

    csv = tmp_path / "plain.csv"
    pd.read_csv(DATA / "diabetes.csv").head(50).to_csv(csv, index=False)
    with pytest.raises(HttpResponseError, match="not an MLTable folder"):
        ml_client.jobs.create_or_update(classification(training_data=Input(type="uri_file", path=str(csv))))
    ml_client.data.create_or_update(Data(name="plain-csv", version="1", path=str(csv), type="uri_file"))
    with pytest.raises(HttpResponseError, match="needs an mltable data asset"):
        ml_client.jobs.create_or_update(classification(training_data=Input(type="mltable",
                                                                           path="azureml:plain-csv:1")))
    with pytest.raises(HttpResponseError, match="either validation_data or n_cross_validations"):
        ml_client.jobs.create_or_update(classification(validation_data=Input(type="mltable", path=diabetes_table)))
    assert list(ml_client.jobs.list()) == []  # nothing refused was recorded


# -- featurization ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, imputer, encoder", [("auto", "mean", "onehot"), ("custom", "median", "ordinal")])
def test_featurization_customizations_apply_in_custom_mode_only(mode, imputer, encoder):
    """The SDK sends blocked transformers, column types and transformer parameters whatever the
    mode; the service applies them with mode="custom" (REST API, featurization mode)."""
    job = automl.classification(training_data=Input(type="mltable", path="azureml:diabetes-table:1"),
                                target_column_name="diabetic", primary_metric="accuracy", n_cross_validations=3)
    job.set_featurization(mode=mode, blocked_transformers=["OneHotEncoder"],
                          column_name_and_types={"pregnancies": "Categorical"},
                          transformer_params={"imputer": [ColumnTransformer(fields=["bmi"],
                                                                            parameters={"strategy": "median"})]})
    details = job._to_rest_object().as_dict()["properties"]["taskDetails"]
    assert details["featurizationSettings"]["transformerParams"]  # sent in both modes
    plan = Plan(task="Classification", target="diabetic", metric="accuracy", limits={}, training={},
                featurization=details["featurizationSettings"])
    frame = pd.read_csv(DATA / "diabetes.csv").head(200)
    lines = []
    _, spec = _featurizer(plan, frame, lines.append)
    settings = spec["settings"]
    assert (settings["numeric_imputer"], settings["categorical_encoder"]) == (imputer, encoder)
    assert (settings["kinds"]["pregnancies"] == "categorical") is (mode == "custom")
    assert any("take effect only with mode='custom'" in line for line in lines) is (mode == "auto")


def test_a_target_column_missing_from_the_data_fails_the_job(ml_client, diabetes_table):
    job = automl.classification(training_data=Input(type="mltable", path=diabetes_table),
                                target_column_name="outcome", n_cross_validations=3)
    submitted = ml_client.jobs.create_or_update(job)  # the service reads the data only when the job runs
    with pytest.raises(JobException, match="Target column 'outcome' is not in training_data"):
        ml_client.jobs.stream(submitted.name)
    assert ml_client.jobs.get(submitted.name).status == "Failed"


# -- searches ------------------------------------------------------------------------------------------------
def test_classification_search_names_its_best_child_whose_model_registers_and_predicts(ml_client, diabetes_table,
                                                                                         tmp_path, finished_job):
    import mlflow
    from mlflow.tracking import MlflowClient

    job = automl.classification(training_data=Input(type="mltable", path=diabetes_table),
                                target_column_name="diabetic", primary_metric="AUC_weighted",
                                n_cross_validations=3, experiment_name="automl-test")
    job.set_limits(timeout_minutes=1, max_trials=4)
    job.set_training(allowed_training_algorithms=["LightGBM", "LogisticRegression", "RandomForest"],
                     enable_stack_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = finished_job(ml_client, submitted.name, timeout=240)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)

    children = list(ml_client.jobs.list(parent_job_name=submitted.name))
    assert 2 <= len(children) <= 4
    assert all(c.status == "Completed" for c in children)
    assert submitted.name not in [c.name for c in children]
    assert {c.properties["run_algorithm"] for c in children} <= {"LightGBM", "LogisticRegression", "RandomForest",
                                                                  "VotingEnsemble"}
    best = finished.tags[BEST_CHILD_TAG]
    scores = {c.name: float(c.properties["score"]) for c in children}
    assert scores[best] == max(scores.values())
    assert finished.properties["primary_metric"] == "AUC_weighted"

    client = MlflowClient(tracking_uri=ml_client.workspaces.get().mlflow_tracking_uri)
    assert client.get_run(submitted.name).data.tags[BEST_CHILD_TAG] == best
    best_run = client.get_run(best)
    assert best_run.data.metrics["AUC_weighted"] == pytest.approx(scores[best])
    assert {"accuracy", "norm_macro_recall", "precision_score_weighted"} <= set(best_run.data.metrics)
    assert best_run.data.tags["mlflow.parentRunId"] == submitted.name
    assert best_run.data.params  # its hyperparameters

    model = ml_client.models.create_or_update(Model(
        name="diabetes-automl", type="mlflow_model",
        path=f"azureml://jobs/{best}/outputs/artifacts/paths/outputs/mlflow-model/"))
    assert "sklearn" in model.flavors and model.job_name == best
    ml_client.models.download("diabetes-automl", version=model.version, download_path=tmp_path / "dl")
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "dl" / "diabetes-automl" / "mlflow-model"))
    rows = pd.read_csv(DATA / "diabetes.csv").iloc[5000:5010].drop(columns=["diabetic"])
    assert set(np.asarray(loaded.predict(rows))) <= {0, 1}


def test_regression_search_stops_at_the_exit_score(ml_client, diabetes_table, finished_job):
    job = automl.regression(training_data=Input(type="mltable", path=diabetes_table),
                            target_column_name="plasma_glucose_mg_dl", primary_metric="r2_score",
                            validation_data_size=0.25)
    job.set_limits(timeout_minutes=1, max_trials=10, exit_score=-1e9)  # any score reaches it
    job.set_training(allowed_training_algorithms=["ElasticNet", "LightGBM"], enable_vote_ensemble=False,
                     enable_stack_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = finished_job(ml_client, submitted.name, timeout=240)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)
    children = list(ml_client.jobs.list(parent_job_name=submitted.name))
    assert len(children) == 1 and finished.tags[BEST_CHILD_TAG] == children[0].name
    log = (job_state.job_folder(ml_client._sim_workspace, submitted.name) / "user_logs" / "std_log.txt").read_text()
    assert "exit_score -1000000000.0 reached" in log


def test_forecasting_search_on_the_retail_data(ml_client, tmp_path, finished_job):
    import mlflow

    frame = pd.read_csv(DATA / "retail_demand.csv")
    frame = frame[(frame["store_id"] == "S1") & frame["product"].isin(["bread", "ice_cream"])]
    folder = mltable_folder(tmp_path / "retail", frame)
    job = automl.forecasting(training_data=Input(type="mltable", path=str(folder)), target_column_name="units_sold",
                             primary_metric="normalized_root_mean_squared_error", n_cross_validations=2)
    job.set_forecast_settings(time_column_name="date", forecast_horizon=14, frequency="D",
                              time_series_id_column_names=["store_id", "product"], target_lags=[1, 7],
                              target_rolling_window_size=7)
    job.set_limits(timeout_minutes=1, max_trials=3)
    job.set_training(allowed_training_algorithms=["LightGBM", "ElasticNet", "Prophet"], enable_vote_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = finished_job(ml_client, submitted.name, timeout=240)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)
    log = (job_state.job_folder(ml_client._sim_workspace, submitted.name) / "user_logs" / "std_log.txt").read_text()
    assert "skipped: Prophet" in log and "rolling-origin" in log

    best = finished.tags[BEST_CHILD_TAG]
    with workspace_tracking(ml_client):
        nrmse = mlflow.get_run(best).data.metrics["normalized_root_mean_squared_error"]
        assert 0 < nrmse < 0.3
        model = mlflow.pyfunc.load_model(f"runs:/{best}/outputs/mlflow-model")
        pickled = Path(mlflow.artifacts.download_artifacts(run_id=best, artifact_path="outputs/model.pkl",
                                                           dst_path=str(tmp_path / "forecast")))
    # The target history travels as pandas tables in standard steps, not in a class of the simulation's.
    assert not {m for m in pickle_imports(pickled.read_bytes()) if m.split(".")[0] in INTERNALS}
    future = pd.DataFrame({"date": pd.date_range("2024-07-01", periods=14), "store_id": "S1", "product": "bread",
                           "price": 2.49, "on_promotion": False, "is_holiday": False})
    forecast = np.asarray(model.predict(future))
    assert forecast.shape == (14,) and np.all(np.isfinite(forecast)) and forecast.mean() > 20


# -- the best child's outputs, as Azure writes them ----------------------------------------------------------
# "How to use AutoML model outputs" and "Deploy an AutoML model to an online endpoint"
# (learn.microsoft.com); the azureml-examples AutoML notebooks download ``outputs`` of the best
# child with ``mlflow.artifacts.download_artifacts`` and deploy model.pkl with
# scoring_file_v_2_0_0.py and conda_env_v_1_0_0.yml.
BEST_CHILD_FILES = {"model.pkl", "conda_env_v_1_0_0.yml", "scoring_file_v_1_0_0.py", "scoring_file_v_2_0_0.py",
                    "generated_code", "mlflow-model"}
# A pickle that imports one of these would not load where only the model's libraries are installed.
INTERNALS = ("labkit", "flaml", "labkit_automl_runtime")


@pytest.fixture(scope="module")
def best_child_outputs(tmp_path_factory, finished_job):
    """One small AutoML job whose best model is XGBoost on a true/false target (the labels XGBoost
    cannot learn directly), and its best child's ``outputs/`` downloaded as the notebooks do."""
    import mlflow
    from mlflow.artifacts import download_artifacts

    from labkit import sim

    work = tmp_path_factory.mktemp("automl-outputs")
    ml_client = sim.connect(root=work / "workspaces")
    try:
        frame = pd.read_csv(DATA / "diabetes.csv").head(300).astype({"diabetic": bool})
        frame["visit"] = pd.date_range("2024-01-01", periods=len(frame), freq="D")
        folder = mltable_folder(work / "table", frame)
        job = automl.classification(training_data=Input(type="mltable", path=str(folder)),
                                    target_column_name="diabetic", primary_metric="AUC_weighted",
                                    n_cross_validations=3)
        job.set_limits(timeout_minutes=1, max_trials=2)
        job.set_training(allowed_training_algorithms=["XGBoostClassifier"], enable_vote_ensemble=False,
                         enable_stack_ensemble=False)
        name = ml_client.jobs.create_or_update(job).name
        finished = finished_job(ml_client, name, timeout=240)
        assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, name)
        mlflow.set_tracking_uri(ml_client.workspaces.get().mlflow_tracking_uri)
        best = mlflow.MlflowClient().get_run(name).data.tags[BEST_CHILD_TAG]
        params = mlflow.MlflowClient().get_run(best).data.params
        local = Path(download_artifacts(run_id=best, artifact_path="outputs", dst_path=str(work / "download")))
    finally:
        mlflow.set_tracking_uri(None)
        sim.deactivate()
    rows = pd.read_csv(DATA / "diabetes.csv").iloc[5000:5003].drop(columns=["diabetic"])
    rows["visit"] = pd.Timestamp("2025-01-01")
    return {"outputs": local, "best": best, "params": params, "rows": rows}


def test_best_child_outputs_hold_the_files_azure_writes(best_child_outputs):
    outputs = best_child_outputs["outputs"]
    assert BEST_CHILD_FILES <= {p.name for p in outputs.iterdir()}
    assert {"script.py", "conda_environment.yaml"} <= {p.name for p in (outputs / "generated_code").iterdir()}
    assert {"MLmodel", "model.pkl", "conda.yaml"} <= {p.name for p in (outputs / "mlflow-model").iterdir()}
    conda = yaml.safe_load((outputs / "conda_env_v_1_0_0.yml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    names = {requirement.split("==")[0] for requirement in pip}
    assert {"scikit-learn", "inference-schema", "pandas"} <= names and any(n.startswith("xgboost") for n in names)
    assert not [n for n in names if n.startswith(INTERNALS)]


def test_the_mlmodel_carries_the_metadata_azure_sets(best_child_outputs):
    from labkit.sim.assets.curated import find_curated

    mlmodel = yaml.safe_load((best_child_outputs["outputs"] / "mlflow-model" / "MLmodel").read_text())
    assert mlmodel["metadata"]["azureml.engine"] == "automl"
    image = mlmodel["metadata"]["azureml.base_image"]
    curated = find_curated(AUTOML_ENVIRONMENT)
    if curated is not None:  # the notebooks name the training environment after the image's version
        assert image == curated.image
    assert image.startswith("mcr.microsoft.com/azureml/curated/ai-ml-automl:")
    assert mlmodel["run_id"] == best_child_outputs["best"]
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "pickle"
    assert "code" not in mlmodel["flavors"]["python_function"]  # no simulation module travels with it
    text = json.dumps(mlmodel).lower() + json.dumps(best_child_outputs["params"]).lower()
    assert not [word for word in ("flaml", "labkit", "sim_") if word in text]


def test_model_pkl_unpickles_without_labkit_or_flaml(best_child_outputs):
    """A fresh interpreter with this repository off sys.path and labkit and FLAML blocked."""
    model = best_child_outputs["outputs"] / "model.pkl"
    assert not {m for m in pickle_imports(model.read_bytes()) if m.split(".")[0] in INTERNALS}
    rows = best_child_outputs["rows"]
    program = f"""
import sys
sys.path = [p for p in sys.path if p and p.rstrip("/") != {str(Path(__file__).resolve().parent.parent)!r}]
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {INTERNALS!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import joblib, pandas as pd
model = joblib.load({str(model)!r})
rows = pd.read_json(sys.stdin, orient="split", convert_dates=["visit"])
print(list(model.predict(rows)), model.predict_proba(rows).shape)
"""
    done = subprocess.run([sys.executable, "-I", "-c", program], input=rows.to_json(orient="split"),
                          capture_output=True, text=True, cwd="/", timeout=120)
    assert done.returncode == 0, done.stderr
    predictions, shape = done.stdout.strip().rsplit(" (", 1)
    assert set(eval(predictions)) <= {True, False} and shape.startswith("3, 2")


def test_the_scoring_files_score_rows_sent_as_the_notebooks_send_them(best_child_outputs, monkeypatch):
    import importlib.util

    outputs = best_child_outputs["outputs"]
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(outputs))
    records = json.loads(best_child_outputs["rows"].to_json(orient="records", date_format="iso"))

    def load(name):
        spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), outputs / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.init()
        return module

    v2 = load("scoring_file_v_2_0_0.py")
    answer = v2.run({"data": records}, {"method": "predict_proba"})  # the decorators convert the records
    probabilities = np.asarray(answer["Results"])
    assert probabilities.shape == (3, 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert set(v2.run({"data": records})["Results"]) <= {True, False}
    with pytest.raises(ValueError, match="method must be one of"):
        v2.run({"data": records}, {"method": "transform"})
    v1 = load("scoring_file_v_1_0_0.py")
    assert set(json.loads(v1.run(records))["result"]) <= {True, False}


def test_the_generated_script_retrains_the_pipeline(best_child_outputs, tmp_path):
    frame = pd.read_csv(DATA / "diabetes.csv").iloc[1000:1200].astype({"diabetic": bool})
    frame["visit"] = pd.date_range("2024-01-01", periods=len(frame), freq="D")
    table = mltable_folder(tmp_path / "retrain", frame)
    done = subprocess.run([sys.executable, str(best_child_outputs["outputs"] / "generated_code" / "script.py"),
                           "--training_dataset_uri", str(table)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "XGBClassifier(" in (best_child_outputs["outputs"] / "generated_code" / "script.py").read_text()
    assert (tmp_path / "outputs" / "model.pkl").is_file() and (tmp_path / "outputs" / "mlflow-model" / "MLmodel").is_file()


def test_a_table_whose_paths_are_datastore_uris_is_read_as_on_azure(ml_client, tmp_path, finished_job):
    # An MLTable file may list azureml:// paths (the data lake's files) instead of files beside
    # it; the service's AutoML reads them with the job's identity, as mltable.load does in a job.
    source = tmp_path / "lake.csv"
    pd.read_csv(DATA / "diabetes.csv").head(300).to_csv(source, index=False)
    uploaded = ml_client.data.create_or_update(Data(name="lake-file", version="1", path=str(source),
                                                    type="uri_file"))
    assert uploaded.path.startswith("azureml://")
    folder = tmp_path / "lake-table"
    folder.mkdir()
    (folder / "MLTable").write_text(MLTABLE.replace("./data.csv", uploaded.path))
    ml_client.data.create_or_update(Data(name="lake-table", version="1", path=str(folder), type="mltable"))

    job = automl.regression(training_data=Input(type="mltable", path="azureml:lake-table:1"),
                            target_column_name="plasma_glucose_mg_dl", primary_metric="r2_score",
                            validation_data_size=0.25)
    job.set_limits(timeout_minutes=1, max_trials=2, exit_score=-1e9)
    job.set_training(allowed_training_algorithms=["ElasticNet"], enable_vote_ensemble=False,
                     enable_stack_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = finished_job(ml_client, submitted.name, timeout=240)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)
