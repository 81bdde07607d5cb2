"""Summarize a folder of screening files: one row per file (a step of lab 3.3's pipeline)."""
import argparse
from pathlib import Path

import pandas as pd

# The diagnostic threshold for diabetes on a two-hour glucose test is higher (200 mg/dL);
# 126 mg/dL is used here only as a simple "look again" flag for the report.
FLAG_MG_DL = 126

parser = argparse.ArgumentParser()
parser.add_argument("--screening-files")
parser.add_argument("--report")
args = parser.parse_args()

rows = []
for path in sorted(Path(args.screening_files).glob("*.csv")):
    patients = pd.read_csv(path)
    glucose = patients["plasma_glucose_mg_dl"]
    rows.append({
        "file": path.name,
        "patients": len(patients),
        "mean_glucose": round(float(glucose.mean()), 1),
        "share_flagged": round(float((glucose >= FLAG_MG_DL).mean()), 3),
    })
report = pd.DataFrame(rows)
Path(args.report).mkdir(parents=True, exist_ok=True)
report.to_csv(Path(args.report) / "report.csv", index=False)
print(report.to_string(index=False))
