"""What a simulated command job costs over running its script directly, and how sweeps scale.

Side by side, on this machine, each figure the median of REPEATS runs with its spread:

1. job overhead: the wall time from ``ml_client.jobs.create_or_update`` to status Completed
   for a trivial script (``print("hello")``) and for a script that imports MLflow and logs
   a metric (what a training script does), with warm workers (the default,
   labkit/sim/warm_worker.py) and with cold ones (``LABKIT_SIM_WARM_WORKERS=0``), against
   running the same script with ``python`` in a subprocess. Overhead = job - direct.
2. sweep scaling: a sweep of N trials at concurrency c, each trial sleeping ``TRIAL_S``,
   against the ideal N / c x (one trial's own run time, measured directly).

Run: ``.venv/bin/python benchmarks/bench_jobs.py`` (or ``make bench``). Writes
``_build/benchmarks/jobs.json``. Not a test: nothing is asserted.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 5
OUT = Path(__file__).resolve().parent.parent / "_build" / "benchmarks" / "jobs.json"
ENV = "AzureML-sklearn-1.5@latest"
SCRIPTS = {
    "trivial script": 'print("hello")\n',
    "script logging to MLflow": "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('m', 1.0)\n",
}
TRIAL_S = 1.0
TRIAL = (
    "import argparse, time\nimport mlflow\n"
    "p = argparse.ArgumentParser(); p.add_argument('--x', type=float); a = p.parse_args()\n"
    f"time.sleep({TRIAL_S})\n"
    "with mlflow.start_run():\n    mlflow.log_metric('score', a.x)\n"
)
SWEEPS = ((6, 2), (4, 1))  # (trials, concurrency)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def direct_seconds(script: Path, env: dict, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True, env=env, cwd=script.parent)
    return time.perf_counter() - start


def wait(ml_client, name: str) -> None:
    while ml_client.jobs.get(name).status not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.05)
    assert ml_client.jobs.get(name).status == "Completed", name


def job_seconds(ml_client, folder: Path, script: Path) -> float:
    from azure.ai.ml import command

    start = time.perf_counter()
    job = ml_client.jobs.create_or_update(command(code=str(folder), command=f"python {script.name}", environment=ENV))
    wait(ml_client, job.name)
    return time.perf_counter() - start


def sweep_seconds(ml_client, folder: Path, trials: int, concurrency: int) -> float:
    from azure.ai.ml import command
    from azure.ai.ml.sweep import Uniform

    trial = command(code=str(folder), command="python trial.py --x ${{inputs.x}}", inputs={"x": 0.5},
                    environment=ENV, compute="bench-cluster")
    sweep = trial(x=Uniform(0, 1)).sweep(sampling_algorithm="random", primary_metric="score", goal="maximize")
    sweep.set_limits(max_total_trials=trials, max_concurrent_trials=concurrency)
    start = time.perf_counter()
    job = ml_client.jobs.create_or_update(sweep)
    wait(ml_client, job.name)
    return time.perf_counter() - start


def with_workers(mode: str):
    os.environ["LABKIT_SIM_WARM_WORKERS"] = "1" if mode == "warm" else "0"


def main() -> None:
    from azure.ai.ml.entities import AmlCompute

    from labkit import sim

    results = {"overhead": [], "sweeps": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        client = sim.connect(root=tmp / "workspaces")
        client.begin_create_or_update(AmlCompute(name="bench-cluster", max_instances=4)).result()
        tracking = client.workspaces.get().mlflow_tracking_uri
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true"}
        for label, source in SCRIPTS.items():
            folder = tmp / label.replace(" ", "-")
            folder.mkdir()
            script = folder / "main.py"
            script.write_text(source)
            row = {"measurement": label}
            for mode in ("warm", "cold"):
                with_workers(mode)
                job_seconds(client, folder, script)  # warm-up: first MLflow run, first upload, the server
                row[f"{mode}_s"] = summary([job_seconds(client, folder, script) for _ in range(REPEATS)])
            row["direct_s"] = summary([direct_seconds(script, env) for _ in range(REPEATS)])
            results["overhead"].append(row)

        folder = tmp / "trial"
        folder.mkdir()
        (folder / "trial.py").write_text(TRIAL)
        one_trial = statistics.median(direct_seconds(folder / "trial.py", env, "--x", "0.5") for _ in range(3))
        for trials, concurrency in SWEEPS:
            row = {"trials": trials, "concurrency": concurrency, "ideal_s": trials / concurrency * one_trial}
            for mode in ("warm", "cold"):
                with_workers(mode)
                row[f"{mode}_s"] = summary([sweep_seconds(client, folder, trials, concurrency) for _ in range(2)])
            results["sweeps"].append(row)
        sim.deactivate()

    print(f"{'submit -> Completed (median s)':32} {'warm':>7} {'cold':>7} {'direct':>7} {'warm-direct':>12}")
    for r in results["overhead"]:
        warm, cold, direct = (r[k]["median"] for k in ("warm_s", "cold_s", "direct_s"))
        print(f"{r['measurement']:32} {warm:7.2f} {cold:7.2f} {direct:7.2f} {warm - direct:12.2f}")
    print(f"\n{'sweep (trials x concurrency)':32} {'warm':>7} {'cold':>7} {'ideal':>7} {'warm/ideal':>12}")
    for r in results["sweeps"]:
        warm, cold = r["warm_s"]["median"], r["cold_s"]["median"]
        print(f"{r['trials']} x {r['concurrency']:<28} {warm:7.2f} {cold:7.2f} {r['ideal_s']:7.2f} "
              f"{warm / r['ideal_s']:12.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
