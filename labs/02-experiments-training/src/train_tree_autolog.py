"""Train a decision tree with MLflow autologging (lab L2.2).

    python train_tree_autolog.py --training-data diabetes.csv --max-depth 6
        [--min-samples-leaf 1] [--test-size 0.3] [--seed 42]

`mlflow.sklearn.autolog()` records what scikit-learn knows when `fit` runs: every
parameter of the estimator, training metrics and the fitted model. The held-out metrics
are the script's own, logged by hand in the same run so that every number of this
training ends up in one place. The split and the metric names match the runs the lab
logs from the notebook, so all of them can be compared in one table.
"""
import argparse

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

LABEL = "diabetic"
ID_COLUMN = "patient_id"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-data", required=True, help="CSV file with features and the label")
    parser.add_argument("--max-depth", type=int, required=True, help="deepest level of the tree")
    parser.add_argument("--min-samples-leaf", type=int, default=1, help="fewest rows in a leaf")
    parser.add_argument("--test-size", type=float, default=0.3, help="share of rows held out")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and the tree")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = pd.read_csv(args.training_data)
    features = data.drop(columns=[LABEL, ID_COLUMN]).astype("float64")
    x_train, x_test, y_train, y_test = train_test_split(
        features, data[LABEL], test_size=args.test_size, random_state=args.seed, stratify=data[LABEL])

    # Autolog only records: it needs no run of its own when one is active. Without the
    # explicit run, autolog would start a run for `fit` and end it afterwards, and the
    # log_metrics call below would land in a second run.
    mlflow.sklearn.autolog(log_post_training_metrics=False)
    with mlflow.start_run():
        model = DecisionTreeClassifier(max_depth=args.max_depth, min_samples_leaf=args.min_samples_leaf,
                                       random_state=args.seed)
        model.fit(x_train, y_train)
        metrics = {
            "train_auc": roc_auc_score(y_train, model.predict_proba(x_train)[:, 1]),
            "test_auc": roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]),
            "test_accuracy": accuracy_score(y_test, model.predict(x_test)),
        }
        mlflow.log_metrics(metrics)
        mlflow.set_tag("logging", "autolog")
        for name, value in metrics.items():
            print(f"{name}: {value:.4f}")


if __name__ == "__main__":
    main()
