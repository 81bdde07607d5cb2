"""Train one trial of a hyperparameter sweep: a gradient-boosted diabetes classifier (lab L2.5).

    python sweep_train.py --data diabetes.csv [--learning_rate 0.1] [--n_estimators 100]
        [--max_depth 3] [--subsample 1.0] [--log_every 10] [--n_rows 0] [--seed 42]

Reads the course data (a CSV with the label in `diabetic`), holds out a stratified
validation set and grows a GradientBoostingClassifier `log_every` trees at a time. After
each block of trees it logs the validation log loss (`val_log_loss`, the sweep's primary
metric) with MLflow, so a sweep sees one value per block: each value is one *interval* for
an early-termination policy, and a trial the policy cancels stops growing trees. At the end
it logs the final validation AUC and accuracy and saves the model in MLflow format to
`./outputs/model`, which Azure ML uploads with the job's artifacts; the best trial's model
is registered from there.

Everything MLflow records happens inside one `with mlflow.start_run():` block. In an
Azure ML job that block continues the job's own run (Azure ML sets the tracking URI and
the run id), so the script runs unchanged in a sweep trial, in a plain command job, on a
laptop, or in the simulated workspace.
"""
import argparse
import shutil
from importlib import metadata
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

LABEL = "diabetic"
ID_COLUMN = "patient_id"
MODEL_FOLDER = Path("outputs") / "model"
# What the saved model needs to load, pinned to the versions that trained it. Naming them
# also spares MLflow from inferring them, which loads the model again in a new Python
# process, once for every trial.
MODEL_PACKAGES = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy")


def whole_number(text: str) -> int:
    """An integer hyperparameter. QUniform and the other q-distributions may send a whole
    number written as a float ("4.0"), so accept that, but refuse a real fraction."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CSV file with the features and the label")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="shrinkage of each tree")
    parser.add_argument("--n_estimators", type=whole_number, default=100, help="number of trees")
    parser.add_argument("--max_depth", type=whole_number, default=3, help="depth of each tree")
    parser.add_argument("--subsample", type=float, default=1.0, help="share of rows each tree sees")
    parser.add_argument("--log_every", type=whole_number, default=10, help="trees per logged interval")
    parser.add_argument("--n_rows", type=whole_number, default=0, help="use the first n rows (0: all)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and of the model")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = pd.read_csv(args.data)
    if args.n_rows:
        data = data.head(args.n_rows)
    features = data.drop(columns=[LABEL, ID_COLUMN])
    x_train, x_val, y_train, y_val = train_test_split(
        features, data[LABEL], test_size=0.25, random_state=args.seed, stratify=data[LABEL])

    # warm_start keeps the trees already grown, so each fit() below adds one block of trees.
    model = GradientBoostingClassifier(
        learning_rate=args.learning_rate, max_depth=args.max_depth, subsample=args.subsample,
        n_estimators=0, warm_start=True, random_state=args.seed)

    with mlflow.start_run():
        mlflow.log_params({"learning_rate": args.learning_rate, "n_estimators": args.n_estimators,
                           "max_depth": args.max_depth, "subsample": args.subsample,
                           "rows": len(data), "algorithm": "gradient_boosting"})
        while model.n_estimators < args.n_estimators:
            model.n_estimators = min(model.n_estimators + args.log_every, args.n_estimators)
            model.fit(x_train, y_train)
            loss = log_loss(y_val, model.predict_proba(x_val)[:, 1])
            # One value per block of trees: the intervals an early-termination policy counts.
            mlflow.log_metric("val_log_loss", loss, step=model.n_estimators)
            print(f"trees: {model.n_estimators:4d}  val_log_loss: {loss:.4f}", flush=True)

        probability = model.predict_proba(x_val)[:, 1]
        final = {"val_auc": roc_auc_score(y_val, probability),
                 "val_accuracy": accuracy_score(y_val, probability >= 0.5)}
        mlflow.log_metrics(final)
        print("  ".join(f"{name}: {value:.4f}" for name, value in final.items()))

        # Files under ./outputs are uploaded with the job's artifacts (outputs/model/...).
        # Pickled rather than MLflow's newer skops format, which refuses tree models unless
        # their types are listed as trusted, and which older MLflow versions do not know.
        model.set_params(warm_start=False)
        shutil.rmtree(MODEL_FOLDER, ignore_errors=True)  # a second run on a laptop
        mlflow.sklearn.save_model(model, str(MODEL_FOLDER), input_example=x_val.head(3),
                                  serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                                  pip_requirements=[f"{p}=={metadata.version(p)}" for p in MODEL_PACKAGES])
        print(f"saved the model to {MODEL_FOLDER}")


if __name__ == "__main__":
    main()
