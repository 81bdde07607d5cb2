"""Train a diabetes classifier as an Azure ML command job (labs L2.1 and L2.2).

    python train_classifier.py --training-data diabetes.csv --C 1.0 --model-output model/
        [--test-size 0.3] [--seed 42] [--evaluation-output evaluation/]

Reads the course data (a CSV with the label in `diabetic`), holds out a stratified test
set, fits a scaled logistic regression and logs its parameters and test metrics with
MLflow. The fitted model is saved in MLflow format to --model-output; with
--evaluation-output, the test predictions and metrics are written there too.

Everything MLflow records happens inside one `with mlflow.start_run():` block. In an
Azure ML job that block continues the job's own run (Azure ML sets the tracking URI and
the run id), so the script runs unchanged in a job, on a laptop, or in the simulation.
"""
import argparse
import json
import warnings
from importlib import metadata
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

LABEL = "diabetic"
ID_COLUMN = "patient_id"
# What the saved model needs to load, pinned to the versions that trained it. Naming them
# also spares MLflow from inferring them, which means loading the model in a subprocess.
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
# The predicted class is an integer column of the signature; it is never missing.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


def model_requirements():
    pins = []
    for package in MODEL_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:  # e.g. skops, where MLflow does not use it
            pass
    return pins


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-data", required=True, help="CSV file with features and the label")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularization strength")
    parser.add_argument("--test-size", type=float, default=0.3, help="share of rows held out")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/test split")
    parser.add_argument("--model-output", required=True, help="folder for the MLflow model")
    parser.add_argument("--evaluation-output", default=None, help="optional folder for test predictions")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = pd.read_csv(args.training_data)
    # Floats: an MLflow signature with integer columns would refuse missing values later.
    features = data.drop(columns=[LABEL, ID_COLUMN]).astype("float64")
    x_train, x_test, y_train, y_test, _, id_test = train_test_split(
        features, data[LABEL], data[ID_COLUMN],
        test_size=args.test_size, random_state=args.seed, stratify=data[LABEL],
    )

    with mlflow.start_run():
        mlflow.log_params({"C": args.C, "test_size": args.test_size, "seed": args.seed,
                           "rows": len(data), "algorithm": "logistic_regression"})
        model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=1000))
        model.fit(x_train, y_train)

        probability = model.predict_proba(x_test)[:, 1]
        prediction = model.predict(x_test)
        metrics = {"test_accuracy": accuracy_score(y_test, prediction),
                   "test_auc": roc_auc_score(y_test, probability)}
        mlflow.log_metrics(metrics)
        for name, value in metrics.items():
            print(f"{name}: {value:.4f}")

        # The model goes to the job's named output; MLflow keeps a copy of the metrics.
        mlflow.sklearn.save_model(model, args.model_output, input_example=x_test.head(3),
                                 pip_requirements=model_requirements())
        mlflow.log_dict(metrics, "metrics.json")

        if args.evaluation_output:
            folder = Path(args.evaluation_output)
            folder.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({ID_COLUMN: id_test, "actual": y_test, "probability": probability.round(4),
                          "predicted": prediction}).to_csv(folder / "predictions.csv", index=False)
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
            print(f"wrote {len(id_test)} test predictions to {folder}")


if __name__ == "__main__":
    main()
