"""The first draft of score.py (lab L3.2), kept to show a deployment whose init() fails.

It looks for model.pkl directly in AZUREML_MODEL_DIR, but a registered folder model lands
there under its folder name (diabetes-pickle/model.pkl), so joblib.load raises
FileNotFoundError, the container never becomes ready and the deployment fails.
"""
import json
import os
from pathlib import Path

import joblib
import pandas as pd

model = None


def init():
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")


def run(raw_data):
    table = json.loads(raw_data)["input_data"]
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    return model.predict(frame).tolist()
