"""Automated ML on the simulated workspace: the service's metrics, its refusals, and real searches."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from azure.ai.ml import Input, automl
from azure.ai.ml.automl import ClassificationModels
from azure.ai.ml.entities import Data, Model
from azure.ai.ml.exceptions import JobException
from azure.core.exceptions import HttpResponseError
from scipy.stats import spearmanr
from sklearn import metrics as skm

from labkit.sim import job_state
from labkit.sim.automl import (
    BEST_CHILD_TAG,
    classification_metrics,
    forecasting_metrics,
    norm_macro_recall,
    regression_metrics,
)

DATA = Path(__file__).resolve().parent.parent / "data"
MLTABLE = """paths:
  - file: ./data.csv
transformations:
  - read_delimited:
      delimiter: ','
      header: all_files_same_headers
"""


def wait(ml_client, name, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = ml_client.jobs.get(name)
        if job.status in job_state.TERMINAL_STATUSES:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not finish in {timeout}s (status {job.status})")


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


def test_a_target_column_missing_from_the_data_fails_the_job(ml_client, diabetes_table):
    job = automl.classification(training_data=Input(type="mltable", path=diabetes_table),
                                target_column_name="outcome", n_cross_validations=3)
    submitted = ml_client.jobs.create_or_update(job)  # the service reads the data only when the job runs
    with pytest.raises(JobException, match="Target column 'outcome' is not in training_data"):
        ml_client.jobs.stream(submitted.name)
    assert ml_client.jobs.get(submitted.name).status == "Failed"


# -- searches ------------------------------------------------------------------------------------------------
def test_classification_search_names_its_best_child_whose_model_registers_and_predicts(ml_client, diabetes_table,
                                                                                         tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    job = automl.classification(training_data=Input(type="mltable", path=diabetes_table),
                                target_column_name="diabetic", primary_metric="AUC_weighted",
                                n_cross_validations=3, experiment_name="automl-test")
    job.set_limits(timeout_minutes=1, max_trials=4)
    job.set_training(allowed_training_algorithms=["LightGBM", "LogisticRegression", "RandomForest"],
                     enable_stack_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = wait(ml_client, submitted.name)
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


def test_regression_search_stops_at_the_exit_score(ml_client, diabetes_table):
    job = automl.regression(training_data=Input(type="mltable", path=diabetes_table),
                            target_column_name="plasma_glucose_mg_dl", primary_metric="r2_score",
                            validation_data_size=0.25)
    job.set_limits(timeout_minutes=1, max_trials=10, exit_score=-1e9)  # any score reaches it
    job.set_training(allowed_training_algorithms=["ElasticNet", "LightGBM"], enable_vote_ensemble=False,
                     enable_stack_ensemble=False)
    submitted = ml_client.jobs.create_or_update(job)
    finished = wait(ml_client, submitted.name)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)
    children = list(ml_client.jobs.list(parent_job_name=submitted.name))
    assert len(children) == 1 and finished.tags[BEST_CHILD_TAG] == children[0].name
    log = (job_state.job_folder(ml_client._sim_workspace, submitted.name) / "user_logs" / "std_log.txt").read_text()
    assert "exit_score -1000000000.0 reached" in log


def test_forecasting_search_on_the_retail_data(ml_client, tmp_path):
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
    finished = wait(ml_client, submitted.name)
    assert finished.status == "Completed", job_state.error_of(ml_client._sim_workspace, submitted.name)
    log = (job_state.job_folder(ml_client._sim_workspace, submitted.name) / "user_logs" / "std_log.txt").read_text()
    assert "skipped: Prophet" in log and "rolling-origin" in log

    best = finished.tags[BEST_CHILD_TAG]
    mlflow.set_tracking_uri(ml_client.workspaces.get().mlflow_tracking_uri)
    try:
        nrmse = mlflow.get_run(best).data.metrics["normalized_root_mean_squared_error"]
        assert 0 < nrmse < 0.3
        model = mlflow.pyfunc.load_model(f"runs:/{best}/outputs/mlflow-model")
    finally:
        mlflow.set_tracking_uri(None)
    future = pd.DataFrame({"date": pd.date_range("2024-07-01", periods=14), "store_id": "S1", "product": "bread",
                           "price": 2.49, "on_promotion": False, "is_holiday": False})
    forecast = np.asarray(model.predict(future))
    assert forecast.shape == (14,) and np.all(np.isfinite(forecast)) and forecast.mean() > 20
