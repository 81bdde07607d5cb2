"""Pipeline step 2: fit a logistic regression on the prepared train set.

Reads ``train.csv`` from the input folder, standardises the features and fits scikit-learn's
``LogisticRegression`` with the given inverse regularisation strength ``C``. Saves the fitted
pipeline as ``model.joblib`` and the feature order as ``features.json`` in the output folder.
"""
import argparse
import json
from pathlib import Path

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

LABEL = "diabetic"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-data", required=True, help="folder with train.csv")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--model", required=True, help="output folder for the model")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train = pd.read_csv(Path(args.train_data) / "train.csv")
    features = [c for c in train.columns if c != LABEL]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(train[features], train[LABEL])
    out = Path(args.model)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    (out / "features.json").write_text(json.dumps({"features": features, "label": LABEL, "C": args.C}))
    print(f"trained on {len(train)} rows with C={args.C}")


if __name__ == "__main__":
    main()
