"""Generate the book's synthetic datasets into data/, reproducibly.

    python scripts/make_data.py          # (re)write every CSV in data/
    python scripts/make_data.py --check  # exit 1 if a committed CSV differs from a rebuild

Every dataset is a function ``build_<name>(rng) -> DataFrame`` registered in ``DATASETS``
with its file name and seed. To add one (retail demand, drifted production batches, ...),
write its builder and add a line to ``DATASETS``; writing and checking come for free.

The data are invented. They imitate the shape and rough correlations of real screening
data so that the models in the labs behave sensibly; they say nothing about real patients.
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
}


def render(dataset: Dataset) -> bytes:
    """The exact bytes of a dataset's CSV file."""
    frame = dataset.build(np.random.default_rng(dataset.seed))
    for column, decimals in dataset.float_decimals.items():
        frame[column] = frame[column].map(lambda x, d=decimals: f"{x:.{d}f}")
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
