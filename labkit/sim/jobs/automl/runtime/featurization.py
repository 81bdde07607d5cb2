"""Featurization pipelines of the models the simulated AutoML saves, from standard parts only.

Every step built here is a scikit-learn class, and every function a step calls is a NumPy,
pandas or ``operator`` function, so a saved model unpickles wherever scikit-learn (and the
estimator's own library: LightGBM, XGBoost) is installed: no labkit, no FLAML. That is also
why this module imports nothing from labkit: its source is copied into the training script
each best child's ``outputs/generated_code/script.py`` holds, which must run on its own.
"""
from __future__ import annotations

import operator

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder

DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")
SERIES_ID = "_automl_series_id"


def date_parts(column) -> Pipeline:
    """One date-time column -> its calendar parts (the service's DateTime column purpose), as numbers."""
    parts = [(part, make_pipeline(FunctionTransformer(operator.attrgetter(f"dt.{part}")),
                                  FunctionTransformer(np.expand_dims, kw_args={"axis": 1})))
             for part in DATE_PARTS]
    return make_pipeline(FunctionTransformer(pd.to_datetime), FeatureUnion(parts))


def numeric_steps(strategy: str) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy=strategy, keep_empty_features=True), MinMaxScaler(clip=True))


def tabular_featurizer(kinds: dict, numeric_imputer: str = "mean", categorical_encoder: str = "onehot",
                       tfidf: bool = True) -> ColumnTransformer:
    """Raw columns -> numbers, by each column's kind: numeric (and true/false), datetime,
    categorical (one-hot or ordinal codes, or dropped with ``None``), text (TF-IDF) or ignore."""
    numeric = [c for c, kind in kinds.items() if kind == "numeric"]
    dates = [c for c, kind in kinds.items() if kind == "datetime"]
    categorical = [c for c, kind in kinds.items() if kind == "categorical"]
    text = [c for c, kind in kinds.items() if kind == "text"]
    parts = []
    if numeric:
        parts.append(("numeric", numeric_steps(numeric_imputer), numeric))
    for column in dates:
        parts.append((f"date_{column}", make_pipeline(date_parts(column), numeric_steps(numeric_imputer)), column))
    if categorical and categorical_encoder:
        encoder = (OneHotEncoder(handle_unknown="ignore", max_categories=50) if categorical_encoder == "onehot"
                   else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
        parts.append(("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), categorical))
    for column in text if tfidf else []:
        parts.append((f"text_{column}", make_pipeline(SimpleImputer(strategy="constant", fill_value=""),
                                                      FunctionTransformer(np.ravel),
                                                      TfidfVectorizer(max_features=500)), [column]))
    if not parts:
        raise ValueError("No usable feature is left after featurization.")
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def series_keys(frame: pd.DataFrame, series_columns) -> pd.Series:
    """Each row's time series, as one string ("S1|bread"); a single series without id columns."""
    if not series_columns:
        return pd.Series("__single__", index=frame.index)
    return frame[list(series_columns)].astype(str).agg("|".join, axis=1)


def forecast_featurizer(frame: pd.DataFrame, y, time_column, series_columns=(), horizon=1, lags=(), window=None,
                        frequency="D", numeric_imputer="mean", exclude=()) -> Pipeline:
    """Features for a direct forecast ``horizon`` periods ahead, from the training history.

    A row at time ``t`` gets calendar parts, its series' identity (one-hot, first), the other
    columns as given, and target lags counted from the forecast origin: lag ``k`` is the value
    ``horizon + k - 1`` periods before ``t``, and the rolling mean covers ``window`` periods
    ending ``horizon`` periods before ``t``. Every lag is therefore known at the origin, for
    every step of the horizon. The history travels in the model as lookup tables joined to
    the rows with ``pandas.merge``; a row with no history gets gaps, imputed downstream.
    """
    series_columns = list(series_columns)
    keys = series_columns + [time_column]
    offset = pd.tseries.frequencies.to_offset(frequency)
    times = pd.to_datetime(frame[time_column])
    history = frame[series_columns].copy()
    history[time_column] = times
    history["y"] = np.asarray(y, dtype=float)
    history = history.groupby(keys, as_index=False)["y"].last()
    series_table = history[series_columns].drop_duplicates().reset_index(drop=True) if series_columns else None
    steps = [("time", FunctionTransformer(pd.DataFrame.astype, kw_args={"dtype": {time_column: "datetime64[ns]"}}))]
    if series_columns:
        series_table[SERIES_ID] = series_keys(series_table, series_columns)
        steps.append(("series", FunctionTransformer(pd.merge, kw_args={"right": series_table, "how": "left",
                                                                      "on": series_columns})))
    extra = []
    for k in lags:
        table = history.assign(**{time_column: history[time_column] + (horizon + k - 1) * offset})
        steps.append((f"lag_{k}", FunctionTransformer(pd.merge, kw_args={
            "right": table.rename(columns={"y": f"lag_{k}"}), "how": "left", "on": keys})))
        extra.append(f"lag_{k}")
    if window:
        means = []
        for _, group in history.groupby(series_columns) if series_columns else [(None, history)]:
            grid = group.set_index(time_column)["y"].asfreq(offset)
            mean = grid.rolling(int(window), min_periods=1).mean().dropna().rename(f"rolling_mean_{window}")
            mean = mean.reset_index()
            for column in series_columns:
                mean[column] = group[column].iloc[0]
            mean[time_column] = mean[time_column] + horizon * offset
            means.append(mean)
        steps.append(("rolling_mean", FunctionTransformer(pd.merge, kw_args={
            "right": pd.concat(means, ignore_index=True)[keys + [f"rolling_mean_{window}"]], "how": "left",
            "on": keys})))
        extra.append(f"rolling_mean_{window}")
    others = [c for c in frame.columns if c not in (time_column, *series_columns, *exclude)]
    parts = []
    if series_columns:
        parts.append(("series", OneHotEncoder(categories=[list(series_table[SERIES_ID])], handle_unknown="ignore",
                                              sparse_output=False), [SERIES_ID]))
    parts.append(("calendar", make_pipeline(date_parts(time_column), numeric_steps(numeric_imputer)), time_column))
    if others or extra:
        parts.append(("numeric", numeric_steps(numeric_imputer), others + extra))
    steps.append(("columns", ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)))
    return Pipeline(steps)


def passthrough_featurizer(columns) -> ColumnTransformer:
    """Featurization off: the numeric columns as given."""
    return ColumnTransformer([("numeric", "passthrough", list(columns))])


def build_featurizer(spec: dict, frame: pd.DataFrame, y=None):
    """The featurizer a spec names (``{"kind": ..., "settings": {...}}``); forecasting needs the
    training frame and target, whose history the model keeps."""
    if spec["kind"] == "forecast":
        return forecast_featurizer(frame, y, **spec["settings"])
    if spec["kind"] == "passthrough":
        return passthrough_featurizer(**spec["settings"])
    return tabular_featurizer(**spec["settings"])
