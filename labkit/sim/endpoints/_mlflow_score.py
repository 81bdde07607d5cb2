"""The scoring script of a no-code MLflow deployment (the simulation's own, loaded by the inference server).

On Azure, deploying an ``mlflow_model`` without a scoring script or environment makes the
service supply both: an MLflow inference image with azureml-inference-server-http,
mlflow-skinny and a scoring script
(https://learn.microsoft.com/azure/machine-learning/how-to-deploy-mlflow-models-online-endpoints).
That script reads the request's ``input_data`` with the inference-schema package, whose
parameter types are built from a sample of the model's input; this one does the same, with the
same package:

- the sample is the model's saved input example if it has one, else one built from the
  signature (an empty DataFrame with the signature's column types, or an array of its tensor
  type); a model with neither gets no sample;
- a column-based sample: ``input_data`` is a DataFrame in the *split* orientation
  (``{"columns": [...], "index": [...], "data": [[...]]}``, ``index`` optional), read with
  ``pandas.read_json`` and then cast to the sample's column types (``astype``). So integers
  sent for ``double`` columns arrive as doubles and are scored, and a value that cannot be cast
  (text for a number) fails the request;
- a tensor sample: a JSON list read as an array of the tensor's type (named tensors: a dict
  of such lists);
- no sample: a list is a tensor, a dict with ``columns``, ``index`` *and* ``data`` a DataFrame,
  any other dict named tensors.

The model is loaded with ``mlflow.pyfunc.load_model``, whose ``predict`` then enforces the
signature as MLflow does (missing columns, unsafe conversions such as double -> long refused).
Predictions come back as MLflow's scoring server makes them JSON (records for a DataFrame).
A failure raises: the server answers 500 and the endpoint passes it on as 424, as on Azure.
"""
from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

model = None
reader = None  # reads input_data into the model's input; set by init()


def _model_folder() -> Path:
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (candidate / "MLmodel").is_file():
            return candidate
    raise FileNotFoundError(f"No MLmodel file under {root}")


def _example_sample(metadata, folder: Path):
    """The saved input example as the sample, read as Azure's script reads it (or None)."""
    import numpy as np
    import pandas as pd

    info = metadata.saved_input_example_info
    if not info:
        return None
    try:
        loaded = json.loads((folder / info["artifact_path"]).read_text())
        if info.get("type") == "dataframe":
            orient = "split" if "columns" in loaded else "values"
            return pd.read_json(StringIO(json.dumps(loaded)), orient=orient, dtype=False)
        if info.get("type") == "ndarray":
            inputs = loaded["inputs"]
            if isinstance(inputs, dict):
                return {name: np.asarray(values) for name, values in inputs.items()}
            return np.asarray(inputs)
    except Exception as error:  # Azure's script warns and falls back on the signature
        print(f"Could not read the model's input example ({error}); using its signature instead.")
    return None


def _signature_sample(metadata):
    """A sample built from the signature's inputs (or None without a signature)."""
    import numpy as np
    import pandas as pd

    schema = metadata.get_input_schema()
    if schema is None:
        return None
    if schema.is_tensor_spec():
        def batch_of_one(spec):
            shape = list(spec.shape or ())
            if shape and shape[0] == -1:
                shape[0] = 1
            return np.zeros(tuple(abs(d) for d in shape), dtype=spec.type)

        if schema.has_input_names():
            return {spec.name: batch_of_one(spec) for spec in schema.inputs}
        return batch_of_one(schema.inputs[0])
    columns = schema.input_names()
    return pd.DataFrame(columns=columns).astype(dict(zip(columns, schema.pandas_types())))


def _reader_for(sample):
    """A function reading ``input_data`` as inference-schema's parameter type for ``sample`` does."""
    import numpy as np
    import pandas as pd
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

    if isinstance(sample, pd.DataFrame):
        return PandasParameterType(sample, enforce_shape=False, orient="split").deserialize_input
    if isinstance(sample, np.ndarray):
        return NumpyParameterType(sample, enforce_shape=False).deserialize_input
    if isinstance(sample, dict):
        tensors = {name: NumpyParameterType(value, enforce_shape=False) for name, value in sample.items()}

        def named_tensors(input_data):
            if not isinstance(input_data, dict):
                raise ValueError(f"Invalid input data type to parse. Expected: {dict} but got {type(input_data)}")
            return {name: tensors[name].deserialize_input(value) if name in tensors else value
                    for name, value in input_data.items()}

        return named_tensors
    return _without_sample


def _without_sample(input_data):
    import numpy as np
    import pandas as pd

    if isinstance(input_data, list):
        return np.asarray(input_data)
    if isinstance(input_data, dict) and {"columns", "index", "data"} <= set(input_data):
        return pd.read_json(StringIO(json.dumps(input_data)), orient="split", dtype=False)
    if isinstance(input_data, dict):
        return {name: np.asarray(values) for name, values in input_data.items()}
    raise ValueError("input_data must be a DataFrame in the split orientation (columns, index, data), "
                     "a list (tensor) or a dict of lists (named tensors).")


def init():
    global model, reader
    import mlflow.pyfunc
    from mlflow.models import Model

    folder = _model_folder()
    metadata = Model.load(str(folder))
    sample = _example_sample(metadata, folder)
    if sample is None:
        sample = _signature_sample(metadata)
    reader = _reader_for(sample)
    model = mlflow.pyfunc.load_model(str(folder))
    print(f"Loaded MLflow model from {folder} (flavors: {', '.join(model.metadata.flavors)})")


def run(raw_data):
    from mlflow.pyfunc.scoring_server import _get_jsonable_obj

    request = json.loads(raw_data)
    if not isinstance(request, dict) or "input_data" not in request:
        raise ValueError("The request must be a JSON object with the model input under the key 'input_data'.")
    params = request.get("params")
    model_input = reader(request["input_data"])
    predictions = model.predict(model_input, params=params) if params else model.predict(model_input)
    return _get_jsonable_obj(predictions, pandas_orient="records")
