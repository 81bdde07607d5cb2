"""What a simulated command job costs over running its script directly.

Side by side, on this machine: the wall time from ``ml_client.jobs.create_or_update`` to
status Completed for a trivial script (``print("hello")``) against running the same script
with ``python`` in a subprocess; and the same pair for a script that imports MLflow and logs
a metric (what a training script does). The ratio is the simulation's overhead: a worker
process, the store, the MLflow run, the job folder and log capture.

Run: ``.venv/bin/python benchmarks/bench_jobs.py`` (or ``make bench``). Writes
``_build/benchmarks/jobs.json``. Not a test: nothing is asserted.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 5
OUT = Path(__file__).resolve().parent.parent / "_build" / "benchmarks" / "jobs.json"
SCRIPTS = {
    "trivial script": 'print("hello")\n',
    "script logging to MLflow": "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('m', 1.0)\n",
}


def direct_seconds(script: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def job_seconds(ml_client, folder: Path, script: Path) -> float:
    from azure.ai.ml import command

    start = time.perf_counter()
    job = ml_client.jobs.create_or_update(command(code=str(folder), command=f"python {script.name}",
                                                  environment="AzureML-sklearn-1.5@latest"))
    while ml_client.jobs.get(job.name).status not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert ml_client.jobs.get(job.name).status == "Completed", job.name
    return elapsed


def main() -> None:
    import os

    import labkit  # noqa: F401
    from labkit import sim

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        client = sim.connect(root=tmp / "workspaces")
        tracking = client.workspaces.get().mlflow_tracking_uri
        for label, source in SCRIPTS.items():
            folder = tmp / label.replace(" ", "-")
            folder.mkdir()
            script = folder / "main.py"
            script.write_text(source)
            env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true"}
            job_seconds(client, folder, script)  # warm up: first MLflow run, first upload
            jobs = [job_seconds(client, folder, script) for _ in range(REPEATS)]
            direct = [direct_seconds(script, env) for _ in range(REPEATS)]
            rows.append((label, statistics.median(jobs), statistics.median(direct)))
        sim.deactivate()

    print(f"{'submit -> Completed':32} {'job (s)':>9} {'direct (s)':>11} {'ratio':>7}")
    for label, job, direct in rows:
        print(f"{label:32} {job:9.2f} {direct:11.2f} {job / direct:7.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps([{"measurement": l, "job_s": j, "direct_s": d, "ratio": j / d} for l, j, d in rows],
                              indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
