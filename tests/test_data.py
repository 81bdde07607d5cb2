"""The committed course data: reproducible from scripts/make_data.py, and fit for the labs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def _load_make_data():
    # scripts/ is not a package; load the generator as a module to call its functions.
    spec = importlib.util.spec_from_file_location("make_data", REPO / "scripts" / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


make_data = _load_make_data()

FEATURES = {
    # column: (low, high) a clinician would find plausible for an adult screening visit
    "pregnancies": (0, 17),
    "plasma_glucose_mg_dl": (40, 250),
    "diastolic_bp_mm_hg": (30, 130),
    "triceps_skinfold_mm": (3, 70),
    "serum_insulin_uu_ml": (5, 900),
    "bmi": (15.0, 70.0),
    "diabetes_pedigree": (0.05, 2.5),
    "age_years": (18, 90),
}
INTEGER_COLUMNS = [c for c in FEATURES if c not in ("bmi", "diabetes_pedigree")] + ["diabetic"]


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return pd.read_csv(DATA / "diabetes.csv")


def test_committed_files_match_the_generator():
    assert make_data.check(DATA) == []


def test_check_reports_a_changed_or_missing_file(tmp_path):
    make_data.write(tmp_path)
    assert make_data.check(tmp_path) == []
    csv = tmp_path / "diabetes.csv"
    csv.write_bytes(csv.read_bytes().replace(b"\n", b"\r\n", 1))
    assert make_data.check(tmp_path) == ["diabetes.csv"]
    csv.unlink()
    assert make_data.check(tmp_path) == ["diabetes.csv"]


def test_cli_check_exit_codes(tmp_path, capsys):
    assert make_data.main(["--data-dir", str(tmp_path)]) == 0
    assert make_data.main(["--check", "--data-dir", str(tmp_path)]) == 0
    (tmp_path / "diabetes.csv").write_text("patient_id\n")
    assert make_data.main(["--check", "--data-dir", str(tmp_path)]) == 1
    assert "diabetes.csv differs" in capsys.readouterr().err


def test_shape_and_columns(diabetes):
    assert diabetes.shape == (10_000, 10)
    assert list(diabetes.columns) == ["patient_id", *FEATURES, "diabetic"]
    assert diabetes["patient_id"].is_unique


def test_no_missing_values(diabetes):
    assert not diabetes.isna().any().any()


def test_integer_columns_are_integers(diabetes):
    for column in INTEGER_COLUMNS:
        assert pd.api.types.is_integer_dtype(diabetes[column]), column


@pytest.mark.parametrize("column", list(FEATURES))
def test_values_are_plausible(diabetes, column):
    low, high = FEATURES[column]
    assert diabetes[column].between(low, high).all()
    # A constant or nearly constant column would teach nothing.
    assert diabetes[column].nunique() > 10


def test_label_is_binary_with_about_a_third_positive(diabetes):
    assert set(diabetes["diabetic"].unique()) == {0, 1}
    assert 0.28 <= diabetes["diabetic"].mean() <= 0.38


@pytest.mark.parametrize("column", ["plasma_glucose_mg_dl", "bmi"])
def test_main_risk_factors_go_with_the_label(diabetes, column):
    assert diabetes[column].corr(diabetes["diabetic"]) > 0.2
