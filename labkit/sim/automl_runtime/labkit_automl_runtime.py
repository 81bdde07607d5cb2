"""Featurization steps of the models the simulated AutoML saves.

This file travels inside every MLflow model the simulation saves (``code/`` beside the
pickled pipeline, through ``mlflow.sklearn.log_model(code_paths=...)``), so a saved model
loads and serves with pandas, NumPy and scikit-learn only: no labkit, no FLAML. It is imported
as the top-level module ``labkit_automl_runtime`` for that reason; keep it free of imports
from labkit.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone

CALENDAR_FEATURES = ("year", "month", "day", "dayofweek", "dayofyear")
CALENDAR_COLUMNS = (*CALENDAR_FEATURES, "year_sin", "year_cos", "week_sin", "week_cos")


def calendar_frame(times: pd.Series, prefix: str) -> pd.DataFrame:
    """Year, month, day, weekday and day of year, plus the yearly and weekly cycles as sin/cos."""
    t = pd.to_datetime(times)
    out = {f"{prefix}_{name}": getattr(t.dt, name).astype(float) for name in CALENDAR_FEATURES}
    out[f"{prefix}_year_sin"] = np.sin(2 * np.pi * t.dt.dayofyear / 365.25)
    out[f"{prefix}_year_cos"] = np.cos(2 * np.pi * t.dt.dayofyear / 365.25)
    out[f"{prefix}_week_sin"] = np.sin(2 * np.pi * t.dt.dayofweek / 7)
    out[f"{prefix}_week_cos"] = np.cos(2 * np.pi * t.dt.dayofweek / 7)
    return pd.DataFrame(out, index=times.index)


class DateTimeExpander(BaseEstimator, TransformerMixin):
    """Date-time columns -> calendar features (the service's DateTime column purpose)."""

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X).copy()
        parts = [frame.drop(columns=list(self.columns))]
        parts += [calendar_frame(frame[column], str(column)) for column in self.columns]
        return pd.concat(parts, axis=1)


class AsFloat(BaseEstimator, TransformerMixin):
    """Numeric and true/false columns as floats (MLTable reads 0/1 columns as booleans)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return pd.DataFrame(X).apply(pd.to_numeric, errors="coerce").astype(float).to_numpy()


class TextColumn(BaseEstimator, TransformerMixin):
    """One text column -> a 1-D array of strings (missing: empty), as text vectorizers want."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return pd.DataFrame(X).iloc[:, 0].fillna("").astype(str).to_numpy()


class ForecastFeaturizer(BaseEstimator, TransformerMixin):
    """Features for a direct forecast ``horizon`` periods ahead.

    Fitting keeps the target history of each time series. A row at time ``t`` gets calendar
    features, its series' identity, the other columns of the data as given, and target lags
    counted from the forecast origin: lag ``k`` is the value ``horizon + k - 1`` periods
    before ``t``, and the rolling mean covers ``window`` periods ending ``horizon`` periods
    before ``t``. Every lag is therefore known at the origin, for every step of the horizon,
    and prediction after the end of training uses the kept history.
    """

    def __init__(self, time_column, series_columns=(), target_column=None, horizon=1, lags=(), window=None,
                 frequency="D"):
        self.time_column = time_column
        self.series_columns = series_columns
        self.target_column = target_column
        self.horizon = horizon
        self.lags = lags
        self.window = window
        self.frequency = frequency

    def _keys(self, frame: pd.DataFrame) -> pd.Series:
        if not self.series_columns:
            return pd.Series("__single__", index=frame.index)
        return frame[list(self.series_columns)].astype(str).agg("|".join, axis=1)

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        times = pd.to_datetime(frame[self.time_column])
        history = pd.DataFrame({"key": self._keys(frame).to_numpy(), "time": times.to_numpy(),
                                "y": np.asarray(y, dtype=float)})
        self.history_ = history.groupby(["key", "time"])["y"].last()
        self.series_ = sorted(history["key"].unique())
        self.columns_ = [c for c in frame.columns
                         if c not in (self.time_column, self.target_column, *self.series_columns)]
        self.offset_ = pd.tseries.frequencies.to_offset(self.frequency)
        return self

    def _lookup(self, keys: pd.Series, times: pd.Series, steps_back: int) -> np.ndarray:
        wanted = pd.MultiIndex.from_arrays([keys.to_numpy(), (times - steps_back * self.offset_).to_numpy()])
        return self.history_.reindex(wanted).to_numpy()

    def transform(self, X):
        frame = pd.DataFrame(X).reset_index(drop=True)
        times = pd.to_datetime(frame[self.time_column])
        keys = self._keys(frame)
        out = calendar_frame(times, "t")
        for key in self.series_:
            out[f"series={key}"] = (keys == key).astype(float).to_numpy()
        for column in self.columns_:
            out[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy()
        for k in self.lags:
            out[f"lag_{k}"] = self._lookup(keys, times, self.horizon + k - 1)
        if self.window:
            past = np.column_stack([self._lookup(keys, times, self.horizon + i) for i in range(self.window)])
            with warnings.catch_warnings():  # rows with no history yet: NaN, imputed downstream
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"rolling_mean_{self.window}"] = np.nanmean(past, axis=1)
        return out.astype(float)


class EncodedLabelClassifier(BaseEstimator, ClassifierMixin):
    """A classifier that needs labels 0..k-1 (XGBoost), trained and answering in the data's labels."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, encoded, **fit_params)
        return self

    def predict(self, X):
        return self.classes_[np.asarray(self.estimator_.predict(X)).astype(int)]

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)
