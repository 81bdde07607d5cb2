"""Pipeline step 1: turn the raw screening file into a train set and a test set.

Reads one CSV file, drops the identifier column and incomplete rows, optionally keeps only
the first ``--max-rows`` rows, and writes ``train.csv`` and ``test.csv`` (a stratified split)
into two output folders. Plain Python: it runs the same in a pipeline on Azure, in the
simulated workspace, or on a laptop.
"""
import argparse
import json
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

LABEL = "diabetic"
NOT_A_FEATURE = ["patient_id"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-data", required=True, help="CSV file with the raw rows")
    parser.add_argument("--max-rows", type=int, default=0, help="keep only this many rows (0: all)")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-data", required=True, help="output folder for train.csv")
    parser.add_argument("--test-data", required=True, help="output folder for test.csv")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = pd.read_csv(args.raw_data)
    rows = rows.drop(columns=[c for c in NOT_A_FEATURE if c in rows.columns]).dropna()
    if args.max_rows > 0:
        rows = rows.head(args.max_rows)
    train, test = train_test_split(
        rows, test_size=args.test_fraction, random_state=args.seed, stratify=rows[LABEL]
    )
    for folder, part, name in ((args.train_data, train, "train.csv"), (args.test_data, test, "test.csv")):
        Path(folder).mkdir(parents=True, exist_ok=True)
        part.to_csv(Path(folder) / name, index=False)
    summary = {"rows": len(rows), "train_rows": len(train), "test_rows": len(test),
               "positive_share": round(float(rows[LABEL].mean()), 4)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
