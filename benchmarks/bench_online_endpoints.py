"""What an online endpoint's front door costs over calling the inference server directly.

Side by side, on this machine and on loopback only: requests per second and p50 / p99 latency
for the same ``score.py`` (``init()`` loads nothing, ``run()`` echoes a small JSON body)

- served by azureml-inference-server-http directly (``labkit.sim.online_server`` on 127.0.0.1,
  one worker, as ``azmlinfsrv`` runs it), and
- called through a simulated managed online endpoint (key check, traffic draw, proxying, the
  424/408 handling) in front of the same server,

each with one client thread and with several concurrent ones (a bounded number of requests),
in rounds that alternate the two paths.
The difference is the front door's overhead.

Run: ``.venv/bin/python benchmarks/bench_online_endpoints.py``. Writes
``_build/benchmarks/online_endpoints.json``. Not a test: nothing is asserted.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

REQUESTS = 1000
ROUNDS = 5
WARMUP = 50
CONCURRENCY = (1, 4)
OUT = Path(__file__).resolve().parent.parent / "_build" / "benchmarks" / "online_endpoints.json"
SCORE = textwrap.dedent("""
    import json

    def init():
        pass

    def run(raw_data):
        return {"echo": json.loads(raw_data)}
""")
BODY = {"data": [[1.0, 2.0, 3.0, 4.0]]}


def measure(url: str, headers: dict, requests_total: int, threads: int) -> dict:
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = requests_total // threads

    def client():
        mine = []
        with requests.Session() as session:
            for _ in range(WARMUP // threads):
                session.post(url, json=BODY, headers=headers).raise_for_status()
            barrier.wait()
            for _ in range(per_thread):
                start = time.perf_counter()
                session.post(url, json=BODY, headers=headers).raise_for_status()
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    barrier = threading.Barrier(threads + 1)
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "client_threads": threads,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 3),
    }


def direct_server(folder: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, GUNICORN_CMD_ARGS="--no-control-socket",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    server = subprocess.Popen([sys.executable, "-m", "labkit.sim.online_server", "--entry_script", "score.py",
                               "--model_dir", str(folder), "--port", str(port)], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the inference server did not start")


def main() -> None:
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint

    from labkit import sim
    from labkit.sim.endpoints.online_runtime import free_port, stop_process

    results = {"requests_per_run": REQUESTS, "rounds": ROUNDS, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "src").mkdir()
        (folder / "src" / "score.py").write_text(SCORE)
        port = free_port()
        server = direct_server(folder / "src", port)
        ml_client = sim.connect(root=folder / "workspaces")
        try:
            ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="bench-endpoint")).result()
            ml_client.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
                name="blue", endpoint_name="bench-endpoint", instance_type="Standard_DS3_v2", instance_count=1,
                code_configuration=CodeConfiguration(code=str(folder / "src"), scoring_script="score.py"),
                environment="AzureML-sklearn-1.5@latest")).result()
            endpoint = ml_client.online_endpoints.get("bench-endpoint")
            endpoint.traffic = {"blue": 100}
            endpoint = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
            key = ml_client.online_endpoints.get_keys("bench-endpoint").primary_key
            paths = (("inference server directly", f"http://127.0.0.1:{port}/score", {}),
                     ("through the endpoint's front door", endpoint.scoring_uri, {"Authorization": f"Bearer {key}"}))
            # Rounds alternate the two paths, so a change in the machine's load meets both alike.
            for round_ in range(ROUNDS):
                for threads in CONCURRENCY:
                    for path, url, headers in paths:
                        results["runs"].append({"path": path, "round": round_,
                                                **measure(url, headers, REQUESTS, threads)})
        finally:
            sim.deactivate()
            stop_process(server.pid, str(folder))
            server.wait(timeout=10)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"{'path':<36} {'round':>5} {'threads':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for run in results["runs"]:
        print(f"{run['path']:<36} {run['round']:>5} {run['client_threads']:>7} {run['requests_per_second']:>8} "
              f"{run['p50_ms']:>8} {run['p99_ms']:>8}")
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
