"""One instance of an online deployment: ``python -m labkit.sim.online_server --entry_script ... --port N``.

It runs azureml-inference-server-http (the server Azure ML runs in a deployment's container)
with the arguments ``azmlinfsrv`` takes, with one difference: ``azmlinfsrv`` binds
``0.0.0.0`` (its ``DEFAULT_HOST``), and the simulation must open nothing outside loopback,
so this launcher binds ``127.0.0.1``. Everything else (the variables it reads:
``AZUREML_MODEL_DIR``, ``AML_APP_ROOT``, ``AZUREML_ENTRY_SCRIPT``, ``WORKER_COUNT``,
``SCORING_TIMEOUT_MS`` ...; gunicorn; its logging) is the server's own.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
WATCH_S = 2.0


def exit_when_gone(folder: Path) -> None:
    """A deployment whose folder was deleted (its workspace removed while it ran) stops itself
    and its gunicorn workers, rather than serving on as an orphan."""
    while folder.exists():
        time.sleep(WATCH_S)
    os.killpg(0, signal.SIGTERM)


def main() -> int:
    from azureml_inference_server_http import amlserver

    if "--model_dir" in sys.argv:
        model_dir = Path(sys.argv[sys.argv.index("--model_dir") + 1])
        threading.Thread(target=exit_when_gone, args=(model_dir,), daemon=True).start()
    amlserver.DEFAULT_HOST = LOOPBACK
    sys.argv = ["azmlinfsrv", *sys.argv[1:]]
    return amlserver.run() or 0


if __name__ == "__main__":
    sys.exit(main())
