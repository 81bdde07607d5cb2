"""Automated ML jobs (``automl.classification`` / ``regression`` / ``forecasting``) that really search.

Submitting (``submit``, in the notebook's process) does what the service does before a job
starts: it serializes the job with the SDK, resolves the compute and the MLTable inputs, and
refuses what the service refuses (400). The parent job's worker (``run``) then searches with
FLAML: every trial FLAML evaluates becomes a child job (``<parent>_<n>``, listed by
``ml_client.jobs.list(parent_job_name=...)``) with its hyperparameters and metrics in its own
MLflow run; ensembles follow as the last children; the best child gets the model
(featurization + estimator in one scikit-learn pipeline of standard parts, so it loads without
labkit or FLAML) and the files Azure's AutoML writes beside it in its ``outputs/`` artifacts:
``model.pkl``, ``conda_env_v_1_0_0.yml``, the scoring files, ``generated_code/`` and the MLflow
model ``mlflow-model/`` (``automl_runtime/outputs.py``); the parent names it in the MLflow tag
and job tag ``automl_best_child_run_id``, as Azure's AutoML does.

What the service's algorithm names become here (``ALGORITHMS``): real scikit-learn, LightGBM
and XGBoost estimators, searched by FLAML's own learners where FLAML has one and by small
learners defined below where it does not. Names with no honest counterpart here (the
forecasting-only statistical and deep models: AutoArima, Prophet, Naive, SeasonalNaive,
Average, SeasonalAverage, ExponentialSmoothing, Arimax, TCNForecaster) are accepted at
submission, as the service accepts them, and skipped by the search with a line in the job's
log; a job left with nothing to try fails saying so.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from labkit.sim.core import references
from labkit.sim.jobs import job_state
from labkit.sim.core.base import bad_request
from labkit.sim.jobs.automl.runtime import featurization, outputs

BEST_CHILD_TAG = "automl_best_child_run_id"
MODEL_FOLDER = "outputs/mlflow-model"
# The curated environment Azure's AutoML trains in, and its image's short name.
AUTOML_ENVIRONMENT = "AzureML-ai-ml-automl"
AUTOML_IMAGE = "ai-ml-automl"
# The service: "terminate if there is no score improvement in the last 20 iterations".
EARLY_TERMINATION_ITERATIONS = 20
# The service's default timeout for an AutoML job when set_limits gives none: six days.
DEFAULT_TIMEOUT_MINUTES = 6 * 24 * 60
DEFAULT_MAX_TRIALS = 1000
ENSEMBLE_SIZE = 5
SEED = 42

# -- primary metrics: the REST enum value -> the metric's name in MLflow and its goal ---------------
PRIMARY_METRICS: dict[str, dict[str, str]] = {
    "Classification": {
        "AUCWeighted": "AUC_weighted",
        "Accuracy": "accuracy",
        "NormMacroRecall": "norm_macro_recall",
        "AveragePrecisionScoreWeighted": "average_precision_score_weighted",
        "PrecisionScoreWeighted": "precision_score_weighted",
    },
    "Regression": {
        "SpearmanCorrelation": "spearman_correlation",
        "NormalizedRootMeanSquaredError": "normalized_root_mean_squared_error",
        "R2Score": "r2_score",
        "NormalizedMeanAbsoluteError": "normalized_mean_absolute_error",
    },
}
PRIMARY_METRICS["Forecasting"] = dict(PRIMARY_METRICS["Regression"])
MINIMIZED = {"normalized_root_mean_squared_error", "normalized_mean_absolute_error", "root_mean_squared_error",
             "mean_absolute_error", "log_loss"}


# -- metrics, as the service defines them ---------------------------------------------------------------
def _one_hot(y_true, classes) -> np.ndarray:
    y_true = np.asarray(y_true)
    return (y_true[:, None] == np.asarray(classes)[None, :]).astype(int)


def norm_macro_recall(y_true, y_pred, n_classes: Optional[int] = None) -> float:
    """Macro recall rescaled so that random guessing scores 0 and a perfect model 1:
    ``(recall_macro - R) / (1 - R)`` with ``R = 1 / n_classes``, the macro recall expected
    of random predictions."""
    from sklearn.metrics import recall_score

    n_classes = n_classes or len(np.unique(np.asarray(y_true)))
    chance = 1.0 / n_classes
    return (recall_score(y_true, y_pred, average="macro", zero_division=0) - chance) / (1.0 - chance)


def classification_metrics(y_true, proba, classes) -> dict[str, float]:
    """The service's classification metrics from predicted class probabilities.

    Weighted averages weigh each class by its number of true instances; in the binary case
    both classes are averaged (the service's ``*_weighted`` metrics are not the positive
    class's score alone), which for AUC gives the usual binary AUC.
    """
    from sklearn import metrics as m

    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    y_pred = classes[np.argmax(proba, axis=1)]
    onehot = _one_hot(y_true, classes)
    present = onehot.sum(axis=0) > 0  # a class absent from this fold has no AUC of its own
    result = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, y_pred),
        "precision_score_weighted": m.precision_score(y_true, y_pred, average="weighted", zero_division=0),
        "precision_score_macro": m.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_score_weighted": m.recall_score(y_true, y_pred, average="weighted", zero_division=0),
        "recall_score_macro": m.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_score_weighted": m.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "f1_score_macro": m.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "norm_macro_recall": norm_macro_recall(y_true, y_pred, len(classes)),
        "matthews_correlation": m.matthews_corrcoef(y_true, y_pred),
        "log_loss": m.log_loss(y_true, np.clip(proba, 1e-15, 1.0), labels=classes),
    }
    if present.sum() >= 2:
        result["AUC_weighted"] = m.roc_auc_score(onehot[:, present], proba[:, present], average="weighted")
        result["AUC_macro"] = m.roc_auc_score(onehot[:, present], proba[:, present], average="macro")
        result["AUC_micro"] = m.roc_auc_score(onehot, proba, average="micro")
        result["average_precision_score_weighted"] = m.average_precision_score(
            onehot[:, present], proba[:, present], average="weighted")
        result["average_precision_score_macro"] = m.average_precision_score(
            onehot[:, present], proba[:, present], average="macro")
    return {key: float(value) for key, value in result.items()}


def regression_metrics(y_true, y_pred, y_min: Optional[float] = None, y_max: Optional[float] = None) -> dict:
    """The service's regression metrics. The normalized errors divide by the range of the
    target, ``y_max - y_min``, taken over the data the job was given (not just the
    validation rows), so that scores of folds and models compare."""
    from scipy.stats import spearmanr
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    y_min = float(np.min(y_true)) if y_min is None else float(y_min)
    y_max = float(np.max(y_true)) if y_max is None else float(y_max)
    spread = (y_max - y_min) or 1.0  # a constant target: the errors stay unnormalized
    rmse = math.sqrt(m.mean_squared_error(y_true, y_pred))
    mae = m.mean_absolute_error(y_true, y_pred)
    median_ae = m.median_absolute_error(y_true, y_pred)
    rho = spearmanr(y_true, y_pred).statistic if np.ptp(y_true) and np.ptp(y_pred) else 0.0
    result = {
        "root_mean_squared_error": rmse,
        "mean_absolute_error": mae,
        "median_absolute_error": median_ae,
        "normalized_root_mean_squared_error": rmse / spread,
        "normalized_mean_absolute_error": mae / spread,
        "normalized_median_absolute_error": median_ae / spread,
        "r2_score": m.r2_score(y_true, y_pred),
        "explained_variance": m.explained_variance_score(y_true, y_pred),
        "spearman_correlation": float(rho),
    }
    return {key: float(value) for key, value in result.items()}


def forecasting_metrics(y_true, y_pred, series, ranges: dict) -> dict[str, float]:
    """Regression metrics over all rows, except that the normalized errors are normalized
    per time series (by that series' target range in the training data) and then averaged
    over the series, so a series with large numbers does not swamp the others."""
    result = regression_metrics(y_true, y_pred)
    y_true, y_pred, series = np.asarray(y_true, float), np.asarray(y_pred, float), np.asarray(series)
    per_series = {"normalized_root_mean_squared_error": [], "normalized_mean_absolute_error": [],
                  "normalized_median_absolute_error": []}
    for key in np.unique(series):
        mask = series == key
        low, high = ranges.get(key, (float(np.min(y_true[mask])), float(np.max(y_true[mask]))))
        scores = regression_metrics(y_true[mask], y_pred[mask], low, high)
        for name in per_series:
            per_series[name].append(scores[name])
    result.update({name: float(np.mean(values)) for name, values in per_series.items()})
    return result


def score_to_loss(metric: str, value: float) -> float:
    """FLAML minimizes: a metric to maximize becomes ``1 - value`` (all of them top out at 1)."""
    return value if metric in MINIMIZED else 1.0 - value


def better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in MINIMIZED else a > b


# -- the service's algorithm names -> estimators ----------------------------------------------------------
def _flaml_learners():
    """Learners for FLAML where it has none of its own (their estimators are plain scikit-learn)."""
    from flaml import tune
    from flaml.automl.model import SKLearnEstimator

    class _NoJobs(SKLearnEstimator):
        def config2params(self, config: dict) -> dict:
            params = super().config2params(config)
            params.pop("n_jobs", None)
            return params

    class DecisionTreeLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import tree

            self.estimator_class = (tree.DecisionTreeClassifier if self._task.is_classification()
                                    else tree.DecisionTreeRegressor)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"max_depth": {"domain": tune.randint(2, 24), "init_value": 6, "low_cost_init_value": 2},
                    "min_samples_leaf": {"domain": tune.lograndint(1, 128), "init_value": 4},
                    "max_features": {"domain": tune.uniform(0.2, 1.0), "init_value": 1.0}}

    class GradientBoostingLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import ensemble

            self.estimator_class = (ensemble.GradientBoostingClassifier if self._task.is_classification()
                                    else ensemble.GradientBoostingRegressor)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"n_estimators": {"domain": tune.lograndint(10, 400), "init_value": 50, "low_cost_init_value": 10},
                    "learning_rate": {"domain": tune.loguniform(0.01, 0.5), "init_value": 0.1},
                    "max_depth": {"domain": tune.randint(2, 8), "init_value": 3},
                    "subsample": {"domain": tune.uniform(0.5, 1.0), "init_value": 1.0}}

        @classmethod
        def cost_relative2lgbm(cls):
            return 5

    class NaiveBayesLearner(_NoJobs):
        kind = "bernoulli"

        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import naive_bayes

            self.estimator_class = (naive_bayes.MultinomialNB if self.kind == "multinomial"
                                    else naive_bayes.BernoulliNB)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"alpha": {"domain": tune.loguniform(1e-3, 10.0), "init_value": 1.0}}

    class MultinomialNaiveBayesLearner(NaiveBayesLearner):
        kind = "multinomial"

    class SVMLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn.svm import SVC

            self.estimator_class = lambda **params: SVC(probability=True, random_state=SEED, **params)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"C": {"domain": tune.loguniform(0.01, 100.0), "init_value": 1.0},
                    "gamma": {"domain": tune.loguniform(1e-3, 10.0), "init_value": 0.1}}

        @classmethod
        def cost_relative2lgbm(cls):
            return 20

    class LinearSVMLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import LinearSVC

            # LinearSVC has no probabilities; calibrating it gives the scores AUC needs.
            self.estimator_class = lambda **params: CalibratedClassifierCV(LinearSVC(**params), cv=3)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"C": {"domain": tune.loguniform(0.01, 100.0), "init_value": 1.0}}

    return {"sim_decision_tree": DecisionTreeLearner, "sim_gradient_boosting": GradientBoostingLearner,
            "sim_bernoulli_nb": NaiveBayesLearner, "sim_multinomial_nb": MultinomialNaiveBayesLearner,
            "sim_svm": SVMLearner, "sim_linear_svm": LinearSVMLearner}


# Service name -> FLAML learner names, per task. FLAML's "lrl1"/"lrl2" are scikit-learn's
# LogisticRegression with L1 / L2 penalties; "sgd" SGDClassifier/SGDRegressor; "kneighbor"
# KNeighbors*; "rf" RandomForest*; "extra_tree" ExtraTrees*; "lgbm" LightGBM; "xgboost"
# XGBoost; "enet" ElasticNet; "lassolars" LassoLars. The "sim_*" learners are defined above.
_TREES_AND_LINEAR = {"SGD": ["sgd"], "KNN": ["kneighbor"], "DecisionTree": ["sim_decision_tree"],
                     "RandomForest": ["rf"], "ExtremeRandomTrees": ["extra_tree"], "LightGBM": ["lgbm"],
                     "GradientBoosting": ["sim_gradient_boosting"]}
ALGORITHMS: dict[str, dict[str, list[str]]] = {
    "Classification": {"LogisticRegression": ["lrl2", "lrl1"], "MultinomialNaiveBayes": ["sim_multinomial_nb"],
                       "BernoulliNaiveBayes": ["sim_bernoulli_nb"], "SVM": ["sim_svm"],
                       "LinearSVM": ["sim_linear_svm"], "XGBoostClassifier": ["xgboost"], **_TREES_AND_LINEAR},
    "Regression": {"ElasticNet": ["enet"], "LassoLars": ["lassolars"], "XGBoostRegressor": ["xgboost"],
                   **_TREES_AND_LINEAR},
}
ALGORITHMS["Forecasting"] = dict(ALGORITHMS["Regression"])
# Accepted by the service, not available here (statistical / deep forecasting models).
NOT_SIMULATED = {"AutoArima", "Prophet", "Naive", "SeasonalNaive", "Average", "SeasonalAverage",
                 "ExponentialSmoothing", "Arimax", "TCNForecaster"}
# The service tries every algorithm by default; SVM (kernel, with probabilities) scales with the
# square of the rows, so here it is tried only when asked for by name.
NOT_BY_DEFAULT = {"SVM"}


def service_names(task: str) -> list[str]:
    from azure.ai.ml.automl import ClassificationModels, ForecastingModels, RegressionModels

    enum = {"Classification": ClassificationModels, "Regression": RegressionModels,
            "Forecasting": ForecastingModels}[task]
    return [member.value for member in enum]


def _canonical(task: str, name: str) -> Optional[str]:
    """A service algorithm name as the user spelled it -> its canonical spelling (None: unknown)."""
    wanted = name.replace("_", "").lower()
    return next((known for known in service_names(task) if known.lower() == wanted), None)


def algorithms_to_try(task: str, training: dict) -> tuple[list[str], list[str]]:
    """(the service names the search will try, the names asked for that the simulation skips)."""
    allowed = training.get("allowedTrainingAlgorithms")
    blocked = {_canonical(task, name) or name for name in training.get("blockedTrainingAlgorithms") or []}
    if allowed:
        wanted = [_canonical(task, name) or name for name in allowed]
    else:
        wanted = [name for name in service_names(task) if name not in NOT_BY_DEFAULT]
    wanted = [name for name in wanted if name not in blocked]
    skipped = [name for name in wanted if name in NOT_SIMULATED or name not in ALGORITHMS[task]]
    return [name for name in wanted if name not in skipped], skipped


# -- submission (the notebook's process) --------------------------------------------------------------------
def _task_details(payload: dict) -> dict:
    return payload["properties"]["taskDetails"]


def _refuse_bad_configuration(job_operations, details: dict, base_path: Path) -> None:
    """What the service checks when an AutoML job is submitted (400 Bad Request)."""
    task = details.get("taskType")
    if task not in PRIMARY_METRICS:
        raise bad_request(f"AutoML task type '{task}' is not part of the simulated workspace (tabular "
                          "classification, regression and forecasting are).")
    metric = details.get("primaryMetric")
    if metric and metric not in PRIMARY_METRICS[task]:
        raise bad_request(f"Primary metric '{metric}' is not supported for {task.lower()} tasks. Supported: "
                          f"{', '.join(PRIMARY_METRICS[task])}.")
    if not details.get("targetColumnName"):
        raise bad_request("target_column_name is required for AutoML tabular tasks.")
    if details.get("validationData") and details.get("nCrossValidations"):
        raise bad_request("Specify either validation_data or n_cross_validations, not both.")
    if details.get("validationData") and details.get("validationDataSize"):
        raise bad_request("Specify either validation_data or validation_data_size, not both.")
    training = details.get("trainingSettings") or {}
    known = set(service_names(task))
    for key in ("allowedTrainingAlgorithms", "blockedTrainingAlgorithms"):
        unknown = [name for name in training.get(key) or [] if _canonical(task, name) is None]
        if unknown:
            raise bad_request(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
                              f"{task.lower()} algorithm{'s' if len(unknown) > 1 else ''}. Supported: "
                              f"{', '.join(sorted(known))}.")
    allowed = training.get("allowedTrainingAlgorithms") or sorted(known)
    blocked = {_canonical(task, name) for name in training.get("blockedTrainingAlgorithms") or []}
    if all(_canonical(task, name) in blocked for name in allowed):
        raise bad_request("Every training algorithm is blocked: allowed_training_algorithms minus "
                          "blocked_training_algorithms leaves nothing to train.")
    if task == "Forecasting":
        settings = details.get("forecastingSettings") or {}
        if not settings.get("timeColumnName"):
            raise bad_request("Forecasting tasks need a time column: set time_column_name with "
                              "set_forecast_settings(time_column_name=...).")
    for key in ("trainingData", "validationData", "testData"):
        if details.get(key):
            _check_mltable(job_operations, key, details[key], base_path)


def _check_mltable(job_operations, key: str, value: dict, base_path: Path) -> None:
    """AutoML reads tabular data through MLTable only: an ``mltable`` data asset, or a folder
    holding an ``MLTable`` file."""
    uri = value.get("uri") or ""
    label = {"trainingData": "training_data", "validationData": "validation_data", "testData": "test_data"}[key]
    if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
        body = uri.removeprefix("azureml:")
        if body.startswith("/subscriptions/"):
            match = references.ARM_VERSION.search(body)
            name, version = match["name"], match["version"]
            row = job_operations._store.get("data", name, version)
        elif "@" in body:
            name, _ = body.split("@", 1)
            row = job_operations._store.latest("data", name)
        else:
            name, _, version = body.partition(":")
            row = job_operations._store.get("data", name, version) if version else job_operations._store.latest(
                "data", name)
        if row is not None and row.payload["properties"].get("dataType") != "mltable":
            raise bad_request(f"{label}: data asset '{name}' is of type "
                              f"{row.payload['properties'].get('dataType')}; AutoML needs an mltable data asset "
                              "(a folder with an MLTable file).")
        return
    if uri.startswith(("azureml://", "http://", "https://", "wasbs://", "abfss://")):
        return
    local = Path(uri) if Path(uri).is_absolute() else (base_path / uri).resolve()
    if not (local.is_dir() and (local / "MLTable").is_file()):
        raise bad_request(f"{label}: {local} is not an MLTable folder; AutoML reads tabular data only "
                          "through MLTable (a folder holding an MLTable file and the data it names).")


def submit(job_operations, automl_job) -> Any:
    """Accept an AutoML job as the service does and start its worker."""
    import os

    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    from labkit.sim.jobs.job_state import DEFAULT_EXPERIMENT

    base_path = Path(getattr(automl_job, "base_path", None) or os.getcwd())
    rest = to_rest_job_object(automl_job)
    payload = rest.as_dict()
    props = payload["properties"]
    details = _task_details(payload)
    _refuse_bad_configuration(job_operations, details, base_path)
    name = payload["name"]
    props["experimentName"] = props.get("experimentName") or DEFAULT_EXPERIMENT
    props["computeId"] = job_operations._resolve_compute(props.get("computeId"), automl_job)
    for key in ("trainingData", "validationData", "testData"):
        if details.get(key):
            job_operations._resolve_input(key, details[key], base_path)
    details["primaryMetric"] = details.get("primaryMetric") or next(iter(PRIMARY_METRICS[details["taskType"]]))
    props["services"] = job_operations._services(name)
    props.setdefault("properties", {})
    props["outputs"] = props.get("outputs") or {}
    return job_operations._store_and_start(type(rest), payload)


# -- the search (the parent's worker process) -------------------------------------------------------------
@dataclass
class Plan:
    """What one AutoML job asks for, read from its REST payload."""

    task: str
    target: str
    metric: str
    limits: dict
    training: dict
    featurization: dict
    forecasting: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def is_classification(self) -> bool:
        return self.task == "Classification"


def _minutes(duration: Optional[str], default: float) -> float:
    if not duration:
        return default
    from isodate import parse_duration

    return parse_duration(duration).total_seconds() / 60.0


def _load_table(workspace, value: dict):
    """An MLTable input of the job -> a pandas DataFrame. The MLTable file's own paths may be
    datastore URIs; they are read as a command job's script reads them (``fs.mltable_for_job``),
    since this process has no ``azureml://`` protocol of its own."""
    import tempfile

    import mltable

    from labkit.sim.core.fs import local_path, mltable_for_job

    uri = value["uri"]
    if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
        uri = references.data_asset_uri(workspace, uri)
    folder = Path(local_path(uri) if uri.startswith("azureml://") else uri)
    with tempfile.TemporaryDirectory() as resolved:
        return mltable.load(str(mltable_for_job(folder, Path(resolved) / "table"))).to_pandas_dataframe()


class _Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", buffering=1)

    def __call__(self, message: str) -> None:
        self._handle.write(message.rstrip("\n") + "\n")


CUSTOMIZATIONS = {"blockedTransformers": "blocked_transformers", "columnNameAndTypes": "column_name_and_types",
                  "transformerParams": "transformer_params"}


def _customizations_of_mode(mode: str, settings: dict, log: _Log) -> dict:
    """``settings`` without the customizations that ``mode`` does not apply.

    Blocked transformers, column types and transformer parameters customize featurization in
    "custom" mode only (REST API, TableVerticalFeaturizationSettings.mode: "If 'Custom' is
    selected then user can specify additional inputs to customize how featurization is done";
    "Data featurization in automated machine learning" customizes with mode="custom"). The SDK
    sends them whatever the mode; under "auto" or "off" the service featurizes without them.
    """
    ignored = [sdk_name for rest_name, sdk_name in CUSTOMIZATIONS.items() if settings.get(rest_name)]
    if mode == "custom" or not ignored:
        return settings
    log(f"Featurization mode is '{mode}': {', '.join(ignored)} take effect only with mode='custom' and are "
        "not applied.")
    return {key: value for key, value in settings.items() if key not in CUSTOMIZATIONS}


def _featurizer(plan: Plan, frame, log: _Log):
    """The featurization the service's ``featurization`` settings ask for, as (pipeline, spec):
    the spec is what the generated training script rebuilds the same pipeline from."""
    import pandas as pd

    settings = plan.featurization or {}
    mode = (settings.get("mode") or "auto").lower()
    settings = _customizations_of_mode(mode, settings, log)
    blocked = {b.lower() for b in settings.get("blockedTransformers") or []}
    purposes = {column: kind.lower() for column, kind in (settings.get("columnNameAndTypes") or {}).items()}
    numeric_imputer = "mean"
    # The SDK sends the transformer names capitalised ("Imputer"); the service reads them either way.
    params = {str(key).lower(): value for key, value in (settings.get("transformerParams") or {}).items()}
    for item in (params.get("imputer") or []):
        strategy = (item.get("parameters") or {}).get("strategy")
        if strategy:
            numeric_imputer = strategy  # the simulation applies one numeric imputation strategy to all columns

    if plan.task == "Forecasting":
        fs = plan.forecasting
        lags = (fs.get("targetLags") or {}).get("values") or []
        if (fs.get("targetLags") or {}).get("mode") == "Auto":
            lags = [1, 7]  # "auto": the simulation picks the previous period and the same period a week back
        window = (fs.get("targetRollingWindowSize") or {}).get("value")
        spec = {"kind": "forecast", "settings": {
            "time_column": fs["timeColumnName"], "series_columns": list(fs.get("timeSeriesIdColumnNames") or ()),
            "horizon": int((fs.get("forecastHorizon") or {}).get("value") or 1), "lags": [int(k) for k in lags],
            "window": int(window) if window else None, "frequency": fs.get("frequency") or "D",
            "numeric_imputer": numeric_imputer,
            "exclude": [plan.target] + ([plan.details["weightColumnName"]] if plan.details.get("weightColumnName")
                                        else [])}}
        return featurization.build_featurizer(spec, frame, frame[plan.target]), spec

    columns = [c for c in frame.columns if c != plan.target]
    if mode == "off":
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
        other = sorted(set(columns) - set(numeric))
        if other:
            raise ValueError(f"Featurization is off, so every feature must be numeric; these are not: {other}.")
        spec = {"kind": "passthrough", "settings": {"columns": numeric}}
        return featurization.build_featurizer(spec, frame), spec
    kinds: dict[str, str] = {}
    for column in columns:
        series = frame[column]
        if column in purposes:
            kinds[column] = purposes[column]
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            kinds[column] = "ignore" if series.nunique(dropna=True) <= 1 else "numeric"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kinds[column] = "datetime"
        else:
            unique = series.nunique(dropna=True)
            # The service drops features with one value, all missing, or one value per row (IDs, hashes).
            if unique <= 1 or unique == series.notna().sum():
                kinds[column] = "ignore"
            elif unique <= max(50, int(0.05 * len(series))):
                kinds[column] = "categorical"
            else:
                kinds[column] = "text"
    dropped = [c for c, k in kinds.items() if k in ("ignore", "hashes")]
    if dropped:
        log(f"Featurization: dropped {dropped} (one value, or one value per row such as an ID).")
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    encoder = "onehot" if "onehotencoder" not in blocked else "ordinal" if "labelencoder" not in blocked else None
    if categorical and encoder is None:
        log(f"Featurization: OneHotEncoder and LabelEncoder are blocked; categorical {categorical} dropped.")
    text = [c for c, k in kinds.items() if k == "text"]
    if text and "tfidf" in blocked:
        log(f"Featurization: TfIdf is blocked; text columns {text} dropped.")
    spec = {"kind": "tabular", "settings": {"kinds": kinds, "numeric_imputer": numeric_imputer,
                                            "categorical_encoder": encoder, "tfidf": "tfidf" not in blocked}}
    return featurization.build_featurizer(spec, frame), spec


class _Folds:
    """Predefined folds handed to FLAML. FLAML shuffles the rows of a splitter that has a
    ``shuffle`` attribute set; this one says it does not, so the folds are used as given."""

    shuffle = False

    def __init__(self, folds: list[tuple[np.ndarray, np.ndarray]]):
        self.folds = folds

    def split(self, X=None, y=None, groups=None):
        return iter(self.folds)

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.folds)


def _default_folds(n_rows: int) -> int:
    """The service's rule when no validation is configured: below 1,000 rows 10 folds, up to
    20,000 rows 3 folds (above that a 10 % validation split)."""
    return 10 if n_rows < 1000 else 3


def _tabular_split(plan: Plan, X, y, validation) -> dict:
    """Rows used for validation: a validation table, a fraction, or cross-validation folds."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    details = plan.details
    n = len(X)
    cv = (details.get("nCrossValidations") or {})
    if validation is not None:
        return {"kind": "holdout", "X_val": validation[0], "y_val": validation[1], "X_train": X, "y_train": y}
    fraction = details.get("validationDataSize")
    folds = cv.get("value") if cv.get("mode") == "Custom" else None
    if not fraction and not folds:
        if n > 20_000:
            fraction = 0.1
        else:
            folds = _default_folds(n)
    if fraction:
        stratify = y if plan.is_classification and min(np.unique(y, return_counts=True)[1]) >= 2 else None
        X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=fraction, random_state=SEED,
                                                          stratify=stratify)
        return {"kind": "holdout", "X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}
    splitter = (StratifiedKFold(int(folds), shuffle=True, random_state=SEED) if plan.is_classification
                else KFold(int(folds), shuffle=True, random_state=SEED))
    return {"kind": "cv", "folds": list(splitter.split(X, y)), "X_train": X, "y_train": y}


def _forecast_split(plan: Plan, frame, validation) -> dict:
    """Rolling-origin validation: each fold trains on the past and validates on the next
    ``horizon`` periods of every series; origins step back ``cv_step_size`` periods."""
    import pandas as pd

    fs = plan.forecasting
    horizon = int((fs.get("forecastHorizon") or {}).get("value") or 1)
    times = pd.to_datetime(frame[fs["timeColumnName"]])
    offset = pd.tseries.frequencies.to_offset(fs.get("frequency") or "D")
    if validation is not None:
        return {"kind": "holdout", "validation_frame": validation}
    cv = plan.details.get("nCrossValidations") or {}
    n_folds = int(cv.get("value")) if cv.get("mode") == "Custom" else 3
    step = int(fs.get("cvStepSize") or horizon)
    end = times.max()
    folds = []
    for k in range(n_folds):
        origin = end - (horizon + k * step) * offset
        train = np.flatnonzero((times <= origin).to_numpy())
        valid = np.flatnonzero(((times > origin) & (times <= origin + horizon * offset)).to_numpy())
        if len(train) and len(valid):
            folds.append((train, valid))
    if not folds:
        raise ValueError("The training data are too short for forecast_horizon and n_cross_validations.")
    return {"kind": "cv", "folds": list(reversed(folds))}


class _Search:
    """One AutoML parent job's search: data, validation, FLAML, children, best model."""

    def __init__(self, workspace, name: str):
        self.workspace = workspace
        self.name = name
        row = workspace.store.get(job_state.KIND, name)
        self.props = row.payload["properties"]
        details = self.props["taskDetails"]
        task = details["taskType"]
        self.plan = Plan(task=task, target=details["targetColumnName"],
                         metric=PRIMARY_METRICS[task][details["primaryMetric"]],
                         limits=details.get("limitSettings") or {}, training=details.get("trainingSettings") or {},
                         featurization=details.get("featurizationSettings") or {},
                         forecasting=details.get("forecastingSettings") or {}, details=details)
        self.log = _Log(job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt")
        self.children: list[dict] = []
        self.best: Optional[dict] = None
        self.started = time.time()

    # -- children ------------------------------------------------------------------------------------
    def record_child(self, algorithm: str, config: dict, metrics: dict, failed: Optional[str] = None,
                     preprocessor: str = "MinMaxScaler", learner: Optional[str] = None) -> dict:
        """A child job and its MLflow run for one evaluated pipeline (trial or ensemble); its
        parameters are the estimator's own (``learner``, FLAML's name for it, stays in here)."""
        from mlflow.tracking import MlflowClient

        from azure.ai.ml._restclient.arm_ml_service.models import JobBase

        from labkit.sim.jobs.job_runner import ARTIFACT_STORE
        from labkit.sim.core.storage import datastore_folder
        from labkit.sim.core.store import utc_now
        from labkit.sim.core.tracking import create_run_with_id

        iteration = len(self.children)
        child = f"{self.name}_{iteration}"
        status = "Failed" if failed else "Completed"
        score = metrics.get(self.plan.metric)
        tags = {"mlflow.parentRunId": self.name, "run_algorithm": algorithm, "run_preprocessor": preprocessor,
                "iteration": str(iteration), "azureml.runsource": "automl"}
        run = create_run_with_id(self.workspace.mlflow_tracking_uri, child, self.props["experimentName"], child,
                                 tags=tags)
        client = MlflowClient(tracking_uri=self.workspace.mlflow_tracking_uri)
        for key, value in sorted(config.items()):
            client.log_param(child, key, str(value)[:500])
        for key, value in sorted(metrics.items()):
            if value is not None and np.isfinite(value):
                client.log_metric(child, key, float(value))
        client.set_terminated(child, status="FAILED" if failed else "FINISHED")
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        relative = artifacts.relative_to(datastore_folder(self.workspace, ARTIFACT_STORE)).as_posix()
        payload = {"name": child, "properties": {
            "jobType": "Command", "status": status, "displayName": child,
            "command": f"(AutoML trial {iteration} of {self.name}: {preprocessor}, {algorithm})",
            "environmentId": "azureml:AzureML-AutoML@latest",
            "experimentName": self.props["experimentName"], "computeId": self.props.get("computeId"),
            "tags": {key: value for key, value in tags.items() if not key.startswith("mlflow.")},
            "properties": {"azureml.parentrunid": self.name, "run_algorithm": algorithm,
                           "run_preprocessor": preprocessor, "iteration": str(iteration),
                           "score": "" if score is None else repr(float(score)),
                           "primary_metric": self.plan.metric, "runTemplate": "automl_child",
                           "azureml.runsource": "automl"},
            "outputs": {"default": {"jobOutputType": "uri_folder", "mode": "ReadWriteMount",
                                    "uri": self.workspace.long_uri(ARTIFACT_STORE, relative)}},
            "services": {"Tracking": {"jobServiceType": "Tracking",
                                      "endpoint": self.workspace.mlflow_tracking_uri}},
        }}
        store = self.workspace.store
        with store.transaction() as db:
            store.put(db, job_state.KIND, child, "", JobBase(payload))
        folder = job_state.job_folder(self.workspace, child)
        folder.mkdir(parents=True, exist_ok=True)
        now = utc_now()
        job_state.write_runtime(self.workspace, child, start_time=now, end_time=now)
        if failed:
            (folder / "error.json").write_text(json.dumps({"message": failed}, indent=2))
        entry = {"name": child, "algorithm": algorithm, "learner": learner, "config": config, "metrics": metrics,
                 "score": score, "failed": failed, "artifacts": artifacts}
        self.children.append(entry)
        self.log(f"[{time.time() - self.started:6.1f}s] {child}: {algorithm:<22} {self.plan.metric}="
                 f"{'-' if score is None else f'{score:.4f}'}{'  FAILED: ' + failed if failed else ''}")
        if not failed and score is not None and np.isfinite(score) and (
                self.best is None or better(self.plan.metric, score, self.best["score"])):
            self.best = entry
        return entry

    # -- evaluation ----------------------------------------------------------------------------------------
    def metrics_of(self, estimator, X_val, y_val) -> dict:
        if self.plan.is_classification:
            proba = estimator.predict_proba(X_val)
            return classification_metrics(self.classes[np.asarray(y_val)], proba, self.classes)
        predictions = estimator.predict(X_val)
        if self.plan.task == "Forecasting":
            return forecasting_metrics(y_val, predictions, self.series_of(X_val), self.series_ranges)
        return regression_metrics(y_val, predictions, self.y_min, self.y_max)

    def series_of(self, X) -> np.ndarray:
        """Each featurized row's time series, read back from its one-hot series columns."""
        names = np.asarray(self.series_names)
        if len(names) == 1:
            return np.repeat(names, len(X))
        return names[np.argmax(np.asarray(X)[:, self.series_positions], axis=1)]


def _flaml_metric(search: _Search):
    """FLAML's custom-metric hook: the service's metrics of one fold, the primary one as the loss."""
    def metric(X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None,
               *args, **kwargs):
        scores = search.metrics_of(estimator, X_val, y_val)
        return score_to_loss(search.plan.metric, scores[search.plan.metric]), scores

    return metric


def run(workspace, name: str) -> None:
    """The parent job's worker: search, record the children, save the best model."""
    from labkit.sim.jobs.job_runner import wait_for_a_node

    wait_for_a_node(workspace, name)
    search = _Search(workspace, name)
    try:
        _run_search(search)
    except _UserError as error:
        search.log(f"[simulated workspace] The AutoML job failed: {error}")
        job_state.finish(workspace, name, "Failed", json.dumps({"code": "UserError", "message": str(error)},
                                                               indent=4))


def _run_search(search: _Search) -> None:  # noqa: C901  (one linear story, easier to follow whole)
    import pandas as pd
    from flaml import AutoML

    from labkit.sim.jobs.job_runner import Canceled

    plan, log, workspace, name = search.plan, search.log, search.workspace, search.name
    details = plan.details
    log(f"[simulated workspace] AutoML {plan.task.lower()} job {name}: primary metric {plan.metric}, "
        "searched with FLAML on this machine.")
    frame = _load_table(workspace, details["trainingData"])
    validation_frame = _load_table(workspace, details["validationData"]) if details.get("validationData") else None
    test_frame = _load_table(workspace, details["testData"]) if details.get("testData") else None
    for label, table in (("training_data", frame), ("validation_data", validation_frame), ("test_data", test_frame)):
        if table is not None and plan.target not in table.columns:
            raise _UserError(f"Target column '{plan.target}' is not in {label}. Its columns: "
                             f"{', '.join(map(str, table.columns))}.")
    weight = details.get("weightColumnName")
    frame = frame[frame[plan.target].notna()].reset_index(drop=True)
    if plan.task == "Forecasting":
        fs = plan.forecasting
        for column in [fs["timeColumnName"], *(fs.get("timeSeriesIdColumnNames") or [])]:
            if column not in frame.columns:
                raise _UserError(f"Column '{column}' named in the forecast settings is not in training_data.")
        frame = frame.sort_values(fs["timeColumnName"], kind="stable").reset_index(drop=True)
    if test_frame is None and details.get("testDataSize") and plan.task != "Forecasting":
        from sklearn.model_selection import train_test_split

        frame, test_frame = train_test_split(frame, test_size=float(details["testDataSize"]), random_state=SEED)
        frame, test_frame = frame.reset_index(drop=True), test_frame.reset_index(drop=True)

    X_all = frame.drop(columns=[plan.target] + ([weight] if weight else []))
    y_raw = frame[plan.target]
    if plan.is_classification:
        search.classes = np.unique(y_raw.to_numpy())
        if len(search.classes) < 2:
            raise _UserError("The target column has a single class; classification needs at least two.")
        y_all = np.searchsorted(search.classes, y_raw.to_numpy())
    else:
        y_all = pd.to_numeric(y_raw, errors="raise").to_numpy(dtype=float)
        search.y_min, search.y_max = float(np.min(y_all)), float(np.max(y_all))

    featurizer, search.featurization = _featurizer(plan, frame, log)
    algorithms, skipped = algorithms_to_try(plan.task, plan.training)
    if skipped:
        log(f"[simulated workspace] Not available in the simulation, skipped: {', '.join(skipped)} "
            "(no statistical or deep forecasting models here; see labkit/sim/automl.py).")
    if not algorithms:
        raise _UserError(f"None of the algorithms this job allows can run in the simulated workspace "
                         f"({', '.join(skipped)}). Allow at least one of: {', '.join(ALGORITHMS[plan.task])}.")
    if plan.task == "Forecasting":
        keys = featurization.series_keys(frame, plan.forecasting.get("timeSeriesIdColumnNames")).to_numpy()
        search.series_ranges = {key: (float(np.min(y_all[keys == key])), float(np.max(y_all[keys == key])))
                                for key in np.unique(keys)}
    split = (_forecast_split(plan, frame, validation_frame) if plan.task == "Forecasting"
             else _tabular_split(plan, X_all, y_all, None if validation_frame is None else (
                 validation_frame.drop(columns=[plan.target] + ([weight] if weight else [])),
                 np.searchsorted(search.classes, validation_frame[plan.target].to_numpy()) if plan.is_classification
                 else validation_frame[plan.target].to_numpy(dtype=float))))

    # Featurize once (fit on the training rows), then hand FLAML numbers. For forecasting, every lag
    # of a row in the horizon after an origin is at or before that origin (see ForecastFeaturizer),
    # so one featurization of all the rows serves every rolling-origin fold without leaking the future.
    if plan.task == "Forecasting":
        X_fit, y_fit = featurizer.fit_transform(X_all, y_all), y_all
        # The series' one-hot columns come first (see forecast_featurizer); one series has none.
        first = featurizer.named_steps["columns"].transformers[0]
        search.series_names = list(first[1].categories[0]) if first[0] == "series" else ["__single__"]
        search.series_positions = list(range(len(search.series_names))) if first[0] == "series" else []
        if split["kind"] == "holdout":
            vf = split["validation_frame"]
            fit_args = {"X_val": featurizer.transform(vf.drop(columns=[plan.target])),
                        "y_val": vf[plan.target].to_numpy(dtype=float), "eval_method": "holdout"}
        else:
            fit_args = {"eval_method": "cv", "split_type": _Folds(split["folds"])}
    else:
        if split["kind"] == "holdout":
            X_fit = featurizer.fit_transform(split["X_train"], split["y_train"])
            y_fit = np.asarray(split["y_train"])
            fit_args = {"X_val": featurizer.transform(split["X_val"]), "y_val": np.asarray(split["y_val"]),
                        "eval_method": "holdout"}
        else:
            X_fit = featurizer.fit_transform(X_all, y_all)
            y_fit = y_all
            fit_args = {"eval_method": "cv", "split_type": _Folds(split["folds"])}
    X_fit = np.asarray(X_fit, dtype=float)
    if "X_val" in fit_args:
        fit_args["X_val"] = np.asarray(fit_args["X_val"], dtype=float)
    described = (f"{len(split['folds'])}-fold {'rolling-origin ' if plan.task == 'Forecasting' else ''}"
                 "cross-validation" if split["kind"] == "cv" else f"a validation set of {len(fit_args['y_val'])} rows")
    log(f"Data: {len(frame)} training rows, {X_fit.shape[1]} features after featurization; "
        f"validation: {described}.")

    # Limits: the service's names -> FLAML's.
    limits = plan.limits
    timeout_s = _minutes(limits.get("timeout"), DEFAULT_TIMEOUT_MINUTES) * 60.0
    trial_timeout_s = _minutes(limits.get("trialTimeout"), 0) * 60.0 or None
    max_trials = int(limits.get("maxTrials") or DEFAULT_MAX_TRIALS)
    exit_score = limits.get("exitScore")
    early = limits.get("enableEarlyTermination")
    early = True if early is None else bool(early)  # the service's default: on
    ensembles = []
    if plan.training.get("enableVoteEnsemble", True) is not False:
        ensembles.append("VotingEnsemble")
    if plan.training.get("enableStackEnsemble", True) is not False and plan.task != "Forecasting":
        ensembles.append("StackEnsemble")
    if int(limits.get("maxConcurrentTrials") or 1) > 1:
        log(f"max_concurrent_trials={limits['maxConcurrentTrials']}: FLAML runs trials concurrently only on Ray "
            "or Spark, which the simulation does not use; trials run one after another.")
    # FLAML tries its learners first in the order given: the usually strongest and cheapest first.
    order = ["LightGBM", "XGBoostClassifier", "XGBoostRegressor", "RandomForest", "ExtremeRandomTrees",
             "LogisticRegression", "ElasticNet", "GradientBoosting", "DecisionTree", "LassoLars", "KNN", "SGD",
             "LinearSVM", "BernoulliNaiveBayes", "MultinomialNaiveBayes", "SVM"]
    algorithms = sorted(algorithms, key=lambda a: order.index(a) if a in order else len(order))
    learner_names = {learner: service for service in algorithms for learner in ALGORITHMS[plan.task][service]}
    trial_budget = max(1, max_trials - len(ensembles)) if max_trials > 2 else max_trials
    elapsed = time.time() - search.started
    reserve = min(0.15 * timeout_s, 60.0)  # ensembles and the final model, inside the job's timeout
    time_budget = max(5.0, timeout_s - elapsed - reserve)

    state = {"since_improvement": 0, "stop": None}
    flaml_task = "classification" if plan.is_classification else "regression"

    class _AutoML(AutoML):
        """FLAML's AutoML, reporting each trial as a child job and stopping as the service does."""

        def _log_trial(self, search_state, estimator):  # called by FLAML after every trial
            super()._log_trial(search_state, estimator)
            scores = search_state.metric_for_logging if isinstance(search_state.metric_for_logging, dict) else {}
            params = _hyperparameters(self, estimator, search_state.config)
            loss = search_state.val_loss
            failed = None if loss is not None and np.isfinite(loss) and scores else "the trial produced no score"
            previous_best = search.best["score"] if search.best else None
            search.record_child(learner_names.get(estimator, estimator), params, scores, failed, learner=estimator)
            improved = search.best is not None and search.best["score"] != previous_best
            state["since_improvement"] = 0 if improved else state["since_improvement"] + 1
            if job_state.status_of(workspace, name) == "CancelRequested":
                raise Canceled()
            if exit_score is not None and search.best is not None and not better(
                    plan.metric, float(exit_score), search.best["score"]):
                state["stop"] = f"exit_score {exit_score} reached"
            elif early and state["since_improvement"] >= EARLY_TERMINATION_ITERATIONS:
                state["stop"] = f"early termination: no improvement in the last {EARLY_TERMINATION_ITERATIONS} trials"
            if state["stop"]:
                self._state.time_budget = 0  # FLAML's loop ends when its time budget is spent

    automl = _AutoML()
    for learner, cls in _flaml_learners().items():
        automl.add_learner(learner, cls)
    log(f"Search: up to {trial_budget} trials in {time_budget:.0f}s over {', '.join(algorithms)}.")
    try:
        automl.fit(X_train=X_fit, y_train=y_fit, task=flaml_task, metric=_flaml_metric(search),
                   estimator_list=list(learner_names), time_budget=time_budget, max_iter=trial_budget,
                   train_time_limit=trial_timeout_s, n_jobs=1, seed=SEED, verbose=0, log_type="all",
                   retrain_full=False, model_history=True, mlflow_logging=False, skip_transform=True,
                   early_stop=early, keep_search_state=True, **fit_args)
    except Canceled:
        raise
    if state["stop"]:
        log(f"Search stopped: {state['stop']}.")
    if search.best is None:
        raise _UserError("No trial completed within the limits; raise timeout_minutes or max_trials.")

    # Ensembles: the best model of each learner, combined (the service's last iterations).
    if ensembles and len(search.children) < max_trials:
        deadline = search.started + timeout_s
        _ensembles(search, automl, ensembles, X_fit, y_fit, fit_args, max_trials, learner_names, deadline)

    best = search.best
    log(f"Best: {best['name']} ({best['algorithm']}) {plan.metric}={best['score']:.4f}.")
    pipeline = _final_pipeline(search, automl, featurizer, best, X_all, y_all, frame)
    _save_model(search, pipeline, best, X_all)
    if test_frame is not None:
        X_test = test_frame.drop(columns=[plan.target] + ([weight] if weight and weight in test_frame else []))
        if plan.is_classification:
            scores = classification_metrics(test_frame[plan.target].to_numpy(), pipeline.predict_proba(X_test),
                                            search.classes)
        elif plan.task == "Forecasting":
            keys = featurization.series_keys(test_frame, plan.forecasting.get("timeSeriesIdColumnNames")).to_numpy()
            scores = forecasting_metrics(test_frame[plan.target], pipeline.predict(X_test), keys,
                                         search.series_ranges)
        else:
            scores = regression_metrics(test_frame[plan.target], pipeline.predict(X_test), search.y_min, search.y_max)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
        for key, value in scores.items():
            if np.isfinite(value):
                client.log_metric(best["name"], f"test_{key}", value)
        log(f"Test data: {plan.metric}={scores.get(plan.metric, float('nan')):.4f} (logged on {best['name']} "
            "as test_<metric>).")
    _finish_parent(search)


def _hyperparameters(automl, learner: str, config: Optional[dict]) -> dict:
    """A trial's hyperparameters as its estimator's constructor takes them: FLAML's learner turns
    its search variables (such as ``log_max_bin``) into the library's parameters."""
    config = {key: value for key, value in (config or {}).items() if key != "FLAML_sample_size"}
    try:
        params = automl._state.learner_classes[learner](task=automl._state.task, **config).params
    except Exception:  # a configuration the learner refuses: the trial failed; keep what it tried
        params = config
    return {key: value for key, value in params.items() if key not in ("n_jobs", "task")}


def _estimator_of(automl, learner: str):
    model = automl.best_model_for_estimator(learner)
    return None if model is None else model.estimator


def _ensembles(search: _Search, automl, kinds, X_fit, y_fit, fit_args, max_trials, learner_names, deadline):
    """VotingEnsemble (soft vote / mean of the best model of up to five learners) and
    StackEnsemble (their out-of-fold predictions into a logistic regression / elastic net)."""
    from sklearn.base import clone
    from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
    from sklearn.linear_model import ElasticNetCV, LogisticRegression

    plan = search.plan
    ranked = sorted((e for e in automl.best_loss_per_estimator.items() if np.isfinite(e[1])), key=lambda e: e[1])
    members = [(learner, _estimator_of(automl, learner)) for learner, _ in ranked[:ENSEMBLE_SIZE]]
    members = [(learner, est) for learner, est in members if est is not None]
    if len(members) < 2:
        search.log("Ensembles skipped: fewer than two algorithms produced a model.")
        return
    names = [learner_names.get(learner, learner) for learner, _ in members]
    # What one fit of every member costs, from FLAML's record of their best trials.
    member_cost = sum(getattr(automl._search_states[learner], "best_config_train_time", 0) or 0
                      for learner, _ in members)
    n_fits = 1 if fit_args["eval_method"] == "holdout" else len(fit_args["split_type"].folds)
    for kind in kinds:
        if len(search.children) >= max_trials:
            break
        # Stacking fits every member once more per inner fold (3) to get out-of-fold predictions.
        estimate = member_cost * n_fits * (4 if kind == "StackEnsemble" else 1)
        if time.time() + estimate > deadline:
            search.log(f"{kind} skipped: about {estimate:.0f}s of training would pass the job's timeout.")
            continue
        estimators = [(f"{i}_{name}", clone(est)) for i, (name, (_, est)) in enumerate(zip(names, members))]
        if kind == "VotingEnsemble":
            ensemble = (VotingClassifier(estimators, voting="soft") if plan.is_classification
                        else VotingRegressor(estimators))
        else:
            ensemble = (StackingClassifier(estimators, final_estimator=LogisticRegression(max_iter=1000), cv=3)
                        if plan.is_classification else StackingRegressor(estimators, final_estimator=ElasticNetCV(),
                                                                         cv=3))
        try:
            scores = _evaluate(search, ensemble, X_fit, y_fit, fit_args)
            search.record_child(kind, {"ensembled_algorithms": names}, scores)
            search.ensemble_models = getattr(search, "ensemble_models", {})
            search.ensemble_models[search.children[-1]["name"]] = ensemble
        except Exception as error:  # an ensemble that cannot be built fails as a child, not the job
            search.record_child(kind, {"ensembled_algorithms": names}, {}, failed=str(error)[:300])


def _evaluate(search: _Search, estimator, X_fit, y_fit, fit_args) -> dict:
    from sklearn.base import clone

    if fit_args["eval_method"] == "holdout":
        model = clone(estimator).fit(X_fit, y_fit)
        return search.metrics_of(model, fit_args["X_val"], fit_args["y_val"])
    fold_scores = []
    for train_rows, valid_rows in fit_args["split_type"].folds:
        model = clone(estimator).fit(X_fit[train_rows], y_fit[train_rows])
        fold_scores.append(search.metrics_of(model, X_fit[valid_rows], y_fit[valid_rows]))
    keys = set.intersection(*(set(s) for s in fold_scores))
    return {key: float(np.mean([s[key] for s in fold_scores])) for key in keys}


def _final_pipeline(search: _Search, automl, featurizer, best: dict, X_all, y_all, frame):
    """Featurization + the best estimator, refitted on all the training data, in the data's labels."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    plan = search.plan
    ensembles = getattr(search, "ensemble_models", {})
    if best["name"] in ensembles:
        estimator = clone(ensembles[best["name"]])
    else:
        # The model FLAML kept for the best trial of this learner (the best child's configuration).
        estimator = clone(_estimator_of(automl, best["learner"]))
    steps = list(featurizer.steps) if hasattr(featurizer, "steps") else [("featurize", featurizer)]
    if plan.is_classification:
        y_fit = search.classes[y_all]
        standard = np.issubdtype(search.classes.dtype, np.integer) and np.array_equal(
            search.classes, np.arange(len(search.classes)))
        if not standard and type(estimator).__module__.startswith("xgboost"):
            # XGBoost learns only the labels 0..k-1; scikit-learn's VotingClassifier encodes the
            # data's labels for its members and answers in them, so one member wraps it.
            from sklearn.ensemble import VotingClassifier

            estimator = VotingClassifier([(best["algorithm"], estimator)], voting="soft")
    else:
        y_fit = y_all
    pipeline = Pipeline([(n, clone(s)) for n, s in steps] + [("model", estimator)])
    return pipeline.fit(X_all, y_fit)


def _automl_image() -> str:
    """The image Azure's AutoML trains in, as its MLmodel metadata names it (``azureml.base_image``)."""
    from labkit.sim.assets.curated import find_curated

    environment = find_curated(AUTOML_ENVIRONMENT)
    return environment.image if environment else f"mcr.microsoft.com/azureml/curated/{AUTOML_IMAGE}:latest"


def _save_model(search: _Search, pipeline, best: dict, X_all) -> None:
    """The best child's ``outputs/``: the model, its environment, scoring files, generated
    training code and the MLflow model, as Azure's AutoML writes them (``automl_runtime/outputs.py``)."""
    plan = search.plan
    weight = plan.details.get("weightColumnName")
    outputs.write_best_child_outputs(
        Path(best["artifacts"]) / "outputs", pipeline, X_all, child=best["name"], algorithm=best["algorithm"],
        task=plan.task, spec=search.featurization, target=plan.target,
        dropped=[plan.target] + ([weight] if weight else []), base_image=_automl_image(), log=search.log)
    search.log(f"Saved the best model: {best['name']} artifacts outputs/ (model.pkl, scoring files, "
               f"generated_code/, {MODEL_FOLDER}/).")


def _finish_parent(search: _Search) -> None:
    from mlflow.tracking import MlflowClient

    from labkit.sim.jobs.job_runner import ARTIFACT_STORE
    from labkit.sim.core.storage import datastore_folder

    workspace, name, best = search.workspace, search.name, search.best
    client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    client.set_tag(name, BEST_CHILD_TAG, best["name"])
    client.set_tag(name, "azureml.runsource", "automl")
    relative = (Path(best["artifacts"]) / MODEL_FOLDER).relative_to(
        datastore_folder(workspace, ARTIFACT_STORE)).as_posix()

    def change(props: dict) -> None:
        props.setdefault("tags", {})
        props["tags"] = {**(props["tags"] or {}), BEST_CHILD_TAG: best["name"]}
        props.setdefault("properties", {})
        props["properties"] = {**(props["properties"] or {}), "primary_metric": search.plan.metric,
                               "num_iterations": str(len(search.children)), "training_type": "TrainFull",
                               "runTemplate": "AutoML", "azureml.runsource": "automl",
                               BEST_CHILD_TAG: best["name"], "score": repr(float(best["score"]))}
        props.setdefault("outputs", {})
        props["outputs"]["best_model"] = {"jobOutputType": "mlflow_model", "mode": "ReadWriteMount",
                                          "uri": workspace.long_uri(ARTIFACT_STORE, relative + "/")}

    job_state.update_properties(workspace, name, change)
    search.log(f"{len(search.children)} children; best child {best['name']}.")
    job_state.finish(workspace, name, "Completed")


class _UserError(Exception):
    """A problem with the job's data or settings that the service reports when the job runs."""
