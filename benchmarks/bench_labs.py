"""How long the labs, the book and the test suite take on this machine.

1. every lab through the lab runner at its CI sizes, serially and with 2 workers: each
   lab's time and peak memory, and the whole set's wall time each way;
2. ``jupyter-book build`` of the whole book, cold (a new output folder: every lab executed
   at its full-size defaults) and warm (the same folder again, nothing changed);
3. with ``--suite``, the whole test suite as ``make test`` runs it.

Run: ``.venv/bin/python benchmarks/bench_labs.py [--suite] [--no-book] [--no-labs]`` (``make bench`` passes
``--suite``). Writes ``_build/benchmarks/labs.json``. Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "_build" / "benchmarks" / "labs.json"
sys.path.insert(0, str(REPO / "scripts"))
import run_labs  # noqa: E402

ENV = {**os.environ, "LABKIT_BACKEND": "simulated", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def timed(argv: list[str], **kwargs) -> tuple[float, int]:
    start = time.perf_counter()
    code = subprocess.run(argv, env=ENV, capture_output=True, **kwargs).returncode
    return time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--no-book", action="store_true", help="leave out the book builds (they execute "
                        "every lab at full size: the longest part)")
    parser.add_argument("--no-labs", action="store_true", help="leave out the lab runs; the figures of an "
                        "earlier run in labs.json are kept")
    args = parser.parse_args()
    labs = run_labs.discover(REPO / "labs")
    # What this run leaves out keeps its figures from an earlier run.
    results: dict = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for workers in () if args.no_labs else (1, 2):
            start = time.perf_counter()
            records = run_labs.run_labs(labs, tmp / f"labs-{workers}", workers=workers)
            results[f"labs_{workers}_workers"] = {
                "wall_s": time.perf_counter() - start,
                "labs": [{k: r[k] for k in ("id", "status", "seconds", "peak_mb")} for r in records]}
        book = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO),
                "--path-output", str(tmp / "book"), "--warningiserror", "--nitpick", "--keep-going"]
        ENV["LABKIT_SIM_ROOT"] = str(tmp / "book-workspaces")
        for label in () if args.no_book else ("book_cold", "book_warm"):
            seconds, code = timed(book)
            results[label] = {"wall_s": seconds, "exit": code}
        if args.suite:
            seconds, code = timed([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q"], cwd=REPO)
            results["make_test"] = {"wall_s": seconds, "exit": code}

    if "labs_1_workers" in results:
        for workers in (1, 2):
            run = results[f"labs_{workers}_workers"]
            print(f"labs, {workers} worker(s): {run['wall_s']:.0f} s")
        print(f"{'lab':8} {'s (1 worker)':>13} {'peak MB':>8} {'s (2 workers)':>14}")
        for one, two in zip(results["labs_1_workers"]["labs"], results["labs_2_workers"]["labs"]):
            print(f"{one['id']:8} {one['seconds'] or 0:13.1f} {one['peak_mb'] or 0:8.0f} {two['seconds'] or 0:14.1f}")
    for label in ("book_cold", "book_warm", "make_test"):
        if label in results:
            print(f"{label}: {results[label]['wall_s']:.0f} s (exit {results[label]['exit']})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
