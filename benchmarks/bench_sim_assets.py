"""How much the simulated workspace adds on top of the SDK's own work.

Two measurements, each against a baseline run side by side in the same process (or, for
imports, in fresh interpreters one after the other), reported as ratios:

1. import time: ``import labkit.sim.core.client`` (the SDK plus the simulated client) against
   ``import azure.ai.ml`` alone; and a lab's first cell, ``from labkit import connect`` then
   ``connect(backend="simulated")`` in a new simulation root, against building the SDK's own
   ``MLClient`` (which makes no call until an operation runs);
2. per call: ``ml_client.data.create_or_update`` / ``get`` / ``list`` on the simulated
   workspace against the SDK's client-side work for the same call alone: building the
   entity, validating and serializing it (``_to_rest_object``) and deserializing a response
   (``_from_rest_object``). The difference is what the simulation costs: SQLite, the file
   layout, the service's rules.

Run: ``.venv/bin/python benchmarks/bench_sim_assets.py`` (or ``make bench``). Writes
``_build/benchmarks/sim_assets.json`` and prints a table. Not a test: nothing is asserted.
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

REPEATS = 30
IMPORT_REPEATS = 5
OUT = Path(__file__).resolve().parent.parent / "_build" / "benchmarks" / "sim_assets.json"


FIRST_CELL = "from labkit import connect; connect(backend='simulated')"
SDK_CLIENT = ("from azure.ai.ml import MLClient; from azure.identity import DefaultAzureCredential; "
              "MLClient(DefaultAzureCredential(), '00000000-0000-0000-0000-000000000000', 'rg', 'ws', "
              "enable_telemetry=False)")


def import_seconds(statement: str) -> float:
    """Median wall time of ``statement`` in a fresh interpreter (the import cache warm on disk),
    each in a new, empty simulation root."""
    times = []
    for _ in range(IMPORT_REPEATS):
        with tempfile.TemporaryDirectory() as root:
            out = subprocess.run(
                [sys.executable, "-c", f"import time; t=time.perf_counter(); {statement}; print(time.perf_counter()-t)"],
                check=True, capture_output=True, text=True,
                env={**os.environ, "LABKIT_SIM_ROOT": root, "MLFLOW_DISABLE_TELEMETRY": "true"})
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def per_call(fn) -> float:
    fn()  # warm up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import labkit  # noqa: F401  (quiet the SDK's import noise)
    from azure.ai.ml.entities import Data

    from labkit import sim

    uri = "azureml://datastores/workspaceblobstore/paths/raw/patients.csv"
    with tempfile.TemporaryDirectory() as root:
        client = sim.connect(root=root)
        client.data.create_or_update(Data(name="bench", path=uri, type="uri_file"))

        def sdk_only_create():
            entity = Data(name="bench", path=uri, type="uri_file", tags={"k": "v"})
            rest = entity._to_rest_object()
            rest.id = client._sim_workspace.child_id("data", "bench", "1")
            rest.name = "1"
            Data._from_rest_object(type(rest)(rest.as_dict()))

        stored = client.data.get("bench", version="1")._to_rest_object()
        stored.id, stored.name = client._sim_workspace.child_id("data", "bench", "1"), "1"

        def sdk_only_get():
            Data._from_rest_object(type(stored)(stored.as_dict()))

        versions = 20
        for _ in range(versions - 1):
            client.data.create_or_update(Data(name="bench", path=uri, type="uri_file"))

        def sdk_only_list():
            for _ in range(versions):
                Data._from_rest_object(type(stored)(stored.as_dict()))

        rows = [
            ("data.create_or_update (new version)",
             per_call(lambda: client.data.create_or_update(Data(name="bench", path=uri, type="uri_file"))),
             per_call(sdk_only_create)),
            ("data.get (by version)", per_call(lambda: client.data.get("bench", version="1")), per_call(sdk_only_get)),
            (f"data.list (one name, {versions}+ versions)",
             per_call(lambda: list(client.data.list("bench"))), per_call(sdk_only_list)),
        ]
        sim.deactivate()

    imports = ("import labkit.sim.core.client (SDK included)", import_seconds("import labkit.sim.core.client"),
               import_seconds("import azure.ai.ml"))
    first_cell = ("a lab's first cell: connect() to a new workspace", import_seconds(FIRST_CELL),
                  import_seconds(SDK_CLIENT))
    results = [imports, first_cell, *rows]
    print(f"{'measurement':42} {'simulated (ms)':>15} {'SDK alone (ms)':>15} {'ratio':>7}")
    for name, simulated, baseline in results:
        print(f"{name:42} {simulated * 1e3:15.2f} {baseline * 1e3:15.2f} {simulated / baseline:7.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps([
        {"measurement": n, "simulated_s": s, "baseline_s": b, "ratio": s / b} for n, s, b in results], indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
