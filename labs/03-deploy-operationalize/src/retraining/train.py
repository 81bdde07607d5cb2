"""The retraining step of lab 3.5: train the screening model on a table of labelled patients.

Reads one CSV file (the eight measurements and the label ``diabetic``; other columns such as
``patient_id`` or ``clinic`` are ignored), holds out a quarter of it for testing, fits a
scaled logistic regression, and writes two outputs: the model as an MLflow model (so it
deploys with no scoring script) and ``metrics.json`` with its test metrics, which the
release gate reads. The lab imports ``train`` and ``save`` to train the first version by hand.
"""
import argparse
import json
import os
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MEASUREMENTS = ["pregnancies", "plasma_glucose_mg_dl", "diastolic_bp_mm_hg", "triceps_skinfold_mm",
                "serum_insulin_uu_ml", "bmi", "diabetes_pedigree", "age_years"]


def train(data: pd.DataFrame):
    """The fitted model, its test metrics and a sample of test inputs (for the signature)."""
    # Doubles, not integers: a signature with integer columns refuses a missing value.
    features = data[MEASUREMENTS].astype("float64")
    X_train, X_test, y_train, y_test = train_test_split(
        features, data["diabetic"], test_size=0.25, random_state=0, stratify=data["diabetic"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X_train, y_train)
    metrics = {
        "rows": len(data),
        "test_accuracy": round(float(accuracy_score(y_test, model.predict(X_test))), 4),
        "test_auc": round(float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])), 4),
    }
    return model, metrics, X_test


def pinned_requirements() -> list[str]:
    """scikit-learn and the package that stores the model, at the versions that trained it.

    A no-code deployment builds its environment from these. Given explicitly, they also spare
    MLflow from inferring them, which loads the model again in a new Python process. MLflow 3
    stores scikit-learn models with skops (safe to load), MLflow 2 with cloudpickle.
    """
    if hasattr(mlflow.sklearn, "SERIALIZATION_FORMAT_SKOPS"):
        return mlflow.sklearn.get_default_pip_requirements(include_skops=True)
    return mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)


def save(model, metrics: dict, X_test: pd.DataFrame, model_dir, metrics_dir) -> None:
    # The signature records the input columns and types; a no-code deployment checks requests with it.
    signature = infer_signature(X_test, model.predict(X_test))
    mlflow.sklearn.save_model(model, str(model_dir), signature=signature, pip_requirements=pinned_requirements())
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    (Path(metrics_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--training-data", required=True, help="a CSV file of labelled patients")
    parser.add_argument("--max-rows", type=int, default=0, help="use only the first rows (0: all)")
    parser.add_argument("--model", required=True, help="output folder for the MLflow model")
    parser.add_argument("--metrics", required=True, help="output folder for metrics.json")
    args = parser.parse_args()

    data = pd.read_csv(args.training_data)
    if args.max_rows:
        data = data.head(args.max_rows)
    model, metrics, X_test = train(data)
    print(metrics)
    if os.environ.get("MLFLOW_RUN_ID"):  # in a job, Azure ML sets it: the metrics go to the job's run
        mlflow.log_metrics({name: value for name, value in metrics.items() if name != "rows"})
    save(model, metrics, X_test, args.model, args.metrics)
