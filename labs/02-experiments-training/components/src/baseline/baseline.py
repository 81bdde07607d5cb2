"""An extra pipeline step (lab 2.3, exercise 1): compare the model with a trivial baseline.

Reads ``test.csv`` and the evaluate step's ``metrics.json``; the baseline always predicts the
most frequent class of the test set. Writes ``comparison.json`` with both accuracies and the
model's lift over the baseline.
"""
import argparse
import json
from pathlib import Path

import pandas as pd

LABEL = "diabetic"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-data", required=True, help="folder with test.csv")
    parser.add_argument("--metrics", required=True, help="folder with the evaluate step's metrics.json")
    parser.add_argument("--comparison", required=True, help="output folder for comparison.json")
    args = parser.parse_args(argv)

    truth = pd.read_csv(Path(args.test_data) / "test.csv")[LABEL]
    baseline_accuracy = float((truth == truth.mode()[0]).mean())
    model_accuracy = json.loads((Path(args.metrics) / "metrics.json").read_text())["accuracy"]
    comparison = {"baseline_accuracy": baseline_accuracy, "model_accuracy": model_accuracy,
                  "lift": model_accuracy - baseline_accuracy}
    out = Path(args.comparison)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    print(json.dumps(comparison))


if __name__ == "__main__":
    main()
