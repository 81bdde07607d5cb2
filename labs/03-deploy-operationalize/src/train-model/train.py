"""Train the course's diabetes classifier and save it as an MLflow model in ./outputs/model.

An ordinary script: argparse for its inputs, scikit-learn to train, MLflow to log. In a job,
everything under ./outputs is uploaded with the job's artifacts, so the saved model can be
registered from azureml://jobs/<job>/outputs/artifacts/paths/outputs/model/.
"""
import argparse
from importlib import metadata

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# What the saved model needs to load, pinned to the versions that trained it (MLflow 3 saves
# scikit-learn models with skops; an MLflow 2 environment has none). Naming them also spares
# MLflow from inferring them, which loads the model again in a new Python process.
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def model_requirements() -> list[str]:
    pins = []
    for package in MODEL_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:  # skops, under MLflow 2
            pass
    return pins


parser = argparse.ArgumentParser()
parser.add_argument("--training-data", required=True)
parser.add_argument("--C", type=float, default=1.0)
parser.add_argument("--max-rows", type=int, default=0, help="use only the first rows (0: all)")
args = parser.parse_args()

data = pd.read_csv(args.training_data)
if args.max_rows:
    data = data.head(args.max_rows)
# Doubles, not integers: a signature with integer columns cannot accept missing values later.
features = data.drop(columns=["patient_id", "diabetic"]).astype("float64")
X_train, X_test, y_train, y_test = train_test_split(
    features, data["diabetic"], test_size=0.3, random_state=0, stratify=data["diabetic"])

with mlflow.start_run():
    mlflow.log_params({"C": args.C, "rows": len(data)})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=1000))
    model.fit(X_train, y_train)
    metrics = {
        "test_accuracy": accuracy_score(y_test, model.predict(X_test)),
        "test_auc": roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]),
    }
    mlflow.log_metrics(metrics)
    print({name: round(value, 4) for name, value in metrics.items()})
    # The signature records the input columns and their types; deployments check requests against it.
    signature = infer_signature(X_test, model.predict(X_test))
    mlflow.sklearn.save_model(model, "outputs/model", signature=signature,
                              pip_requirements=model_requirements())
