"""Write ``benchmarks/RESULTS.md`` from what the benchmarks measured (``_build/benchmarks/*.json``).

Each figure beside its baseline, measured side by side in the same run, and the budget of
issue 12 it answers to; a benchmark that has not been run is named as missing, and a
missed budget says so. ``make bench`` runs every benchmark, then this.
"""
from __future__ import annotations

import json
import statistics
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEASURED = REPO / "_build" / "benchmarks"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
LAB_BUDGET_S, LAB_BUDGET_MB = 60, 1536
JOB_OVERHEAD_BUDGET_S, SWEEP_BUDGET_RATIO, FRONT_DOOR_BUDGET_RATIO = 1.5, 1.5, 0.8


# Why a figure misses its budget, where profiling found the cause (printed beside the figure
# only when it is over budget). Keep these true: re-profile when a figure moves.
WHY_OVER = {
    "L2.4": "four AutoML jobs (12 classification trials, then 6 each for a forecast and two "
            "exercise searches), every trial a real FLAML fit with its child run and model.",
    "L2.5": "four sweeps of 22 trials in all, each a real gradient-boosting fit; the first may wait for the "
            "shared warm server's imports, if no lab before it started one (labkit/sim/jobs/warm_worker.py: "
            "about 6 s of CPU on a quiet machine).",
    "front door": "with several clients the two cores are the limit, and the front door is a third process on "
                  "them. Per request at 4 client threads (CPU seconds from psutil over 6 s, quiet machine): the "
                  "client about 0.8 ms, the inference server 0.6 ms, the front door 0.29 ms (user and system "
                  "about half each; its own Python work between reading a request and writing the answer is "
                  "about 70 us, the rest is the sockets' system calls and the new upstream connection the "
                  "server's sync worker needs): (0.8 + 0.6) / (0.8 + 0.6 + 0.29) bounds the ratio near 0.83, and any other load on the two cores takes it under 0.8. The door is asyncio with "
                  "httptools and uvloop; http.server's thread per connection cost about 0.45 ms of CPU a "
                  "request, an aiohttp door was no faster, and a compiled proxy would need a toolchain "
                  "learners do not have.",
    "make test": "the labs are CPU-bound: two at a time on two cores gain little over one at a time.",
}


def why(key: str, ok: bool) -> str:
    return "" if ok or key not in WHY_OVER else f": {WHY_OVER[key]}"


def load(name: str):
    path = MEASURED / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "within budget" if ok else "**over budget**"


def spread(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}, n={s['n']})"


def machine() -> list[str]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [f"- {os.cpu_count()} cores, {memory:.0f} GiB memory, Python {platform.python_version()} "
            f"({platform.machine()}, {platform.system()})",
            f"- written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from `_build/benchmarks/`"]


def labs_section(labs) -> list[str]:
    if labs is None:
        return ["Not measured (`benchmarks/bench_labs.py`)."]
    lines = ["| lab | s, 1 worker | peak MB | s, 2 workers | budget (60 s, 1.5 GB) |", "|---|---|---|---|---|"]
    for one, two in zip(labs["labs_1_workers"]["labs"], labs["labs_2_workers"]["labs"]):
        ok = (one["seconds"] or 1e9) < LAB_BUDGET_S and (one["peak_mb"] or 1e9) < LAB_BUDGET_MB
        lines.append(f"| {one['id']} | {one['seconds']} | {one['peak_mb']} | {two['seconds']} "
                     f"| {verdict(ok)}{why(one['id'], ok)} |")
    lines += ["", f"All labs: {labs['labs_1_workers']['wall_s']:.0f} s serially, "
                  f"{labs['labs_2_workers']['wall_s']:.0f} s with 2 workers.", "",
              "This machine's speed varies from hour to hour, so compare figures within one run: the labs that "
              "run no job (intro, L1.1 to L1.4, L4.1 to L4.3), which nothing changed between the runs, took "
              "25-35 % less time at 22:18 UTC than at 19:21 UTC on 2026-12-02, and 36 % more (76 s against 56) "
              "at 13:12 UTC on 2026-12-03 than at 22:18 UTC the day before. The shared warm server (commit 9759d8c) measured "
              "side by side instead: `make test` back to back 566 s before, 493 s after; four job labs (L2.1, L2.2, "
              "L3.2, L2.5) in alternating rounds 72 and 71 s before, 59 and 68 s after.", ""]
    for label, budget, name in (("book_cold", 600, "`make book`, cold"), ("book_warm", 30, "`make book`, nothing changed"),
                                ("make_test", 15 * 60, "`make test`")):
        if label in labs:
            run = labs[label]
            if run['exit'] != 0:  # a failed run says nothing of the budget: its time is not the command's
                lines.append(f"- {name}: **failed** (exit {run['exit']}) after {run['wall_s']:.0f} s; budget "
                             f"{budget} s not measured")
                continue
            ok = run['wall_s'] < budget
            lines.append(f"- {name}: {run['wall_s']:.0f} s, exit 0 (budget {budget} s: "
                         f"{verdict(ok)}){why(name.strip('`'), ok)}")
        else:
            lines.append(f"- {name}: not measured")
    suite_note = (f"`make test` runs all {len(labs['labs_1_workers']['labs'])} labs twice (the runner, then nbval) "
                  "beside the unit tests, and builds the book. Its budget here is the 15 minutes of this machine; "
                  "issue 12's 25 minutes for the finished book are for the slower machine of our kind, which "
                  "cannot be measured from here.")
    peaks_note = ("Peak memory is the runner's: the larger of the kernel's own exact peak (getrusage) and the "
                  "sum of the proportional set sizes (PSS) of every process of the lab, detached job workers "
                  "and endpoint servers included, sampled at most once a second; PSS counts a page that forked "
                  "workers share once, and sampling can miss a spike shorter than that.")
    return lines + ["", suite_note, "", peaks_note]


def jobs_section(jobs) -> list[str]:
    if jobs is None:
        return ["Not measured (`benchmarks/bench_jobs.py`)."]
    lines = ["Submit to Completed, seconds: median (min-max, n).", "",
             "| script | warm workers | cold workers | python directly | warm overhead | budget (1.5 s) |",
             "|---|---|---|---|---|---|"]
    for r in jobs["overhead"]:
        overhead = r["warm_s"]["median"] - r["direct_s"]["median"]
        lines.append(f"| {r['measurement']} | {spread(r['warm_s'])} | {spread(r['cold_s'])} | {spread(r['direct_s'])} "
                     f"| {overhead:.2f} | {verdict(overhead < JOB_OVERHEAD_BUDGET_S)} |")
    lines += ["", "| sweep, trials x concurrency | warm | cold | ideal N/c x one trial | warm / ideal | budget (1.5x) |",
              "|---|---|---|---|---|---|"]
    for r in jobs["sweeps"]:
        ratio = r["warm_s"]["median"] / r["ideal_s"]
        lines.append(f"| {r['trials']} x {r['concurrency']} | {spread(r['warm_s'])} | {spread(r['cold_s'])} "
                     f"| {r['ideal_s']:.2f} | {ratio:.2f} | {verdict(ratio < SWEEP_BUDGET_RATIO)} |")
    return lines


def endpoints_section(endpoints) -> list[str]:
    if endpoints is None:
        return ["Not measured (`benchmarks/bench_online_endpoints.py`)."]
    rounds: dict = {}
    for r in endpoints["runs"]:
        rounds.setdefault((r["client_threads"], r.get("round", 0)), {})[r["path"]] = r
    lines = [f"Requests per second, median (min-max) over {endpoints.get('rounds', 1)} rounds of "
             f"{endpoints['requests_per_run']} requests that alternate the two paths; the ratio is the median "
             "of each round's own ratio.", "",
             "| clients | front door req/s | server alone req/s | ratio | p50 ms (door / alone) | budget (0.8x) |",
             "|---|---|---|---|---|---|"]
    for threads in sorted({t for t, _ in rounds}):
        pairs = [pair for (t, _), pair in sorted(rounds.items()) if t == threads]
        door = [p["through the endpoint's front door"] for p in pairs]
        alone = [p["inference server directly"] for p in pairs]
        ratios = [d["requests_per_second"] / a["requests_per_second"] for d, a in zip(door, alone)]
        ratio = statistics.median(ratios)
        ok = ratio >= FRONT_DOOR_BUDGET_RATIO
        lines.append(f"| {threads} | {rate(door)} | {rate(alone)} | {ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                     f"| {statistics.median(d['p50_ms'] for d in door):.2f} / "
                     f"{statistics.median(a['p50_ms'] for a in alone):.2f} | {verdict(ok)}{why('front door', ok)} |")
    lines += ["", "At 4 clients the two paths share the two cores, so the ratio moves from run to run around the "
              "budget: 0.77 (0.73-1.09) in the run of 2026-12-02 16:21 UTC, 0.85 (0.74-0.99) at 22:26 UTC, with "
              "the front door unchanged between them. CPU per request (client about 0.8 ms, inference server "
              "0.6 ms, front door 0.29 ms) bounds it near 0.83. At 1 client the door's cost is latency: two more "
              "hops between processes per request (client to door, door to server), each a wake-up, on top of "
              "its 0.3 ms of CPU, of which about 10 of its 24 system calls are the new upstream connection "
              "gunicorn's sync worker needs (strace -c). The ratio at 1 client also moves from run to run, and "
              "not with the machine's speed: on 2026-12-03 the server alone answered in about 1.9 ms (p50), "
              "twice its time of the evening before, in all three runs, and the same door gave 0.73 (0.60-0.81) "
              "at 1 client and 0.80 (0.69-0.96) at 4 at 08:23 UTC, then 0.88 (0.69-0.94) and 1.08 (0.98-1.15) "
              "at 12:02 UTC, 0.93 (0.66-0.97) and 1.02 (0.75-1.16) at 12:44 UTC. So a single run is one draw: two of "
              "the five runs of this door missed the budget, at 4 clients on 2026-12-02 at 16:21 UTC and at 1 "
              "client on 2026-12-03 at 08:23 UTC."]
    lines += ["", "A ratio above 1 is possible: the inference server's gunicorn sync worker closes every "
              "connection, so a client calling it directly opens a new one per request, while the front door "
              "keeps the client's connection open and makes the new upstream connection itself."]
    return lines


def rate(runs: list[dict]) -> str:
    values = [r["requests_per_second"] for r in runs]
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def assets_section(assets) -> list[str]:
    if assets is None:
        return ["Not measured (`benchmarks/bench_sim_assets.py`)."]
    lines = ["| measurement | simulated s | baseline s | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['measurement']} | {r['simulated_s']:.4f} | {r['baseline_s']:.4f} | {r['ratio']:.2f} |" for r in assets]
    return lines


def automl_section(automl) -> list[str]:
    if automl is None:
        return ["Not measured (`benchmarks/bench_automl.py`)."]
    lines = [f"One budget of {automl['budget_minutes']} min each.", "",
             "| data | approach | metric | held out |", "|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['approach']} | {r['metric']} | {r['held_out']:.4f} |" for r in automl["rows"]]
    lab = automl["lab_sized_run"]
    return lines + ["", f"Lab-sized run: {lab['status']}, {lab['children']} children, {lab['wall_s']:.1f} s."]


def measured_at(name: str) -> list[str]:
    """When a benchmark last ran: one may be re-run alone, so the sections can come from different runs."""
    path = MEASURED / f"{name}.json"
    if not path.exists():
        return []
    return [f"Measured {datetime.fromtimestamp(path.stat().st_mtime, timezone.utc):%Y-%m-%d %H:%M} UTC "
            f"(`_build/benchmarks/{name}.json`).", ""]


def main() -> None:
    sections = [("Machine", machine())]
    for title, name, section in (("Labs, the book and the suite", "labs", labs_section),
                                 ("Jobs and sweeps", "jobs", jobs_section),
                                 ("Online endpoint front door (loopback)", "online_endpoints", endpoints_section),
                                 ("Assets and imports", "sim_assets", assets_section),
                                 ("Automated ML quality", "automl", automl_section)):
        sections.append((title, measured_at(name) + section(load(name))))
    text = ["# Benchmark results", "",
            "Written by `benchmarks/results.py` after `make bench`; every figure beside the baseline it was "
            "measured against in the same run. Budgets are those of issue 12; none is asserted in a test.", ""]
    for title, lines in sections:
        text += [f"## {title}", "", *lines, ""]
    RESULTS.write_text("\n".join(text))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
