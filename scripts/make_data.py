"""Generate the book's synthetic datasets into data/, reproducibly.

    python scripts/make_data.py          # (re)write every CSV in data/
    python scripts/make_data.py --check  # exit 1 if a committed CSV differs from a rebuild

Every dataset is a function ``build_<name>(rng) -> DataFrame`` registered in ``DATASETS``
with its file name and seed. To add one (retail demand, drifted production batches, ...),
write its builder and add a line to ``DATASETS``; writing and checking come for free.

The data are invented. They imitate the shape and rough correlations of real data (screening
measurements, shop sales) so that the models in the labs behave sensibly; they say nothing
about real patients or real shops.
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _clip_int(values: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.clip(np.rint(values), low, high).astype(np.int64)


def build_diabetes(rng: np.random.Generator, n_rows: int = 10_000) -> pd.DataFrame:
    """A diabetes-screening table: one row per (adult, female) patient, label ``diabetic``.

    Measurements are drawn in causal order (age first, then what age influences, ...) so the
    columns are correlated the way clinicians would expect; the label then comes from a
    logistic model of those measurements, so it is learnable but noisy (a scaled logistic
    regression reaches a test AUC of about 0.85).
    """
    # Screening cohorts skew young: 21 plus a right-skewed gamma, capped at 81.
    age = _clip_int(21 + rng.gamma(shape=2.0, scale=9.0, size=n_rows), 21, 81)
    # More pregnancies with age, levelling off after about 40.
    pregnancies = _clip_int(rng.poisson(0.6 + 0.16 * np.minimum(age - 21, 25)), 0, 17)
    # Family-history score: positive and long-tailed, median about 0.4.
    pedigree = np.clip(rng.lognormal(mean=np.log(0.4), sigma=0.55, size=n_rows), 0.078, 2.42)
    bmi = np.clip(rng.normal(31.5 + 0.05 * (age - 33), 6.5), 18.0, 62.0)
    # Skin folds track body fat, hence BMI.
    triceps = _clip_int(rng.normal(0.95 * bmi - 1.0, 6.0), 7, 63)
    # Glucose rises with weight, age and family history; the noise term is the rest of life.
    glucose = _clip_int(
        rng.normal(
            105 + 0.9 * (bmi - 31.5) + 0.45 * (age - 33) + 14 * (pedigree - 0.45), 24
        ),
        56, 199,
    )
    # Insulin is long-tailed and follows glucose and weight (insulin resistance).
    insulin = _clip_int(
        np.exp(rng.normal(4.4 + 0.009 * (glucose - 115) + 0.02 * (bmi - 31.5), 0.5)),
        14, 846,
    )
    diastolic = _clip_int(rng.normal(70 + 0.25 * (age - 33) + 0.45 * (bmi - 31.5), 11), 40, 122)

    # Risk on the log-odds scale. Glucose and BMI dominate; the intercept puts the positive
    # rate near one third. The extra normal term is risk the table does not measure.
    log_odds = (
        -1.15
        + 0.045 * (glucose - 115)
        + 0.09 * (bmi - 31.5)
        + 0.03 * (age - 33)
        + 1.1 * (pedigree - 0.45)
        + 0.06 * pregnancies
        + 0.008 * (diastolic - 72)
        + 0.01 * (triceps - 29)
        + 0.001 * (insulin - 95)
        + rng.normal(0.0, 0.5, n_rows)
    )
    diabetic = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)

    return pd.DataFrame(
        {
            # A string id, so that nobody feeds it to a model by accident.
            "patient_id": [f"P{i:05d}" for i in range(1, n_rows + 1)],
            "pregnancies": pregnancies,
            "plasma_glucose_mg_dl": glucose,
            "diastolic_bp_mm_hg": diastolic,
            "triceps_skinfold_mm": triceps,
            "serum_insulin_uu_ml": insulin,
            "bmi": np.round(bmi, 1),
            "diabetes_pedigree": np.round(pedigree, 3),
            "age_years": age,
            "diabetic": diabetic,
        }
    )


# -- retail demand ------------------------------------------------------------------------------
RETAIL_START, RETAIL_END = "2022-01-01", "2024-06-30"
# store: how busy it is relative to the average store
RETAIL_STORES = {"S1": 1.4, "S2": 1.0, "S3": 0.7}
# product: (units a day in an average store at the start, shelf price, month of the yearly peak,
#           strength of the yearly cycle)
RETAIL_PRODUCTS = {
    "bread": (60.0, 2.49, 12, 0.10),
    "milk": (45.0, 1.19, 12, 0.06),
    "coffee": (18.0, 7.99, 12, 0.15),
    "ice_cream": (12.0, 4.99, 7, 0.60),
}
# Monday .. Sunday: grocery shopping piles up at the end of the week.
RETAIL_WEEKDAY = np.array([0.85, 0.82, 0.88, 0.95, 1.12, 1.33, 1.05])


def _retail_holidays(dates: pd.DatetimeIndex) -> dict[pd.Timestamp, float]:
    """Holiday -> demand multiplier. Stores close on Christmas Day and open short hours on
    New Year's Day and Thanksgiving; the days before Christmas and Black Friday are busy."""
    effects: dict[pd.Timestamp, float] = {}
    for year in sorted(set(dates.year)):
        november = pd.date_range(f"{year}-11-01", f"{year}-11-30")
        thanksgiving = november[november.dayofweek == 3][3]
        effects.update({
            pd.Timestamp(f"{year}-01-01"): 0.35,
            pd.Timestamp(f"{year}-07-04"): 1.30,
            thanksgiving: 0.40,
            thanksgiving + pd.Timedelta(days=1): 1.60,  # Black Friday
            pd.Timestamp(f"{year}-12-23"): 1.45,
            pd.Timestamp(f"{year}-12-24"): 1.70,
            pd.Timestamp(f"{year}-12-25"): 0.0,
            pd.Timestamp(f"{year}-12-31"): 1.25,
        })
    return {day: effect for day, effect in effects.items() if dates[0] <= day <= dates[-1]}


def build_retail_demand(rng: np.random.Generator) -> pd.DataFrame:
    """Daily unit sales of four products in three stores, for two and a half years.

    Expected demand is a product of a store's size, a product's base rate, a trend (about 8 %
    growth a year), a weekly cycle, a yearly cycle (ice cream peaks in July, the rest in
    December), holiday effects and, on promotion days, a lift of 30-60 %. Observed units are
    drawn from a gamma-Poisson (negative binomial) around that mean, so counts are whole and
    noisy the way shop data are.
    """
    dates = pd.date_range(RETAIL_START, RETAIL_END, freq="D")
    n_days = len(dates)
    years = (dates - dates[0]).days.to_numpy() / 365.25
    holidays = _retail_holidays(dates)
    holiday_effect = np.array([holidays.get(day, 1.0) for day in dates])
    is_holiday = np.array([day in holidays for day in dates], dtype=np.int64)
    weekday = RETAIL_WEEKDAY[dates.dayofweek.to_numpy()]
    day_of_year = dates.dayofyear.to_numpy()
    frames = []
    for store, size in RETAIL_STORES.items():
        for product, (base, price, peak_month, yearly_strength) in RETAIL_PRODUCTS.items():
            peak_day = (peak_month - 1) * 30.4 + 15
            yearly = 1.0 + yearly_strength * np.cos(2 * np.pi * (day_of_year - peak_day) / 365.25)
            trend = 1.0 + 0.08 * years
            # Promotions: runs of 3-7 days starting on about 3 % of days, never on a closed day.
            promo = np.zeros(n_days, dtype=np.int64)
            for start in np.flatnonzero(rng.random(n_days) < 0.03):
                promo[start:start + rng.integers(3, 8)] = 1
            promo[holiday_effect == 0.0] = 0
            lift = np.where(promo == 1, rng.uniform(1.3, 1.6, n_days), 1.0)
            mean = base * size * trend * weekday * yearly * holiday_effect * lift
            # Gamma-Poisson: shape 20 gives a coefficient of variation a little above Poisson's.
            units = rng.poisson(rng.gamma(shape=20.0, scale=mean / 20.0 + 1e-12))
            frames.append(pd.DataFrame({
                "date": dates.strftime("%Y-%m-%d"),
                "store_id": store,
                "product": product,
                "units_sold": units.astype(np.int64),
                "price": np.round(np.where(promo == 1, price * 0.8, price), 2),
                "on_promotion": promo,
                "is_holiday": is_holiday,
            }))
    return pd.concat(frames, ignore_index=True).sort_values(["date", "store_id", "product"], ignore_index=True)


# -- monitoring: a reference table and production batches with known drift ------------------------
# Clinics a patient can be screened at, and how often, in the reference period.
MONITORING_CLINICS = {"north": 0.5, "south": 0.3, "east": 0.2}
MONITORING_FEATURES = ["pregnancies", "plasma_glucose_mg_dl", "diastolic_bp_mm_hg", "triceps_skinfold_mm",
                       "serum_insulin_uu_ml", "bmi", "diabetes_pedigree", "age_years"]


def _with_clinic(frame: pd.DataFrame, rng: np.random.Generator, clinics: dict[str, float]) -> pd.DataFrame:
    names = list(clinics)
    shares = np.array([clinics[n] for n in names])
    frame.insert(len(MONITORING_FEATURES), "clinic", rng.choice(names, size=len(frame), p=shares / shares.sum()))
    return frame


def build_diabetes_reference(rng: np.random.Generator) -> pd.DataFrame:
    """1,000 patients drawn like ``diabetes.csv``, with the clinic that screened them and the label:
    the reference (training) data of the monitoring lab."""
    frame = build_diabetes(rng, n_rows=1_000)[MONITORING_FEATURES + ["diabetic"]]
    return _with_clinic(frame, rng, MONITORING_CLINICS)


def build_diabetes_batch(drift: str) -> Callable[[np.random.Generator], pd.DataFrame]:
    """A production batch of 500 new patients (no label), drawn like the reference, then drifted:
    ``none``; ``glucose_shift`` (plasma glucose 25 mg/dL higher); ``new_clinic`` (a clinic ``west``
    the reference never saw screens 30 % of patients); ``rising_nulls`` (BMI missing for 20 %)."""
    def build(rng: np.random.Generator) -> pd.DataFrame:
        frame = build_diabetes(rng, n_rows=500)[MONITORING_FEATURES]
        clinics = dict(MONITORING_CLINICS)
        if drift == "new_clinic":
            clinics = {name: share * 0.7 for name, share in clinics.items()} | {"west": 0.3}
        frame = _with_clinic(frame, rng, clinics)
        if drift == "glucose_shift":
            frame["plasma_glucose_mg_dl"] = np.clip(frame["plasma_glucose_mg_dl"] + 25, 56, 224)
        if drift == "rising_nulls":
            frame["bmi"] = frame["bmi"].where(rng.random(len(frame)) >= 0.2)
        return frame
    build.__name__ = f"build_diabetes_batch_{drift}"
    return build


LOAN_AGE_GROUPS = (18, 25, 45, 65, 76)  # bounds of 18-24, 25-44, 45-64, 65-75
LOAN_DISTRICTS = 50


def build_loan_applications(rng: np.random.Generator, n_rows: int = 6_000) -> pd.DataFrame:
    """Past personal-loan applications and the decision a loan officer made (``approved``):
    the data of Chapter 4, where a model learns to make that decision.

    The decisions carry two documented biases, so that a model trained on them shows a
    disparity that assessment can measure and mitigation can reduce:

    * a **historical label bias**: for the same finances, officers approved women less often
      (a fixed penalty on the log-odds of approval);
    * a **proxy**: officers also marked down part-time work, which women in this table do
      more than twice as often as men, so a model that never sees ``sex`` still treats women
      worse through ``employment_type``.

    Age matters only through what it drives (credit history, income), as lending rules
    allow. Postcode district and exact age are there for the privacy lesson: with sex they
    single out most applicants (quasi-identifiers).
    """
    sex = rng.choice(["female", "male"], size=n_rows)
    female = sex == "female"
    age = _clip_int(18 + 57 * rng.beta(2.0, 3.2, size=n_rows), 18, 75)
    part_time_share = np.where(female, 0.34, 0.13)
    draw = rng.random(n_rows)
    employment = np.where(draw < part_time_share, "part_time",
                          np.where(draw < part_time_share + 0.11, "self_employed", "full_time"))
    part_time = employment == "part_time"
    employment_years = np.minimum(age - 18, _clip_int(rng.gamma(2.0, 3.5, size=n_rows), 0, 45))
    district = rng.integers(1, LOAN_DISTRICTS + 1, size=n_rows)
    # Some districts are richer than others: a district effect on income, fixed per district.
    district_effect = rng.normal(0.0, 0.12, size=LOAN_DISTRICTS + 1)[district]
    income = np.exp(rng.normal(np.log(44) + 0.015 * (np.minimum(age, 55) - 35) - 0.5 * part_time
                               + district_effect, 0.33))
    credit_history = np.clip(age - 18 - rng.exponential(3.0, size=n_rows), 0, None)
    previous_defaults = _clip_int(rng.poisson(0.22, size=n_rows), 0, 4)
    loan = np.exp(rng.normal(np.log(11) + 0.6 * np.log(income / 44), 0.5))
    debt_to_income = np.clip(rng.normal(0.28, 0.11, size=n_rows) + 0.25 * (loan / income - 0.25), 0.0, 0.95)
    # The officer's decision: finances first, then the two biases described above.
    merit = (0.4 + 1.5 * np.log(income / 44) - 4.0 * (debt_to_income - 0.3) + 0.07 * np.minimum(credit_history, 20)
             - 1.1 * previous_defaults - 0.7 * np.log(loan / 11) + 0.03 * np.minimum(employment_years, 15))
    bias = -0.8 * female - 0.9 * part_time
    approved = (rng.random(n_rows) < 1 / (1 + np.exp(-(merit + bias + rng.normal(0, 0.3, size=n_rows))))).astype(int)
    age_group = pd.cut(age, bins=LOAN_AGE_GROUPS, right=False, labels=["18-24", "25-44", "45-64", "65-75"])
    return pd.DataFrame({
        "applicant_id": [f"A{i:05d}" for i in range(1, n_rows + 1)],
        "sex": sex,
        "age_years": age,
        "age_group": age_group.astype(str),
        "postcode_district": [f"D{d:02d}" for d in district],
        "employment_type": employment,
        "employment_years": employment_years.astype(np.int64),
        "annual_income_k": income,
        "loan_amount_k": loan,
        "debt_to_income": debt_to_income,
        "credit_history_years": credit_history,
        "previous_defaults": previous_defaults,
        "approved": approved,
    })


@dataclass(frozen=True)
class Dataset:
    file_name: str
    build: Callable[[np.random.Generator], pd.DataFrame]
    seed: int
    # Decimals written for each float column: fixed text, not repr, so the bytes never vary.
    float_decimals: dict[str, int]


DATASETS: dict[str, Dataset] = {
    "diabetes": Dataset("diabetes.csv", build_diabetes, seed=20240601,
                        float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    "retail_demand": Dataset("retail_demand.csv", build_retail_demand, seed=20240715,
                             float_decimals={"price": 2}),
    # Model monitoring (lab L3.4): a reference table and four production batches, one per kind of drift.
    "diabetes_reference": Dataset("diabetes_reference.csv", build_diabetes_reference, seed=20240801,
                                  float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    "diabetes_batch1_stable": Dataset("diabetes_batch1_stable.csv", build_diabetes_batch("none"), seed=20240802,
                                      float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    "diabetes_batch2_glucose_shift": Dataset("diabetes_batch2_glucose_shift.csv", build_diabetes_batch("glucose_shift"),
                                             seed=20240803, float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    "diabetes_batch3_new_clinic": Dataset("diabetes_batch3_new_clinic.csv", build_diabetes_batch("new_clinic"),
                                          seed=20240804, float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    "diabetes_batch4_rising_nulls": Dataset("diabetes_batch4_rising_nulls.csv", build_diabetes_batch("rising_nulls"),
                                            seed=20240805, float_decimals={"bmi": 1, "diabetes_pedigree": 3}),
    # Responsible machine learning (Chapter 4): past loan decisions with sensitive attributes.
    "loan_applications": Dataset("loan_applications.csv", build_loan_applications, seed=20241001,
                                 float_decimals={"annual_income_k": 1, "loan_amount_k": 1, "debt_to_income": 3,
                                                 "credit_history_years": 1}),
}


def render(dataset: Dataset) -> bytes:
    """The exact bytes of a dataset's CSV file."""
    frame = dataset.build(np.random.default_rng(dataset.seed))
    for column, decimals in dataset.float_decimals.items():
        # A missing value is an empty field.
        frame[column] = frame[column].map(lambda x, d=decimals: "" if pd.isna(x) else f"{x:.{d}f}")
    unformatted = set(frame.select_dtypes("float").columns)
    if unformatted:
        raise ValueError(f"{dataset.file_name}: give decimals for float columns {unformatted}")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def write(data_dir: Path = DATA_DIR) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS.values():
        path = data_dir / dataset.file_name
        path.write_bytes(render(dataset))
        print(f"wrote {path}")


def check(data_dir: Path = DATA_DIR) -> list[str]:
    """File names whose committed bytes differ from a fresh build (missing files count)."""
    differing = []
    for dataset in DATASETS.values():
        path = data_dir / dataset.file_name
        if not path.is_file() or path.read_bytes() != render(dataset):
            differing.append(dataset.file_name)
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild in memory and fail if any file in data/ differs")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.check:
        write(args.data_dir)
        return 0
    differing = check(args.data_dir)
    for name in differing:
        print(f"{name} differs from what scripts/make_data.py builds", file=sys.stderr)
    if not differing:
        print(f"all {len(DATASETS)} dataset(s) match")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
