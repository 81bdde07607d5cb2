"""An AutoML job's data as the service prepares it: the plan, the tables, featurization, validation.

Stands for the service's data preparation before the search: ``Plan`` is what the job's REST
payload asks for; ``_load_table`` reads an MLTable input; ``_featurizer`` decides each column's
featurization from the ``featurization`` settings as the service does (auto: impute, scale,
one-hot, TF-IDF, date parts and drop IDs; ``mode='off'``: numbers only; blocked transformers,
column types and transformer parameters under ``mode='custom'`` only), and forecasting's lags and
rolling window; ``_tabular_split`` and ``_forecast_split`` choose the validation as the service
does (a validation table, a fraction, cross-validation folds by the number of rows, rolling-origin
folds for forecasting). The featurization itself is ``runtime/featurization.py``, which the best
model carries with it.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit.sim.core import references
from labkit.sim.jobs.automl.algorithms import SEED
from labkit.sim.jobs.automl.runtime import featurization


@dataclass
class Plan:
    """What one AutoML job asks for, read from its REST payload."""

    task: str
    target: str
    metric: str
    limits: dict
    training: dict
    featurization: dict
    forecasting: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def is_classification(self) -> bool:
        return self.task == "Classification"


def _load_table(workspace, value: dict):
    """An MLTable input of the job -> a pandas DataFrame. The MLTable file's own paths may be
    datastore URIs; they are read as a command job's script reads them (``fs.mltable_for_job``),
    since this process has no ``azureml://`` protocol of its own."""
    import tempfile

    import mltable

    from labkit.sim.core.fs import local_path, mltable_for_job

    uri = value["uri"]
    if uri.startswith(("azureml:", "/subscriptions/")) and not uri.startswith("azureml://"):
        uri = references.data_asset_uri(workspace, uri)
    folder = Path(local_path(uri) if uri.startswith("azureml://") else uri)
    with tempfile.TemporaryDirectory() as resolved:
        return mltable.load(str(mltable_for_job(folder, Path(resolved) / "table"))).to_pandas_dataframe()


class _Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", buffering=1)

    def __call__(self, message: str) -> None:
        self._handle.write(message.rstrip("\n") + "\n")


CUSTOMIZATIONS = {"blockedTransformers": "blocked_transformers", "columnNameAndTypes": "column_name_and_types",
                  "transformerParams": "transformer_params"}


def _customizations_of_mode(mode: str, settings: dict, log: _Log) -> dict:
    """``settings`` without the customizations that ``mode`` does not apply.

    Blocked transformers, column types and transformer parameters customize featurization in
    "custom" mode only (REST API, TableVerticalFeaturizationSettings.mode: "If 'Custom' is
    selected then user can specify additional inputs to customize how featurization is done";
    "Data featurization in automated machine learning" customizes with mode="custom"). The SDK
    sends them whatever the mode; under "auto" or "off" the service featurizes without them.
    """
    ignored = [sdk_name for rest_name, sdk_name in CUSTOMIZATIONS.items() if settings.get(rest_name)]
    if mode == "custom" or not ignored:
        return settings
    log(f"Featurization mode is '{mode}': {', '.join(ignored)} take effect only with mode='custom' and are "
        "not applied.")
    return {key: value for key, value in settings.items() if key not in CUSTOMIZATIONS}


def _featurizer(plan: Plan, frame, log: _Log):
    """The featurization the service's ``featurization`` settings ask for, as (pipeline, spec):
    the spec is what the generated training script rebuilds the same pipeline from."""
    import pandas as pd

    settings = plan.featurization or {}
    mode = (settings.get("mode") or "auto").lower()
    settings = _customizations_of_mode(mode, settings, log)
    blocked = {b.lower() for b in settings.get("blockedTransformers") or []}
    purposes = {column: kind.lower() for column, kind in (settings.get("columnNameAndTypes") or {}).items()}
    numeric_imputer = "mean"
    # The SDK sends the transformer names capitalised ("Imputer"); the service reads them either way.
    params = {str(key).lower(): value for key, value in (settings.get("transformerParams") or {}).items()}
    for item in (params.get("imputer") or []):
        strategy = (item.get("parameters") or {}).get("strategy")
        if strategy:
            numeric_imputer = strategy  # the simulation applies one numeric imputation strategy to all columns

    if plan.task == "Forecasting":
        fs = plan.forecasting
        lags = (fs.get("targetLags") or {}).get("values") or []
        if (fs.get("targetLags") or {}).get("mode") == "Auto":
            lags = [1, 7]  # "auto": the simulation picks the previous period and the same period a week back
        window = (fs.get("targetRollingWindowSize") or {}).get("value")
        spec = {"kind": "forecast", "settings": {
            "time_column": fs["timeColumnName"], "series_columns": list(fs.get("timeSeriesIdColumnNames") or ()),
            "horizon": int((fs.get("forecastHorizon") or {}).get("value") or 1), "lags": [int(k) for k in lags],
            "window": int(window) if window else None, "frequency": fs.get("frequency") or "D",
            "numeric_imputer": numeric_imputer,
            "exclude": [plan.target] + ([plan.details["weightColumnName"]] if plan.details.get("weightColumnName")
                                        else [])}}
        return featurization.build_featurizer(spec, frame, frame[plan.target]), spec

    columns = [c for c in frame.columns if c != plan.target]
    if mode == "off":
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
        other = sorted(set(columns) - set(numeric))
        if other:
            raise ValueError(f"Featurization is off, so every feature must be numeric; these are not: {other}.")
        spec = {"kind": "passthrough", "settings": {"columns": numeric}}
        return featurization.build_featurizer(spec, frame), spec
    kinds: dict[str, str] = {}
    for column in columns:
        series = frame[column]
        if column in purposes:
            kinds[column] = purposes[column]
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            kinds[column] = "ignore" if series.nunique(dropna=True) <= 1 else "numeric"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kinds[column] = "datetime"
        else:
            unique = series.nunique(dropna=True)
            # The service drops features with one value, all missing, or one value per row (IDs, hashes).
            if unique <= 1 or unique == series.notna().sum():
                kinds[column] = "ignore"
            elif unique <= max(50, int(0.05 * len(series))):
                kinds[column] = "categorical"
            else:
                kinds[column] = "text"
    dropped = [c for c, k in kinds.items() if k in ("ignore", "hashes")]
    if dropped:
        log(f"Featurization: dropped {dropped} (one value, or one value per row such as an ID).")
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    encoder = "onehot" if "onehotencoder" not in blocked else "ordinal" if "labelencoder" not in blocked else None
    if categorical and encoder is None:
        log(f"Featurization: OneHotEncoder and LabelEncoder are blocked; categorical {categorical} dropped.")
    text = [c for c, k in kinds.items() if k == "text"]
    if text and "tfidf" in blocked:
        log(f"Featurization: TfIdf is blocked; text columns {text} dropped.")
    spec = {"kind": "tabular", "settings": {"kinds": kinds, "numeric_imputer": numeric_imputer,
                                            "categorical_encoder": encoder, "tfidf": "tfidf" not in blocked}}
    return featurization.build_featurizer(spec, frame), spec


class _Folds:
    """Predefined folds handed to FLAML. FLAML shuffles the rows of a splitter that has a
    ``shuffle`` attribute set; this one says it does not, so the folds are used as given."""

    shuffle = False

    def __init__(self, folds: list[tuple[np.ndarray, np.ndarray]]):
        self.folds = folds

    def split(self, X=None, y=None, groups=None):
        return iter(self.folds)

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.folds)


def _default_folds(n_rows: int) -> int:
    """The service's rule when no validation is configured: below 1,000 rows 10 folds, up to
    20,000 rows 3 folds (above that a 10 % validation split)."""
    return 10 if n_rows < 1000 else 3


def _tabular_split(plan: Plan, X, y, validation) -> dict:
    """Rows used for validation: a validation table, a fraction, or cross-validation folds."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    details = plan.details
    n = len(X)
    cv = (details.get("nCrossValidations") or {})
    if validation is not None:
        return {"kind": "holdout", "X_val": validation[0], "y_val": validation[1], "X_train": X, "y_train": y}
    fraction = details.get("validationDataSize")
    folds = cv.get("value") if cv.get("mode") == "Custom" else None
    if not fraction and not folds:
        if n > 20_000:
            fraction = 0.1
        else:
            folds = _default_folds(n)
    if fraction:
        stratify = y if plan.is_classification and min(np.unique(y, return_counts=True)[1]) >= 2 else None
        X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=fraction, random_state=SEED,
                                                          stratify=stratify)
        return {"kind": "holdout", "X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}
    splitter = (StratifiedKFold(int(folds), shuffle=True, random_state=SEED) if plan.is_classification
                else KFold(int(folds), shuffle=True, random_state=SEED))
    return {"kind": "cv", "folds": list(splitter.split(X, y)), "X_train": X, "y_train": y}


def _forecast_split(plan: Plan, frame, validation) -> dict:
    """Rolling-origin validation: each fold trains on the past and validates on the next
    ``horizon`` periods of every series; origins step back ``cv_step_size`` periods."""
    import pandas as pd

    fs = plan.forecasting
    horizon = int((fs.get("forecastHorizon") or {}).get("value") or 1)
    times = pd.to_datetime(frame[fs["timeColumnName"]])
    offset = pd.tseries.frequencies.to_offset(fs.get("frequency") or "D")
    if validation is not None:
        return {"kind": "holdout", "validation_frame": validation}
    cv = plan.details.get("nCrossValidations") or {}
    n_folds = int(cv.get("value")) if cv.get("mode") == "Custom" else 3
    step = int(fs.get("cvStepSize") or horizon)
    end = times.max()
    folds = []
    for k in range(n_folds):
        origin = end - (horizon + k * step) * offset
        train = np.flatnonzero((times <= origin).to_numpy())
        valid = np.flatnonzero(((times > origin) & (times <= origin + horizon * offset)).to_numpy())
        if len(train) and len(valid):
            folds.append((train, valid))
    if not folds:
        raise ValueError("The training data are too short for forecast_horizon and n_cross_validations.")
    return {"kind": "cv", "folds": list(reversed(folds))}
