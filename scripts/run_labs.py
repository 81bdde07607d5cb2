#!/usr/bin/env python
"""Run the labs the way CI and the book see them, and report how each went.

    python scripts/run_labs.py [LAB ...] [--workers N] [--out DIR] [--timeout SECONDS]

LAB is a lab id (``labkit.id`` in the lab's front matter) or a path to a lab (.md) or to
a folder of labs; none means every lab under ``labs/``.  For each lab the runner

1. mirrors the lab's folder into ``<out>/<NN-slug>/`` so relative paths (``src/``,
   ``score.py``, YAML) resolve exactly as beside the source,
2. converts the MyST notebook to .ipynb with jupytext,
3. executes it with papermill (kernel ``python3``, cwd = the mirrored folder, parameters
   ``backend="simulated"`` plus the lab's ``ci_parameters``) in a fresh simulated workspace
   ``<out>/<NN-slug>/<stem>.workspace``,
4. records wall time, the kernel's peak memory and the result in ``<out>/report.json``.

Exit status: 0 when every lab passed, 1 when one failed, 2 when a requested lab matches
nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "python3"
DEFAULT_TIMEOUT = 600  # seconds per cell; generous, it only stops a hung lab
WARM_SERVER_MODULE = "labkit.sim.jobs.warm_server"  # in the command line of each of its forks
# Things in a lab folder that are build litter, not part of the lab.
MIRROR_IGNORE = shutil.ignore_patterns(
    "*.workspace", "*.ipynb", ".ipynb_checkpoints", "__pycache__", "mlruns"
)


@dataclass
class Lab:
    id: str
    path: Path  # the .md source
    ci_parameters: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent


def read_lab(path: Path) -> Lab | None:
    """The lab in a .md file, or None when the file is not a lab (no ``labkit`` key)."""
    import jupytext  # imported here so `--help` stays instant

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):  # no front matter: a plain page, not a notebook
        return None
    meta = jupytext.reads(text, fmt="md:myst").metadata.get("labkit")
    if not isinstance(meta, dict):
        return None
    return Lab(
        id=str(meta.get("id") or path.stem),
        path=path.resolve(),
        ci_parameters=dict(meta.get("ci_parameters") or {}),
    )


def discover(labs_dir: Path | str) -> list[Lab]:
    """Every lab under labs_dir, in path order (NN- prefixes give the course order)."""
    labs = [lab for p in sorted(Path(labs_dir).rglob("*.md")) if (lab := read_lab(p))]
    seen: dict[str, Path] = {}
    for lab in labs:
        if lab.id in seen:
            raise SystemExit(f"duplicate lab id {lab.id!r}: {seen[lab.id]} and {lab.path}")
        seen[lab.id] = lab.path
    return labs


def select(labs: list[Lab], requested: list[str]) -> tuple[list[Lab], list[str]]:
    """The labs matching the requested ids or paths (in course order) and the requests
    that matched nothing."""
    chosen: set[Path] = set()
    unmatched = []
    for req in requested:
        target = Path(req).resolve()
        hits = [
            lab for lab in labs
            if lab.id == req or lab.path == target or target in lab.path.parents
        ]
        if not hits:
            unmatched.append(req)
        chosen.update(lab.path for lab in hits)
    return [lab for lab in labs if lab.path in chosen], unmatched


def mirror(folder: Path, out: Path) -> Path:
    """Copy a lab folder to <out>/<NN-slug>/ and return the copy.

    Copied over, not wiped: several labs can share a folder and their executed notebooks
    live there too. A fresh --out (as CI and the tests use) gives an exact mirror."""
    dest = out / folder.name
    shutil.copytree(folder, dest, ignore=MIRROR_IGNORE, dirs_exist_ok=True)
    return dest


def lab_env(workspace: Path) -> dict:
    """Environment of a lab's kernel: the simulated backend in its own workspace folder."""
    env = dict(os.environ)
    env.update(
        LABKIT_BACKEND="simulated",
        LABKIT_SIM_ROOT=str(workspace),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    return env


# --- one lab, in a process of its own -----------------------------------------------------
#
# Peak memory: each lab runs in a fresh worker process (`--worker`), and the kernel is
# that worker's child.  Two measures, and the larger is reported:
#  * getrusage(RUSAGE_CHILDREN).ru_maxrss after the kernel has exited: the exact peak of
#    the largest single descendant the worker waited for (the kernel), spikes included.
#    Exact only because the worker has no other children - why a pool of reused workers won't do.
#  * sampling of the proportional set size (PSS) summed over every process of the lab: the
#    worker's descendants, and the job workers and endpoint servers the simulation detaches
#    from them (a session of their own, reparented to init), found by the lab's workspace in
#    the environment they started with or by their working folder in it (a job's worker runs
#    in its job's folder, a deployment's instance in its own), with their descendants; and the
#    shared warm server those were forked from (labkit/sim/jobs/warm_worker.py), which serves
#    every lab of the session. PSS shares a page among the processes that map it, so forks of
#    one server are not counted once per fork; a lab that runs beside another using the same
#    server counts only its share of the pages they share. Sampling can miss a short spike.
# The worker's own memory (papermill, jupytext) is in neither: it is not the lab's.
#
# PSS is dear to read: the kernel walks the page tables of every process (about 50 ms a pass
# over a lab's processes, py-spy on the worker; at 10 passes a second that was half a core).
# The resident set size is nearly free (/proc/<pid>/statm) and never below the PSS, so each
# tick reads the RSS, and the PSS only when the RSS sum is above the peak so far (only then can
# the PSS sum be a new peak), at most every PSS_INTERVAL_S.

def _maxrss_children_mb() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kib / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS


def _proportional_bytes(process) -> int:
    """PSS from /proc/<pid>/smaps_rollup where Linux has it, else the resident set size."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return process.memory_info().rss


def _command_line(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _listens_at(process, address: str) -> bool:
    import psutil

    try:
        return any(connection.laddr == address for connection in process.net_connections(kind="unix"))
    except psutil.Error:
        return False


def _summed(processes, size) -> int:
    import psutil

    total = 0
    for process in processes:
        try:
            total += size(process)
        except psutil.Error:  # exited between listing and reading
            pass
    return total


class TreeSampler(threading.Thread):
    TICK_S = 0.25
    PSS_INTERVAL_S = 1.0

    def __init__(self, workspace: str):
        super().__init__(daemon=True)
        self.workspace, self.peak, self._done = os.path.realpath(workspace), 0, threading.Event()
        self._of_this_lab: dict[tuple[int, float], bool] = {}  # (pid, start time) -> started for this lab
        self._servers: dict[tuple, object] = {}  # a warm server's command line -> its process

    def _started_for_this_lab(self, process) -> bool:
        key = (process.pid, process.create_time())
        if key not in self._of_this_lab:  # an exec'd environment never changes: read it once
            try:
                self._of_this_lab[key] = process.environ().get("LABKIT_SIM_ROOT") == self.workspace
            except Exception:  # gone, or not ours to read
                self._of_this_lab[key] = False
        return self._of_this_lab[key]

    def _running_in_this_lab(self, process) -> bool:
        cwd = process.cwd()
        return cwd == self.workspace or cwd.startswith(self.workspace + os.sep)

    def _warm_servers(self, found: list, everyone: list) -> list:
        """The shared warm servers the lab's processes were forked from: a fork keeps its
        server's command line, which ends with the server's socket, and of the processes
        with that command line the server is the one that listens on it (a fork of an
        earlier server at the same address may still run)."""
        servers = []
        for line in {tuple(line) for line in map(_command_line, found) if WARM_SERVER_MODULE in line}:
            server = self._servers.get(line)
            if server is None or not server.is_running():
                same = (process for process in everyone if tuple(_command_line(process)) == line)
                server = next((process for process in same if _listens_at(process, line[-1])), None)
                if server is None:  # gone meanwhile
                    continue
                self._servers[line] = server
            servers.append(server)
        return servers

    def processes(self) -> list:
        """The lab's processes, from one pass over the process table."""
        import psutil

        me = os.getpid()
        children: dict[int, list] = {}
        everyone, roots = [], []
        for process in psutil.process_iter(["ppid"]):
            everyone.append(process)
            children.setdefault(process.info["ppid"], []).append(process)
            try:
                if process.pid != me and (self._started_for_this_lab(process) or self._running_in_this_lab(process)):
                    roots.append(process)
            except psutil.Error:
                pass
        found, stack = {}, [*children.get(me, []), *roots]
        while stack:  # the roots and all their descendants, each once
            process = stack.pop()
            if process.pid not in found:
                found[process.pid] = process
                stack.extend(children.get(process.pid, []))
        servers = self._warm_servers(list(found.values()), everyone)
        return [*found.values(), *(server for server in servers if server.pid not in found)]

    def run(self):
        last_pss = -self.PSS_INTERVAL_S
        while not self._done.is_set():
            processes = self.processes()
            now = time.monotonic()
            if now - last_pss >= self.PSS_INTERVAL_S and _summed(processes, lambda p: p.memory_info().rss) > self.peak:
                self.peak = max(self.peak, _summed(processes, _proportional_bytes))
                last_pss = now
            self._done.wait(self.TICK_S)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak / 2**20


def _failed_cell(notebook: str) -> int | None:
    """Execution count of the cell a run stopped in without an error output (a timeout, a
    dead kernel): the last cell that started, as papermill saves as it goes."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # not written: failed before any cell ran
        return None
    counts = [c.execution_count for c in nb.cells
              if c.cell_type == "code" and c.get("execution_count") is not None]
    return counts[-1] if counts else None


def execute(spec: dict) -> dict:
    """Worker side: execute one converted lab with papermill and say how it went."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(spec["source"], fmt="md:myst")
    # nbval re-executes the output notebook with the kernel named in its metadata.
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    error = None
    sampler = TreeSampler(os.environ["LABKIT_SIM_ROOT"])
    sampler.start()
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            nb,
            spec["notebook"],
            parameters=spec["parameters"],
            kernel_name=KERNEL,
            cwd=spec["cwd"],
            execution_timeout=spec["timeout"],
            progress_bar=False,
        )
    # "cell" is the failing cell's execution count, In [N] in the executed notebook: cell
    # indices shift as papermill inserts its error banner and anchor cells.
    except PapermillExecutionError as exc:
        error = {"cell": exc.exec_count, "name": exc.ename, "message": exc.evalue}
    except Exception as exc:  # timeout, dead kernel, bad notebook: still a failed lab
        error = {"cell": _failed_cell(spec["notebook"]), "name": type(exc).__name__,
                 "message": str(exc).strip()}
    seconds = time.perf_counter() - start
    peak_mb = max(sampler.stop(), _maxrss_children_mb())
    return {"seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1), "error": error}


def run_lab(lab: Lab, out: Path, timeout: float | None) -> dict:
    """Parent side: run one (already mirrored) lab in a worker process; its report record."""
    folder = out / lab.folder.name
    notebook = folder / f"{lab.path.stem}.ipynb"
    workspace = folder / f"{lab.path.stem}.workspace"
    shutil.rmtree(workspace, ignore_errors=True)  # every run starts from an empty workspace
    workspace.mkdir(parents=True)
    spec = {
        "source": str(folder / lab.path.name),
        "notebook": str(notebook),
        "cwd": str(folder),
        "parameters": {"backend": "simulated", **lab.ci_parameters},
        "timeout": timeout,
    }
    record = {"id": lab.id, "path": str(lab.path), "notebook": str(notebook),
              "seconds": None, "peak_mb": None, "status": "failed", "error": None}
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, result_file = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_file.write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(spec_file), str(result_file)],
            env=lab_env(workspace), cwd=folder, capture_output=True, text=True,
        )
        if result_file.exists():
            record.update(json.loads(result_file.read_text()))
        else:  # the worker itself died: keep the end of what it said
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            record["error"] = {"cell": None, "name": "WorkerCrashed",
                               "message": f"exit {proc.returncode}: {tail}"}
    record["status"] = "passed" if record["error"] is None else "failed"
    # What the notebook left running (a failure before its clean-up, or a lab that forgets
    # one) is stopped here, and named in the report.
    from labkit import sim

    record["left_running"] = sim.stop_everything(workspace)
    return record


def run_labs(labs: list[Lab], out: Path | str, workers: int = 1,
             timeout: float | None = DEFAULT_TIMEOUT) -> list[dict]:
    """Run labs (in parallel with workers > 1); write <out>/report.json; the records."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Mirror each folder once, up front: labs sharing a folder would race copying it.
    for folder in sorted({lab.folder for lab in labs}):
        mirror(folder, out)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # Threads only wait on worker processes, so they parallelise fine.
        records = list(pool.map(lambda lab: run_lab(lab, out, timeout), labs))
    (out / "report.json").write_text(json.dumps(records, indent=2) + "\n")
    return records


def format_table(records: list[dict]) -> str:
    rows = [("lab", "status", "seconds", "peak MB", "error")]
    for r in records:
        err = r["error"]
        where = f"In [{err['cell']}] " if err and err.get("cell") is not None else ""
        message = f"{where}{err['name']}: {err['message']}" if err else ""
        if not message and r.get("left_running"):
            message = "left running (stopped): " + "; ".join(r["left_running"])
        rows.append((r["id"], r["status"], f"{r['seconds'] or 0:.1f}",
                     f"{r['peak_mb'] or 0:.0f}", message.splitlines()[0][:100] if message else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="*", metavar="LAB", help="lab id or path (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="labs run at once (default 1)")
    parser.add_argument("--out", default=str(ROOT / "_build" / "labs"),
                        help="output folder (default _build/labs)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per cell, 0 for none (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--labs-dir", default=str(ROOT / "labs"),
                        help="where the labs are (default labs/)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # internal: one lab
    args = parser.parse_args(argv)

    if args.worker:
        spec_file, result_file = args.worker
        result = execute(json.loads(Path(spec_file).read_text()))
        Path(result_file).write_text(json.dumps(result))
        return 0

    labs = discover(args.labs_dir)
    if args.labs:
        labs, unmatched = select(labs, args.labs)
        if unmatched:  # a typo must not pass as "nothing failed"
            print(f"no lab matches: {', '.join(unmatched)}", file=sys.stderr)
            return 2
    if not labs:
        print(f"no labs found under {args.labs_dir}", file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout > 0 else None  # 0: no limit, for debugging
    records = run_labs(labs, args.out, workers=args.workers, timeout=timeout)
    print(format_table(records))
    print(f"report: {Path(args.out).resolve() / 'report.json'}")
    return 0 if all(r["status"] == "passed" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
