"""Where a workspace's job time went: for each job, from submission to its worker's start
(a node free, the worker running), and from there to its end.

    python benchmarks/job_timeline.py <workspace folder>

For example a lab's workspace after ``make lab LAB=L2.5``:
``_build/labs/02-experiments-training/sweeps.workspace/mlw-dp100-labs``. Times come from the
store (``created_at``: submission) and each job's ``runtime.json`` (``start_time`` when it got a
node, ``end_time``); the script's own run is in its log. Not a test: nothing is asserted.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def main(folder: str) -> None:
    folder = Path(folder)
    db = sqlite3.connect(folder / "workspace.db")
    rows = db.execute("SELECT name, payload, created_at FROM resources WHERE kind='job' ORDER BY created_at").fetchall()
    if not rows:
        print("no jobs")
        return
    origin = moment(rows[0][2])
    print(f"{'job':44} {'type':10} {'submitted':>9} {'to start':>9} {'running':>8} {'status':>10}")
    totals = {"to start": 0.0, "running": 0.0}
    for name, payload, created in rows:
        props = json.loads(payload)["properties"]
        runtime_file = folder / "jobs" / name / "runtime.json"
        runtime = json.loads(runtime_file.read_text()) if runtime_file.exists() else {}
        submitted, start, end = moment(created), moment(runtime.get("start_time")), moment(runtime.get("end_time"))
        to_start = (start - submitted).total_seconds() if start else None
        running = (end - start).total_seconds() if start and end else None
        totals["to start"] += to_start or 0
        totals["running"] += running or 0
        print(f"{name[:44]:44} {props.get('jobType', ''):10} {(submitted - origin).total_seconds():9.1f} "
              f"{'-' if to_start is None else f'{to_start:.2f}':>9} {'-' if running is None else f'{running:.2f}':>8} "
              f"{props.get('status', ''):>10}")
    print(f"\n{len(rows)} jobs; summed submission-to-start {totals['to start']:.1f} s, summed running {totals['running']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
