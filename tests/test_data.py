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


# -- retail demand ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def retail() -> pd.DataFrame:
    return pd.read_csv(DATA / "retail_demand.csv", parse_dates=["date"])


def test_retail_is_a_complete_daily_grid(retail):
    assert list(retail.columns) == ["date", "store_id", "product", "units_sold", "price", "on_promotion",
                                    "is_holiday"]
    assert not retail.isna().any().any()
    days = pd.date_range(retail["date"].min(), retail["date"].max(), freq="D")
    assert len(days) >= 2 * 365
    assert retail["store_id"].nunique() == 3 and retail["product"].nunique() == 4
    assert len(retail) == len(days) * 3 * 4
    assert not retail.duplicated(["date", "store_id", "product"]).any()
    assert pd.api.types.is_integer_dtype(retail["units_sold"]) and (retail["units_sold"] >= 0).all()
    assert set(retail["on_promotion"].unique()) == {0, 1} and set(retail["is_holiday"].unique()) == {0, 1}
    assert (DATA / "retail_demand.csv").stat().st_size < 2_000_000


def test_retail_weekly_seasonality_is_visible(retail):
    by_weekday = retail[retail["is_holiday"] == 0].groupby(retail["date"].dt.dayofweek)["units_sold"].mean()
    assert by_weekday[5] > 1.3 * by_weekday[1]  # Saturday well above Tuesday


def test_retail_yearly_seasonality_is_visible(retail):
    ice_cream = retail[retail["product"] == "ice_cream"]
    by_month = ice_cream.groupby(ice_cream["date"].dt.month)["units_sold"].mean()
    assert by_month[7] > 2 * by_month[1]  # ice cream sells in summer


def test_retail_promotions_lift_sales(retail):
    means = retail.groupby(["store_id", "product", "on_promotion"])["units_sold"].mean().unstack()
    lift = means[1] / means[0]
    assert (lift > 1.15).all()  # in every store, for every product
    promoted = retail[retail["on_promotion"] == 1]
    regular = retail[(retail["on_promotion"] == 0) & (retail["price"] > 0)]
    assert (promoted.groupby("product")["price"].max() < regular.groupby("product")["price"].min()).all()


def test_retail_has_a_trend_and_holidays(retail):
    first = retail[(retail["date"] >= "2022-01-01") & (retail["date"] < "2022-07-01")]["units_sold"].mean()
    last = retail[(retail["date"] >= "2024-01-01") & (retail["date"] < "2024-07-01")]["units_sold"].mean()
    assert last > 1.08 * first
    christmas = retail[retail["date"].dt.strftime("%m-%d") == "12-25"]
    assert (christmas["units_sold"] == 0).all() and (christmas["is_holiday"] == 1).all()


# -- model monitoring batches ----------------------------------------------------------------------------
BATCHES = ["diabetes_batch1_stable.csv", "diabetes_batch2_glucose_shift.csv", "diabetes_batch3_new_clinic.csv",
           "diabetes_batch4_rising_nulls.csv"]


def test_monitoring_files_are_registered_small_and_reproducible():
    names = {d.file_name for d in make_data.DATASETS.values()}
    assert {"diabetes_reference.csv", *BATCHES} <= names
    for name in ["diabetes_reference.csv", *BATCHES]:
        dataset = next(d for d in make_data.DATASETS.values() if d.file_name == name)
        assert (DATA / name).read_bytes() == make_data.render(dataset), name
        assert (DATA / name).stat().st_size < 100_000


def test_monitoring_batches_carry_the_drift_the_data_card_describes():
    reference = pd.read_csv(DATA / "diabetes_reference.csv")
    stable, glucose, clinic, nulls = (pd.read_csv(DATA / name) for name in BATCHES)
    assert len(reference) == 1_000 and "diabetic" in reference.columns
    assert all(len(b) == 500 and "diabetic" not in b.columns for b in (stable, glucose, clinic, nulls))
    assert set(reference["clinic"]) == {"north", "south", "east"} == set(stable["clinic"])
    shift = glucose["plasma_glucose_mg_dl"].mean() - reference["plasma_glucose_mg_dl"].mean()
    assert 18 < shift < 32
    assert abs(stable["plasma_glucose_mg_dl"].mean() - reference["plasma_glucose_mg_dl"].mean()) < 5
    assert 0.2 < (clinic["clinic"] == "west").mean() < 0.4
    assert 0.15 < nulls["bmi"].isna().mean() < 0.25
    assert not stable.isna().any().any() and not reference.isna().any().any()


def test_installed_requirements_pins_what_is_installed_and_leaves_out_the_rest():
    from importlib import metadata

    import labkit

    assert labkit.installed_requirements("scikit-learn", "no-such-package-for-labkit") == [
        f"scikit-learn=={metadata.version('scikit-learn')}"]


# -- loan applications (Chapter 4) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    return pd.read_csv(DATA / "loan_applications.csv")


def test_loans_columns_and_identifiers(loans):
    assert loans.shape == (6_000, 13) and not loans.isna().any().any()
    assert loans["applicant_id"].is_unique
    assert set(loans["sex"]) == {"female", "male"}
    assert set(loans["age_group"]) == {"18-24", "25-44", "45-64", "65-75"}
    bounds = pd.cut(loans["age_years"], [18, 25, 45, 65, 76], right=False,
                    labels=["18-24", "25-44", "45-64", "65-75"]).astype(str)
    assert (bounds == loans["age_group"]).all()
    assert set(loans["approved"]) == {0, 1} and 0.55 <= loans["approved"].mean() <= 0.72


def test_loans_carry_the_documented_label_bias_and_its_proxy(loans):
    """What the data card promises Chapter 4: women approved less often, also at equal finances,
    and part-time work (more common among women) as a proxy that carries the disparity."""
    rates = loans.groupby("sex")["approved"].mean()
    assert rates["male"] - rates["female"] > 0.15
    part_time = loans.groupby("sex")["employment_type"].apply(lambda s: (s == "part_time").mean())
    assert part_time["female"] > 2 * part_time["male"]
    # Within full-time workers of similar income, women are still approved less often.
    full_time = loans[loans["employment_type"] == "full_time"]
    band = full_time.groupby([pd.qcut(full_time["annual_income_k"], 4), "sex"], observed=True)["approved"].mean()
    gap = band.xs("male", level="sex") - band.xs("female", level="sex")
    assert (gap > 0).all() and gap.mean() > 0.1


def test_loans_quasi_identifiers_single_out_many_applicants(loans):
    sizes = loans.groupby(["postcode_district", "age_years", "sex"]).size()
    assert (sizes == 1).sum() / len(loans) > 0.15
