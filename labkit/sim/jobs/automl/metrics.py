"""The service's AutoML metrics: the primary metrics a job may optimise and how each is scored.

Stands for what Azure's AutoML logs on every child run: the classification metrics from the
predicted class probabilities (weighted and macro averages, AUC, ``norm_macro_recall``), the
regression metrics with errors normalized by the target's range, and forecasting's per-series
normalization. ``PRIMARY_METRICS`` maps the REST enum value a job names (``AUCWeighted``) to the
metric's name in MLflow (``AUC_weighted``); ``MINIMIZED`` says which ones go down.

May import: as ``labkit.sim.jobs`` (it needs nothing of the simulator).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

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
