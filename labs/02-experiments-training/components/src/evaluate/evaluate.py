"""Pipeline step 3: score the model on the held-out test set.

Loads ``model.joblib`` and ``features.json`` from the model folder and ``test.csv`` from the
test folder, computes accuracy, ROC AUC, precision and recall, writes them to
``metrics.json`` in the output folder and logs them with MLflow (on Azure, and in the
simulated workspace, MLflow is already pointed at the step's own run).
"""
import argparse
import json
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="folder with model.joblib")
    parser.add_argument("--test-data", required=True, help="folder with test.csv")
    parser.add_argument("--metrics", required=True, help="output folder for metrics.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = joblib.load(Path(args.model) / "model.joblib")
    info = json.loads((Path(args.model) / "features.json").read_text())
    test = pd.read_csv(Path(args.test_data) / "test.csv")
    truth = test[info["label"]]
    predicted = model.predict(test[info["features"]])
    probability = model.predict_proba(test[info["features"]])[:, 1]
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "auc": roc_auc_score(truth, probability),
        "precision": precision_score(truth, predicted),
        "recall": recall_score(truth, predicted),
    }
    mlflow.log_metrics(metrics)
    out = Path(args.metrics)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({**metrics, "test_rows": len(test)}, indent=2))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
