"""The files an AutoML best child's ``outputs/`` folder holds, as Azure writes them.

Azure's AutoML writes, in the best child's artifacts ("How to use AutoML model outputs",
"Deploy an AutoML model to an online endpoint", "AutoML code generation" on
learn.microsoft.com, and the azureml-examples AutoML notebooks that read them)::

    outputs/model.pkl                 the fitted pipeline, loaded with joblib by the scoring file
    outputs/conda_env_v_1_0_0.yml     the environment the scoring file needs
    outputs/scoring_file_v_1_0_0.py   init()/run(data) for a deployment
    outputs/scoring_file_v_2_0_0.py   init()/run(Inputs, GlobalParameters) for a deployment
    outputs/generated_code/script.py  a training script that rebuilds and refits the pipeline
    outputs/generated_code/conda_environment.yaml
    outputs/mlflow-model/             the same pipeline as an MLflow model; its MLmodel metadata
                                      names the AutoML image (azureml.base_image) and engine

What differs, and why: Azure's pickle holds azureml-automl-runtime classes and its
environment pins that SDK. Here the pickle holds a plain scikit-learn ``Pipeline`` of
scikit-learn, LightGBM and XGBoost parts (see ``featurization``), so it loads with those
libraries alone, and the environment pins what the pickle really imports, at the versions
installed here. The scoring files and the training script are this project's own code,
with the structure of Azure's (``init()`` / ``run()`` with inference-schema samples).
"""
from __future__ import annotations

import importlib
import inspect
import io
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.sim.jobs.automl.runtime import featurization

MLFLOW_FOLDER = "mlflow-model"
MODEL_FILE = "model.pkl"
CONDA_FILE = "conda_env_v_1_0_0.yml"
SCORING_FILES = ("scoring_file_v_1_0_0.py", "scoring_file_v_2_0_0.py")
GENERATED_CODE = "generated_code"
# The packages a deployment needs besides the model's own: the scoring file's schema decorators
# and the inference server an Azure ML online deployment runs the scoring file in.
SERVING_PACKAGES = ("inference-schema", "azureml-inference-server-http", "joblib", "pandas")


# -- what the model needs ---------------------------------------------------------------------------------
def pickle_imports(data: bytes) -> set[str]:
    """The modules a pickle imports when it is loaded (read without building the objects' state)."""
    modules: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            modules.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return modules


def requirements(modules) -> list[str]:
    """pip requirements ``name==version`` for the installed distributions behind ``modules``."""
    from importlib.metadata import packages_distributions, version

    owners = packages_distributions()
    pins = set()
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins":
            continue
        for dist in owners.get(top, [top]):
            pins.add(f"{dist}=={version(dist)}")
    return sorted(pins, key=str.lower)


def _installed(names) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def conda_yaml(pip: list[str]) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    lines = ["# The environment the AutoML model and its scoring file need (the versions it was trained with).",
             "name: project_environment", "channels:", "- conda-forge", "dependencies:", f"- python={python}",
             "- pip", "- pip:"]
    return "\n".join(lines + [f"  - {requirement}" for requirement in pip]) + "\n"


# -- the scoring files -----------------------------------------------------------------------------------
def _value_code(value) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


def sample_frame_code(frame: pd.DataFrame) -> str:
    """``pd.DataFrame({...})`` with one placeholder row in ``frame``'s columns and types."""
    columns = []
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            value = "False"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            value = 'pd.Timestamp("2000-01-01")'
        elif pd.api.types.is_numeric_dtype(dtype):
            value = "0"
        else:
            value = '"example_value"'
        columns.append(f"    {column!r}: pd.Series([{value}], dtype={str(dtype)!r}),")
    return "pd.DataFrame({\n" + "\n".join(columns) + "\n})"


_SCORING_HEADER = '''"""Scoring script for the AutoML model in model.pkl ({about}).

A deployment calls init() once per worker and run() for each request. The schema decorators
(inference-schema) turn the request's JSON into a pandas DataFrame with the training data's
columns and types, and describe the request in the service's Swagger document.
"""
import json
import logging
import os

import joblib
import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

logger = logging.getLogger("automl.scoring")
model = None


def init():
    """Load the model from the folder the deployment mounts it in (AZUREML_MODEL_DIR)."""
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR", ""), "model.pkl")
    logger.info("Loading the model from %s", model_path)
    model = joblib.load(model_path)

'''

_SCORING_V1 = '''
# One row in the training data's columns and types; requests are converted to them.
input_sample = {sample}
output_sample = np.array([{output}])


@input_schema("data", PandasParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    """Request: {{"data": [{{column: value, ...}}, ...]}}. Answer: {{"result": [prediction, ...]}}."""
    try:
        return json.dumps({{"result": np.asarray(model.predict(data)).tolist()}})
    except Exception as error:
        logger.exception("Scoring failed")
        return json.dumps({{"error": str(error)}})
'''

_SCORING_V2 = '''
# One row in the training data's columns and types; requests are converted to them.
data_sample = PandasParameterType({sample})
input_sample = StandardPythonParameterType({{"data": data_sample}})
method_sample = StandardPythonParameterType("predict")
global_parameters_sample = StandardPythonParameterType({{"method": method_sample}})
output_sample = StandardPythonParameterType({{"Results": NumpyParameterType(np.array([{output}]))}})
METHODS = {methods}


@input_schema("GlobalParameters", global_parameters_sample, convert_to_provided_type=False)
@input_schema("Inputs", input_sample)
@output_schema(output_sample)
def run(Inputs, GlobalParameters={{"method": "predict"}}):
    """Request: {{"Inputs": {{"data": [{{column: value, ...}}, ...]}}, "GlobalParameters": {{"method": ...}}}}.

    "method" is "predict"{proba_note}. Answer: {{"Results": [...]}}.
    """
    method = GlobalParameters.get("method", "predict")
    if method not in METHODS:
        raise ValueError(f"GlobalParameters method must be one of {{METHODS}}, not {{method!r}}.")
    result = getattr(model, method)(Inputs["data"])
    if isinstance(result, (pd.DataFrame, pd.Series)):
        result = result.to_numpy()
    return {{"Results": np.asarray(result).tolist()}}
'''


def scoring_files(sample: pd.DataFrame, output_value, about: str, classification: bool) -> dict[str, str]:
    header = _SCORING_HEADER.format(about=about)
    frame_code = sample_frame_code(sample)
    output = _value_code(output_value)
    methods = ("predict", "predict_proba") if classification else ("predict",)
    proba_note = ' or "predict_proba" (class probabilities)' if classification else ""
    return {
        SCORING_FILES[0]: header + _SCORING_V1.format(sample=frame_code, output=output),
        SCORING_FILES[1]: header + _SCORING_V2.format(sample=frame_code, output=output, methods=repr(methods),
                                                      proba_note=proba_note),
    }


# -- the generated training script -------------------------------------------------------------------------
def _public_path(cls) -> str:
    """The shortest importable module path that exports ``cls`` (``sklearn.ensemble``, ``lightgbm``)."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = ".".join(parts[:end])
        try:
            if getattr(importlib.import_module(module), cls.__name__, None) is cls:
                return module
        except ImportError:
            continue
    return cls.__module__


def estimator_code(value, imports: set[str]) -> str:
    """Python source that builds ``value`` (an estimator and its parameters, as scikit-learn's
    ``get_params`` reports them); its imports are added to ``imports``."""
    from sklearn.base import BaseEstimator

    if isinstance(value, BaseEstimator):
        cls = type(value)
        imports.add(f"from {_public_path(cls)} import {cls.__name__}")
        defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
        arguments = []
        for name, param in sorted(value.get_params(deep=False).items()):
            default = defaults.get(name, None)
            same = default is param or (not isinstance(param, BaseEstimator) and _equal(default, param))
            if not same:
                arguments.append(f"{name}={estimator_code(param, imports)}")
        return f"{cls.__name__}({', '.join(arguments)})"
    if isinstance(value, list):
        return "[" + ", ".join(estimator_code(item, imports) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(estimator_code(item, imports) for item in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {estimator_code(v, imports)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (str, int, float, bool, np.generic)):
        return _value_code(value)
    raise ValueError(f"No source for a parameter of type {type(value).__name__}.")


def _equal(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def _featurization_source() -> str:
    """The featurization module's code, without its docstring and future import (the script has its own)."""
    source = inspect.getsource(featurization)
    body = source.split("from __future__ import annotations\n", 1)[1]
    return body.strip() + "\n"


_SCRIPT = '''"""Training script generated by automated ML for {child} ({algorithm}).

It rebuilds the best child's pipeline (featurization and estimator, with the hyperparameters
the search found), trains it on the data given, and saves it in ./outputs as model.pkl and
as an MLflow model. Run it as a command job, for example::

    python script.py --training_dataset_uri azureml:<mltable data asset>:<version>

Change the featurization or the estimator below to experiment from here.
"""
from __future__ import annotations

import argparse
import os

import joblib
{imports}

TARGET_COLUMN = {target!r}
DROPPED_COLUMNS = {dropped!r}  # the target and the weight column
TASK = {task!r}
FEATURIZATION = {spec!r}


{featurization}

def get_training_dataset(uri: str) -> pd.DataFrame:
    """An MLTable folder or data asset URI -> a DataFrame (rows without a target dropped)."""
    import mltable

    frame = mltable.load(uri).to_pandas_dataframe()
    return frame[frame[TARGET_COLUMN].notna()].reset_index(drop=True)


def build_model():
    return {model}


def build_pipeline(frame: pd.DataFrame) -> Pipeline:
    featurizer = build_featurizer(FEATURIZATION, frame, frame[TARGET_COLUMN])
    steps = list(featurizer.steps) if isinstance(featurizer, Pipeline) else [("featurize", featurizer)]
    return Pipeline(steps + [("model", build_model())])


def main(training_dataset_uri: str) -> None:
    import mlflow.sklearn

    frame = get_training_dataset(training_dataset_uri)
    X = frame.drop(columns=[c for c in DROPPED_COLUMNS if c in frame.columns])
    y = frame[TARGET_COLUMN]
    if TASK == "Forecasting":
        order = X[FEATURIZATION["settings"]["time_column"]].argsort(kind="stable")
        X, y, frame = X.iloc[order], y.iloc[order], frame.iloc[order]
    pipeline = build_pipeline(frame).fit(X, y)
    print(f"Trained on {{len(X)}} rows; training score {{pipeline.score(X, y):.4f}}.")
    os.makedirs("outputs", exist_ok=True)
    joblib.dump(pipeline, os.path.join("outputs", "model.pkl"))
    mlflow.sklearn.save_model(pipeline, os.path.join("outputs", "mlflow-model"), serialization_format="pickle",
                              signature=mlflow.models.infer_signature(X.head(100), pipeline.predict(X.head(100))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--training_dataset_uri", required=True, help="MLTable folder or data asset URI")
    main(parser.parse_args().training_dataset_uri)
'''


def training_script(child: str, algorithm: str, estimator, spec: dict, target: str, dropped: list, task: str) -> str:
    imports: set[str] = set()
    model = estimator_code(estimator, imports)
    plain = sorted(i for i in imports if i.startswith("import "))
    froms = sorted(i for i in imports if i.startswith("from "))
    featurization_imports = [line for line in _featurization_source().splitlines()
                             if line.startswith(("import ", "from "))]
    body = "\n".join(line for line in _featurization_source().splitlines()
                     if not line.startswith(("import ", "from ")))
    all_imports = sorted(set(plain + froms + featurization_imports), key=lambda i: (i.startswith("from "), i))
    return _SCRIPT.format(child=child, algorithm=algorithm, imports="\n".join(all_imports), target=target,
                          dropped=dropped, task=task, spec=spec, featurization=body.strip() + "\n", model=model)


# -- all of it --------------------------------------------------------------------------------------------
def write_best_child_outputs(outputs: Path, pipeline, sample: pd.DataFrame, *, child: str, algorithm: str,
                             task: str, spec: dict, target: str, dropped: list, base_image: str, log) -> None:
    """Write the best child's ``outputs/`` as Azure's AutoML does (see the module docstring)."""
    import mlflow.sklearn
    from mlflow.models import Model, infer_signature

    outputs.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(pipeline, protocol=pickle.DEFAULT_PROTOCOL)
    pip = requirements(pickle_imports(data))
    rows = sample.head(100)
    predictions = pipeline.predict(rows)
    mlflow_folder = outputs / MLFLOW_FOLDER
    if mlflow_folder.exists():
        shutil.rmtree(mlflow_folder)
    # The metadata Azure's AutoML sets on its MLflow model: the image it trained in, and the engine.
    mlflow.sklearn.save_model(pipeline, str(mlflow_folder), serialization_format="pickle",
                              signature=infer_signature(rows, predictions), input_example=rows.head(5),
                              pip_requirements=pip, mlflow_model=Model(run_id=child),
                              metadata={"azureml.base_image": base_image, "azureml.engine": "automl"})
    shutil.copyfile(mlflow_folder / MODEL_FILE, outputs / MODEL_FILE)
    serving = sorted(set(pip) | set(_installed(SERVING_PACKAGES)), key=str.lower)
    (outputs / CONDA_FILE).write_text(conda_yaml(serving))
    output_value = predictions[0] if len(predictions) else 0
    for name, text in scoring_files(sample.head(1), output_value, f"AutoML best child {child}, {algorithm}",
                                    task == "Classification").items():
        (outputs / name).write_text(text)
    code = outputs / GENERATED_CODE
    code.mkdir(exist_ok=True)
    try:
        script = training_script(child, algorithm, pipeline.steps[-1][1], spec, target, dropped, task)
    except ValueError as error:  # a parameter with no source form: say so rather than write a wrong script
        log(f"Code generation skipped: {error}")
        return
    (code / "script.py").write_text(script)
    (code / "conda_environment.yaml").write_text(conda_yaml(sorted(set(pip) | set(_installed(
        ("mltable", "mlflow", "joblib"))), key=str.lower)))
