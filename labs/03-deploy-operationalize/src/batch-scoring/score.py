"""Batch scoring script of lab 3.3: one row of results per patient in every file.

A batch deployment calls ``init()`` once in each worker process, before the first mini batch,
and ``run(mini_batch)`` once per mini batch, with a list of file paths. Whatever ``run``
returns is appended to the job's predictions file (output action ``append_row``).
"""
import os
from pathlib import Path

import joblib
import pandas as pd

model = None
features = None


def init():
    global model, features
    # The model was registered from a folder called "model": its files sit in that folder.
    folder = Path(os.environ["AZUREML_MODEL_DIR"]) / "model"
    model = joblib.load(folder / "model.joblib")
    features = list(model.feature_names_in_)
    print(f"init: loaded a {type(model).__name__} expecting {len(features)} features")


def run(mini_batch):
    results = []
    for path in mini_batch:
        patients = pd.read_csv(path)
        missing = [name for name in features if name not in patients.columns]
        if missing:
            # Raising fails the whole mini batch: its files count against the error threshold.
            raise ValueError(f"{Path(path).name}: missing columns {missing}")
        probability = model.predict_proba(patients[features].astype("float64"))[:, 1]
        results.append(pd.DataFrame({
            "file": Path(path).name,
            "patient_id": patients["patient_id"],
            "probability": probability.round(4),
            "diabetic": (probability >= 0.5).astype(int),
        }))
    print(f"run: scored {len(mini_batch)} file(s)")
    # One DataFrame for the mini batch; its column names are not written to the file.
    return pd.concat(results, ignore_index=True)
