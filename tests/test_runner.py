"""The lab runner (scripts/run_labs.py), on tiny fixture labs it really executes."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import run_labs  # noqa: E402


def lab_source(lab_id, *cells, ci_parameters=None, parameters='backend = "auto"'):
    """A MyST notebook as the labs are written: front matter, a parameters cell, code."""
    front = {"labkit": {"id": lab_id}}
    if ci_parameters:
        front["labkit"]["ci_parameters"] = ci_parameters
    body = [f"```{{code-cell}} ipython3\n:tags: [parameters]\n\n{parameters}\n```"]
    body += [f"```{{code-cell}} ipython3\n{textwrap.dedent(c).strip()}\n```" for c in cells]
    return "---\n" + json.dumps(front) + "\n---\n\n# " + lab_id + "\n\n" + "\n\n".join(body) + "\n"


# Each checks, from inside the kernel, one thing the runner promises.
CHECK_ENVIRONMENT = """
import os
from pathlib import Path
assert backend == "simulated", backend
assert os.environ["LABKIT_BACKEND"] == "simulated"
assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
workspace = Path(os.environ["LABKIT_SIM_ROOT"])
# Fresh: the workspace folder exists and is empty, whatever an earlier run left in it.
assert workspace.is_dir() and not any(workspace.iterdir()), list(workspace.iterdir())
(workspace / "left-by-this-run").write_text("x")
print(workspace)
"""

FIXTURE_LABS = {
    "01-basics/passing.md": lab_source("pass", CHECK_ENVIRONMENT, "print('done')"),
    "01-basics/failing.md": lab_source("fail", "x = 1", "1 / 0", "print('never')"),
    "02-params/params.md": lab_source(
        "params",
        "assert n_rows == 7 and trials == 2, (n_rows, trials)",
        ci_parameters={"n_rows": 7, "trials": 2},
        parameters='backend = "auto"\nn_rows = 100_000\ntrials = 50',
    ),
    "03-files/reads.md": lab_source(
        "reads", "print(open('data/input.txt').read().strip())", "import helper; helper.hello()"
    ),
    "03-files/data/input.txt": "text beside the lab\n",
    "03-files/helper.py": "def hello():\n    print('hello from src')\n",
    # A page without a labkit key is not a lab.
    "README.md": "# Labs\n",
}


def make_labs(root: Path, files=FIXTURE_LABS) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(scope="module")
def labs_dir(tmp_path_factory):
    return make_labs(tmp_path_factory.mktemp("labs"))


@pytest.fixture(scope="module")
def full_run(labs_dir, tmp_path_factory):
    """Every fixture lab, run once in parallel through the command line entry point."""
    out = tmp_path_factory.mktemp("out")
    code = run_labs.main(["--labs-dir", str(labs_dir), "--out", str(out), "--workers", "3"])
    report = json.loads((out / "report.json").read_text())
    return code, out, {r["id"]: r for r in report}


def run(labs_dir, out, *labs, extra=()):
    code = run_labs.main(["--labs-dir", str(labs_dir), "--out", str(out), *extra, *labs])
    report_file = out / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return code, report


def test_discovers_labs_by_their_front_matter(labs_dir):
    labs = run_labs.discover(labs_dir)
    assert [lab.id for lab in labs] == ["fail", "pass", "params", "reads"]
    assert {lab.id: lab.ci_parameters for lab in labs}["params"] == {"n_rows": 7, "trials": 2}


def test_report_has_one_record_per_lab(full_run):
    code, out, records = full_run
    assert code == 1  # one lab fails
    assert set(records) == {"pass", "fail", "params", "reads"}
    for r in records.values():
        assert set(r) == {"id", "path", "notebook", "seconds", "peak_mb", "status", "error", "left_running"}
        assert r["left_running"] == []  # these labs start nothing
        assert Path(r["notebook"]).is_file()
        assert Path(r["notebook"]).parent.parent == out  # <out>/<NN-slug>/<stem>.ipynb
        assert r["seconds"] > 0 and r["peak_mb"] > 10  # a Python kernel is tens of MB
    assert records["pass"]["notebook"] == str(out / "01-basics" / "passing.ipynb")
    assert {i: r["status"] for i, r in records.items()} == {
        "pass": "passed", "fail": "failed", "params": "passed", "reads": "passed"}


def test_failing_lab_reports_the_cell_and_its_error(full_run):
    _, _, records = full_run
    error = records["fail"]["error"]
    assert (error["name"], error["message"]) == ("ZeroDivisionError", "division by zero")
    nb = nbformat.read(records["fail"]["notebook"], as_version=4)
    failed = [c for c in nb.cells if c.get("execution_count") == error["cell"]]
    assert [c.source for c in failed] == ["1 / 0"]  # "cell" is its In [N]
    assert records["pass"]["error"] is None


def test_ci_parameters_are_injected_after_the_parameters_cell(full_run):
    _, _, records = full_run
    assert records["params"]["status"] == "passed"  # the lab asserts the injected values
    nb = nbformat.read(records["params"]["notebook"], as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert tags.index(["parameters"]) + 1 == tags.index(["injected-parameters"])
    assert 'backend = "simulated"' in injected.source and "n_rows = 7" in injected.source


def test_lab_reads_files_beside_it_by_relative_path(full_run):
    _, out, records = full_run
    assert records["reads"]["status"] == "passed", records["reads"]["error"]
    assert (out / "03-files" / "data" / "input.txt").is_file()  # the folder is mirrored
    nb = nbformat.read(records["reads"]["notebook"], as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "text beside the lab" in printed and "hello from src" in printed


def test_each_lab_gets_its_own_fresh_workspace(labs_dir, full_run):
    _, out, records = full_run
    assert (out / "01-basics" / "passing.workspace" / "left-by-this-run").is_file()
    assert (out / "01-basics" / "failing.workspace").is_dir()  # its own, beside the other
    # Running again into the same folder starts from an empty workspace (the lab checks).
    code, report = run(labs_dir, out, "pass")
    assert code == 0, report


def test_select_by_id(labs_dir, tmp_path):
    code, report = run(labs_dir, tmp_path, "params")
    assert code == 0
    assert [r["id"] for r in report] == ["params"]
    assert not (tmp_path / "01-basics").exists()  # unselected labs are not even mirrored


def test_select_by_file_and_folder_path(labs_dir, tmp_path):
    code, report = run(labs_dir, tmp_path / "a", str(labs_dir / "03-files" / "reads.md"))
    assert (code, [r["id"] for r in report]) == (0, ["reads"])
    code, report = run(labs_dir, tmp_path / "b", str(labs_dir / "01-basics"))
    assert (code, [r["id"] for r in report]) == (1, ["fail", "pass"])


def test_unknown_lab_exits_nonzero_without_running_anything(labs_dir, tmp_path, capsys):
    code, report = run(labs_dir, tmp_path, "pass", "no-such-lab")
    assert code == 2 and report is None
    assert "no-such-lab" in capsys.readouterr().err


def test_cell_timeout_fails_the_lab(tmp_path):
    labs = make_labs(tmp_path / "labs", {"01-slow/slow.md": lab_source(
        "slow", "import time; time.sleep(30)")})
    code, report = run(labs, tmp_path / "out", extra=["--timeout", "2"])
    assert code == 1
    error = report[0]["error"]
    assert error["name"] == "CellTimeoutError"
    nb = nbformat.read(report[0]["notebook"], as_version=4)
    assert [c.source for c in nb.cells if c.get("execution_count") == error["cell"]] == [
        "import time; time.sleep(30)"]


def test_peak_memory_includes_processes_the_kernel_starts(tmp_path):
    # A local job runs as a child of the kernel; its memory is the lab's too.
    child = """
    import subprocess, sys
    subprocess.run([sys.executable, "-c", "b = b'x' * (300 * 2**20)"], check=True)
    """
    labs = make_labs(tmp_path / "labs", {"01-mem/mem.md": lab_source("mem", child)})
    code, report = run(labs, tmp_path / "out")
    assert code == 0, report
    assert report[0]["peak_mb"] >= 300


def test_peak_memory_includes_detached_processes_started_for_the_lab(tmp_path):
    # A job's worker is a session of its own whose parent has exited (labkit/sim/warm_worker.py):
    # no longer the kernel's descendant, it is found by the lab's workspace in its environment.
    detached = """
    import pathlib, subprocess, sys, time
    ready = pathlib.Path("allocated")
    hold = "import pathlib, time; b = b'x' * (300 * 2**20); pathlib.Path('allocated').touch(); time.sleep(5)"
    starter = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {hold!r}], start_new_session=True)"
    subprocess.run([sys.executable, "-c", starter], check=True)
    deadline = time.time() + 300
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # three of the sampler's PSS intervals (TreeSampler.PSS_INTERVAL_S)
    """
    labs = make_labs(tmp_path / "labs", {"01-mem/detached.md": lab_source("detached", detached)})
    code, report = run(labs, tmp_path / "out")
    assert code == 0, report
    assert report[0]["peak_mb"] >= 300


# A shared warm server (labkit/sim/jobs/warm_worker.py) stands in here: started for no
# workspace, it listens on the socket its command line ends with and allocates, then forks a
# "job" that closes the socket and runs in the lab's workspace. Each maps half of the pages
# they share (PSS), so without the server the lab would count only half.
SHARED_SERVER = """
import os, pathlib, socket, sys, time
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[3])
listener.listen()
hold = b"x" * (600 * 2**20)
if os.fork() == 0:
    listener.close()
    os.chdir(sys.argv[1])
    pathlib.Path("allocated").touch()
time.sleep(8)
"""


def test_peak_memory_includes_forks_in_the_workspace_and_their_shared_server(tmp_path):
    forked = """
    import os, pathlib, subprocess, sys, tempfile, time
    job = pathlib.Path(os.environ["LABKIT_SIM_ROOT"]) / "jobs" / "a-job"
    job.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if key != "LABKIT_SIM_ROOT"}
    address = os.path.join(tempfile.mkdtemp(), "warm.sock")  # short, as an AF_UNIX path must be
    argv = [sys.executable, "shared_server.py", str(job), "labkit.sim.jobs.warm_server", address]
    starter = f"import subprocess; subprocess.Popen({argv!r}, start_new_session=True)"
    subprocess.run([sys.executable, "-c", starter], env=env, check=True)
    deadline = time.time() + 300
    while not (job / "allocated").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # three of the sampler's PSS intervals (TreeSampler.PSS_INTERVAL_S)
    """
    labs = make_labs(tmp_path / "labs", {"01-mem/forked.md": lab_source("forked", forked),
                                         "01-mem/shared_server.py": SHARED_SERVER})
    code, report = run(labs, tmp_path / "out")
    assert code == 0, report
    assert report[0]["peak_mb"] >= 600


def test_command_line_prints_a_table_and_exits_nonzero_on_failure(labs_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_labs.py"), "fail", "pass",
         "--labs-dir", str(labs_dir), "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["lab", "status", "seconds", "peak"]
    assert any(line.startswith("fail ") and "ZeroDivisionError" in line for line in lines)
    assert any(line.startswith("pass ") and "passed" in line for line in lines)
