"""The metrics of Azure ML model monitoring, as small pure functions (NumPy, SciPy, pandas).

The definitions follow what the service computes (its monitoring components, published as
open source in Azure/azureml-assets under ``assets/model_monitoring``, and the metric lists of
the "model monitoring" concept page); where the two disagree, the service's code wins and the
difference is noted here.

Data drift and prediction drift, **numerical** features:

- binning: one set of equal-width bins for both samples, spanning the smallest to the largest
  value of either sample; the number of bins is Sturges' rule on the *smaller* sample,
  ``ceil(log2(n) + 1)``. (The service's own unit test extends both samples by the overall min
  and max before applying Sturges; the shipped code uses the smaller sample's count: the code
  wins.) A column whose values are all equal gets a single bin. (The service uses the edges
  ``[v, 1.01 v]``, which do not form a bin when ``v <= 0``; here the bin is ``[v - 0.5, v + 0.5]``;
  either way both samples fall in it.)
- Jensen-Shannon distance: ``scipy.spatial.distance.jensenshannon`` of the two binned
  proportions, base 2 (so it lies in [0, 1]); empty bins need no smoothing here.
- population stability index: ``sum((q - p) * ln(q / p))`` over the bins, with add-one
  (Laplace) smoothing of every bin's count, ``p = (count_ref + 1) / n_ref`` and
  ``q = (count_prod + 1) / n_prod``, as the service's code does (not renormalised).
- normalized Wasserstein distance: ``scipy.stats.wasserstein_distance`` of the raw values divided
  by the reference sample's standard deviation (Spark's ``stddev``, the sample one, ``ddof=1``),
  at least 0.001, so a constant reference does not divide by zero.
- two-sample Kolmogorov-Smirnov test: ``scipy.stats.ks_2samp``; the service reports its
  **p-value** as the metric, and refuses samples of 10,000 rows or more.

**Categorical** features (the categories of both samples, compared as text):

- Jensen-Shannon distance: over the union of categories; a category one sample lacks has
  proportion 0 there.
- population stability index: add-one smoothing over the union of categories, as above, so a
  new category does not make it infinite.
- Pearson's chi-squared test: ``scipy.stats.chisquare`` of the production counts against the
  counts the reference proportions predict for the production sample size; the service reports
  its **p-value**. A category the reference never saw has an expected count of 0: the statistic
  is infinite and the p-value 0 (the reference cannot produce that value), computed here without
  dividing by zero.

**Data quality** (rates over all production rows, rounded to 5 decimals as the service does):

- null value rate: missing values / rows;
- data type error rate: present values that cannot be cast to the reference column's type
  (for a numeric column, text that is not a number) / rows;
- out-of-bounds rate: numerical, present values below the reference minimum or above the
  reference maximum; categorical, present values not among the reference's categories; / rows.
  (The service imputes missing values before counting, with the median or the mode; a median
  never falls out of bounds, so missing values are simply not counted here.)

Which metric breaches a threshold: the two tests (p-values) when ``value < threshold``, every
other metric when ``value > threshold`` (the service's threshold evaluation); a metric that could
not be computed (NaN) breaches nothing.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

KS_MAX_ROWS = 10_000  # the service refuses the KS test on samples this large or larger
WASSERSTEIN_MIN_NORM = 0.001
RATE_DECIMALS = 5
# Metrics whose value is a p-value: a breach is a value *below* the threshold.
TEST_METRICS = frozenset({"TwoSampleKolmogorovSmirnovTest", "PearsonsChiSquaredTest"})
NUMERICAL_DRIFT_METRICS = ("JensenShannonDistance", "NormalizedWassersteinDistance", "PopulationStabilityIndex",
                           "TwoSampleKolmogorovSmirnovTest")
CATEGORICAL_DRIFT_METRICS = ("JensenShannonDistance", "PopulationStabilityIndex", "PearsonsChiSquaredTest")
DATA_QUALITY_METRICS = ("NullValueRate", "DataTypeErrorRate", "OutOfBoundsRate")
# An integer column with fewer distinct values than this share of its rows is categorical.
INTEGER_CATEGORICAL_RATIO = 0.05


def _values(values: Iterable) -> np.ndarray:
    """Present (non-missing) values as floats."""
    series = pd.Series(values)
    return pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)


def _categories(values: Iterable) -> pd.Series:
    """Present values as text, the way the service compares categories."""
    series = pd.Series(values)
    return series[series.notna()].astype(str)


# -- binning ----------------------------------------------------------------------------------------
def sturges_bin_count(n: int) -> int:
    """Sturges' rule, ``ceil(log2(n) + 1)`` (at least 1)."""
    return max(1, math.ceil(math.log2(n) + 1)) if n > 0 else 1


def histogram_edges(reference: Iterable, production: Iterable) -> np.ndarray:
    """The shared bin edges of two numerical samples (see the module's docstring)."""
    ref, prod = _values(reference), _values(production)
    both = np.concatenate([ref, prod])
    if both.size == 0:
        raise ValueError("Both samples are empty: there is nothing to bin.")
    low, high = float(both.min()), float(both.max())
    if low == high:
        return np.array([low - 0.5, high + 0.5])
    smaller = min(n for n in (ref.size, prod.size) if n > 0)
    return np.linspace(low, high, sturges_bin_count(smaller) + 1)


def histograms(reference: Iterable, production: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(edges, reference counts, production counts)`` over the shared bins (the last bin
    includes its right edge, as NumPy's and Spark's histograms do)."""
    edges = histogram_edges(reference, production)
    ref_counts, _ = np.histogram(_values(reference), bins=edges)
    prod_counts, _ = np.histogram(_values(production), bins=edges)
    return edges, ref_counts, prod_counts


def category_counts(reference: Iterable, production: Iterable) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(categories, reference counts, production counts)`` over the union of categories."""
    ref, prod = _categories(reference), _categories(production)
    categories = sorted(set(ref) | set(prod))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy()
    prod_counts = prod.value_counts().reindex(categories, fill_value=0).to_numpy()
    return categories, ref_counts, prod_counts


# -- from counts ------------------------------------------------------------------------------------
def jensen_shannon_from_counts(reference_counts: Sequence[float], production_counts: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same bins; NaN if either is empty."""
    p, q = np.asarray(reference_counts, dtype=float), np.asarray(production_counts, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(distance.jensenshannon(p / p.sum(), q / q.sum(), base=2))


def psi_from_counts(reference_counts: Sequence[float], production_counts: Sequence[float],
                    n_reference: int | None = None, n_production: int | None = None) -> float:
    """Population stability index with add-one smoothing of every bin (see the module's docstring)."""
    ref, prod = np.asarray(reference_counts, dtype=float), np.asarray(production_counts, dtype=float)
    n_ref = float(n_reference if n_reference is not None else ref.sum())
    n_prod = float(n_production if n_production is not None else prod.sum())
    if n_ref <= 0 or n_prod <= 0:
        return float("nan")
    p, q = (ref + 1) / n_ref, (prod + 1) / n_prod
    return float(np.sum((q - p) * np.log(q / p)))


# -- numerical features -------------------------------------------------------------------------------
def numerical_jensen_shannon(reference: Iterable, production: Iterable) -> float:
    _, ref, prod = histograms(reference, production)
    return jensen_shannon_from_counts(ref, prod)


def numerical_psi(reference: Iterable, production: Iterable) -> float:
    _, ref, prod = histograms(reference, production)
    return psi_from_counts(ref, prod)


def normalized_wasserstein(reference: Iterable, production: Iterable) -> float:
    ref, prod = _values(reference), _values(production)
    if ref.size == 0 or prod.size == 0:
        return float("nan")
    spread = float(np.std(ref, ddof=1)) if ref.size > 1 else float("nan")
    norm = WASSERSTEIN_MIN_NORM if math.isnan(spread) else max(spread, WASSERSTEIN_MIN_NORM)
    return float(stats.wasserstein_distance(ref, prod) / norm)


def two_sample_ks_test(reference: Iterable, production: Iterable) -> tuple[float, float]:
    """``(statistic, p-value)`` of the two-sample Kolmogorov-Smirnov test; the service reports
    the p-value. Raises ``ValueError`` for samples of ``KS_MAX_ROWS`` rows or more, as the
    service refuses them."""
    ref, prod = _values(reference), _values(production)
    if ref.size >= KS_MAX_ROWS or prod.size >= KS_MAX_ROWS:
        raise ValueError(f"Cannot calculate the two-sample Kolmogorov-Smirnov test on a dataset with more than "
                         f"{KS_MAX_ROWS} entries (reference {ref.size}, production {prod.size}).")
    if ref.size == 0 or prod.size == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref, prod)
    return float(result.statistic), float(result.pvalue)


# -- categorical features -----------------------------------------------------------------------------
def categorical_jensen_shannon(reference: Iterable, production: Iterable) -> float:
    _, ref, prod = category_counts(reference, production)
    return jensen_shannon_from_counts(ref, prod)


def categorical_psi(reference: Iterable, production: Iterable) -> float:
    _, ref, prod = category_counts(reference, production)
    return psi_from_counts(ref, prod)


def pearsons_chi_squared_test(reference: Iterable, production: Iterable) -> tuple[float, float]:
    """``(statistic, p-value)`` of Pearson's chi-squared test of the production counts against the
    reference proportions; the service reports the p-value."""
    _, ref, prod = category_counts(reference, production)
    n_ref, n_prod = ref.sum(), prod.sum()
    if n_ref == 0 or n_prod == 0:
        return float("nan"), float("nan")
    expected = ref / n_ref * n_prod
    if np.any((expected == 0) & (prod > 0)):
        return float("inf"), 0.0  # a category the reference cannot produce
    if len(ref) < 2:
        return 0.0, float("nan")  # one category: no degree of freedom, nothing to test
    result = stats.chisquare(prod, expected)
    return float(result.statistic), float(result.pvalue)


# -- data quality ------------------------------------------------------------------------------------
def null_value_rate(values: Iterable) -> float:
    series = pd.Series(values)
    if len(series) == 0:
        return float("nan")
    return round(float(series.isna().sum()) / len(series), RATE_DECIMALS)


def data_type_error_rate(values: Iterable, reference_kind: str) -> float:
    """Present values that cannot be cast to the reference column's kind (``"numeric"``,
    ``"boolean"`` or ``"string"``), over all rows."""
    series = pd.Series(values)
    if len(series) == 0:
        return float("nan")
    present = series[series.notna()]
    if reference_kind == "numeric":
        errors = pd.to_numeric(present.map(lambda v: v if not isinstance(v, bool) else float("nan")),
                               errors="coerce").isna().sum()
    elif reference_kind == "boolean":
        allowed = {"true", "false", "t", "f", "yes", "no", "y", "n", "1", "0"}
        errors = (~present.astype(str).str.strip().str.lower().isin(allowed)).sum()
    else:
        errors = 0  # anything can be written as text
    return round(float(errors) / len(series), RATE_DECIMALS)


def out_of_bounds_rate(values: Iterable, reference: Iterable, categorical: bool) -> float:
    """Present values outside what the reference holds, over all rows: below its minimum or above
    its maximum (numerical), or not among its categories (categorical)."""
    series = pd.Series(values)
    if len(series) == 0:
        return float("nan")
    if categorical:
        known = set(_categories(reference))
        outside = (~_categories(series).isin(known)).sum()
    else:
        ref = _values(reference)
        if ref.size == 0:
            return float("nan")
        present = _values(series)
        outside = int(((present < ref.min()) | (present > ref.max())).sum())
    return round(float(outside) / len(series), RATE_DECIMALS)


# -- feature types and breaches ----------------------------------------------------------------------
def column_kind(series: pd.Series) -> str:
    """``"numeric"``, ``"boolean"`` or ``"string"``: what the data type error rate casts to."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "string"


def feature_type(series: pd.Series, override: str | None = None) -> str:
    """``"Numerical"`` or ``"Categorical"``, as the service decides from the reference column:
    text, booleans and dates are categorical, floats numerical, integers categorical when fewer
    than 5 % of their values are distinct; ``override`` (``feature_type_override``) wins."""
    if override:
        return "Categorical" if str(override).lower() == "categorical" else "Numerical"
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "Categorical"
    if pd.api.types.is_float_dtype(series):
        return "Numerical"
    present = series.dropna()
    if len(present) == 0:
        return "Numerical"
    return "Categorical" if present.nunique() / len(present) < INTEGER_CATEGORICAL_RATIO else "Numerical"


def breaches(metric: str, value: float, threshold: float | None) -> bool:
    """Whether ``value`` of ``metric`` breaches ``threshold`` (see the module's docstring)."""
    if threshold is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(threshold, float) and math.isnan(threshold):
        return False
    return value < threshold if metric in TEST_METRICS else value > threshold


def drift_metric(metric: str, data_type: str, reference: Iterable, production: Iterable) -> tuple[float, float]:
    """``(value, statistic)`` of one drift metric for one feature: the value the service reports
    (a p-value for the two tests) and, for the tests, their statistic (NaN otherwise)."""
    numerical = data_type == "Numerical"
    if metric == "JensenShannonDistance":
        return (numerical_jensen_shannon if numerical else categorical_jensen_shannon)(reference, production), math.nan
    if metric == "PopulationStabilityIndex":
        return (numerical_psi if numerical else categorical_psi)(reference, production), math.nan
    if metric == "NormalizedWassersteinDistance" and numerical:
        return normalized_wasserstein(reference, production), math.nan
    if metric == "TwoSampleKolmogorovSmirnovTest" and numerical:
        statistic, p_value = two_sample_ks_test(reference, production)
        return p_value, statistic
    if metric == "PearsonsChiSquaredTest" and not numerical:
        statistic, p_value = pearsons_chi_squared_test(reference, production)
        return p_value, statistic
    raise ValueError(f"{metric} is not a {data_type.lower()} drift metric.")


def data_quality_metric(metric: str, data_type: str, reference: pd.Series, production: pd.Series) -> float:
    if metric == "NullValueRate":
        return null_value_rate(production)
    if metric == "DataTypeErrorRate":
        return data_type_error_rate(production, column_kind(reference))
    if metric == "OutOfBoundsRate":
        return out_of_bounds_rate(production, reference, categorical=data_type == "Categorical")
    raise ValueError(f"{metric} is not a data quality metric.")
