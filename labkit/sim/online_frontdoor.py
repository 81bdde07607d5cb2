"""An online endpoint's front door: ``python -m labkit.sim.online_frontdoor <endpoint folder> <port>``.

What the service's endpoint does before and after a deployment's container scores a request:

- ``Authorization: Bearer <key or token>`` is checked against the endpoint's keys (auth mode
  ``key``), its unexpired AML tokens (``aml_token``) or a Microsoft Entra token (``aad_token``,
  here the simulated credential's token); otherwise 401;
- a request naming a deployment in the ``azureml-model-deployment`` header goes to that one
  (and is not mirrored); any other request goes to a deployment drawn by the live traffic
  split, and is copied to the mirror deployment in the mirror share (its answer discarded);
  with no deployment taking traffic the answer is 404;
- the deployment's answer is returned; a non-200 answer from the model becomes 424 with the
  ``ms-azureml-model-error-statuscode`` header; a deployment slower than its
  ``request_timeout_ms`` gets 408.

Routing rules come from ``routing.json`` in the endpoint folder, reread whenever it changes.
Draws are made with a seeded generator, so a run of requests splits the same way each time.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"
DEPLOYMENT_HEADER = "azureml-model-deployment"
FORWARDED_REQUEST_HEADERS = ("content-type", "x-request-id", "x-ms-client-request-id", "x-ms-request-id", "traceid")
RETURNED_HEADERS = ("content-type", "x-ms-run-fn-exec-ms", "x-ms-run-function-failed", "x-request-id",
                    "x-ms-request-id", "x-ms-client-request-id", "x-ms-server-version")
MAX_PAYLOAD_BYTES = 1_500_000  # the service refuses larger requests with 413 (about 1.5 MB)


class Routing:
    """``routing.json``, reloaded when its modification time changes."""

    def __init__(self, folder: Path):
        self.path = folder / "routing.json"
        self.stamp = None
        self.data: dict = {}
        self.lock = threading.Lock()
        self.random = random.Random(folder.name)
        self.next_instance: dict[str, int] = {}

    def current(self) -> dict:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            return self.data
        if stamp != self.stamp:
            with self.lock:
                try:
                    self.data = json.loads(self.path.read_text())
                    self.stamp = stamp
                except (FileNotFoundError, json.JSONDecodeError):
                    pass  # mid-replace: keep the previous rules for this request
        return self.data

    def draw(self) -> float:
        with self.lock:
            return self.random.uniform(0, 100)

    def port_of(self, name: str, ports: list[int]) -> int:
        with self.lock:  # round robin over the deployment's instances
            index = self.next_instance.get(name, 0)
            self.next_instance[name] = index + 1
        return ports[index % len(ports)]


def authorized(rules: dict, header: str | None) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    presented = header[len("Bearer "):].strip()
    mode = (rules.get("auth_mode") or "").lower()
    if mode == "key":
        return presented in rules.get("keys", [])
    if mode == "amltoken":
        return rules.get("tokens", {}).get(presented, 0) > time.time()
    if mode == "aadtoken":
        from labkit.sim.credentials import FAKE_TOKEN

        return presented == FAKE_TOKEN
    return False


def pick_live(rules: dict, routing: Routing) -> str | None:
    live = [(name, share) for name, share in sorted((rules.get("traffic") or {}).items()) if share > 0]
    if not live:
        return None
    point, total = routing.draw(), 0
    for name, share in live:
        total += share
        if point < total:
            return name
    return live[-1][0]


def forward(port: int, path: str, method: str, body: bytes | None, headers: dict, timeout_s: float):
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def make_handler(routing: Routing, mirrors: ThreadPoolExecutor):
    class FrontDoor(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "labkit-sim-endpoint"

        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            pass  # the deployments log every request; keep the front door quiet

        # Buffered, so the status line, headers and body leave in one write (flushed by http.server
        # after each request): separate small writes would meet the client's delayed ACK.
        wbufsize = 64 * 1024

        def reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if not headers or "content-type" not in {k.lower() for k in headers}:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status: int, message: str, headers: dict | None = None) -> None:
            self.reply(status, json.dumps({"message": message}).encode(), headers)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.handle_call("POST")

        def do_GET(self):  # noqa: N802
            self.handle_call("GET")

        def handle_call(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if (method, path) not in (("POST", "/score"), ("GET", "/swagger.json")):
                self.error(404, f"{method} {path} is not a route of this endpoint: score with POST /score.")
                return
            rules = routing.current()
            if not authorized(rules, self.headers.get("Authorization")):
                self.error(401, "Unauthorized: send the endpoint's key or token as 'Authorization: Bearer <key>'.")
                return
            if length > MAX_PAYLOAD_BYTES:
                self.error(413, "Payload too large: the request body is larger than 1.5 MB.")
                return
            deployments = rules.get("deployments") or {}
            named = self.headers.get(DEPLOYMENT_HEADER)
            if named:
                if named not in deployments:
                    self.error(404, f"Deployment '{named}' named in the {DEPLOYMENT_HEADER} header was not "
                                    f"found in endpoint '{rules.get('endpoint')}'.")
                    return
                target = named
            else:
                target = pick_live(rules, routing)
                if target is None or target not in deployments:
                    self.error(404, "No valid deployments to route to. Please check that the endpoint has at least "
                                    "one deployment with positive weight values or use a deployment specific header "
                                    "to route.")
                    return
            spec = deployments[target]
            if not spec.get("ports"):
                self.error(503, f"Deployment '{target}' has no instance running.")
                return
            forwarded = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
            forwarded.setdefault("Content-Type", "application/json")
            upstream_path = "/score" if method == "POST" else self.path
            if method == "POST" and not named:
                self.mirror(rules, target, body, forwarded)
            timeout_s = spec.get("request_timeout_ms", 5000) / 1000
            try:
                status, headers, payload = forward(routing.port_of(target, spec["ports"]), upstream_path, method,
                                                   body if method == "POST" else None, forwarded, timeout_s)
            except (socket.timeout, TimeoutError):
                self.error(408, f"Request timeout: deployment '{target}' took longer than its request_timeout_ms "
                                f"({spec.get('request_timeout_ms')} ms).", {DEPLOYMENT_HEADER: target})
                return
            except OSError as problem:
                self.error(502, f"Deployment '{target}' could not be reached: {problem}", {DEPLOYMENT_HEADER: target})
                return
            if method == "POST" and spec.get("data_collector"):
                _collect(spec["data_collector"], body, status, payload, self.headers.get("x-request-id"))
            returned = {name: headers[name] for name in RETURNED_HEADERS if name in headers}
            returned[DEPLOYMENT_HEADER] = target
            if status != 200 and path == "/score":
                returned["ms-azureml-model-error-statuscode"] = str(status)
                returned["ms-azureml-model-error-reason"] = "model_error"
                status = 424
            self.reply(status, payload, returned)

        def mirror(self, rules: dict, live: str, body: bytes, headers: dict) -> None:
            for shadow, share in (rules.get("mirror_traffic") or {}).items():
                spec = (rules.get("deployments") or {}).get(shadow)
                if shadow == live or not spec or not spec.get("ports") or share <= 0:
                    continue
                if routing.draw() < share:
                    port = routing.port_of(shadow, spec["ports"])
                    mirrors.submit(_quietly, forward, port, "/score", "POST", body, dict(headers),
                                   spec.get("request_timeout_ms", 5000) / 1000)

    return FrontDoor


def _collect(spec: dict, body: bytes, status: int, payload: bytes, request_id: str | None) -> None:
    """The deployment's data collector logs the request (``labkit.sim.data_collection``); a failure
    to log never changes the caller's answer."""
    try:
        from labkit.sim import data_collection

        data_collection.record(spec, body, status, payload, request_id)
    except Exception as problem:
        print(f"data collector: could not log a request: {problem}", file=sys.stderr, flush=True)


def _quietly(function, *args):
    try:
        function(*args)
    except Exception:  # the shadow's answer, or its failure, never reaches the caller
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def exit_when_gone(folder: Path) -> None:
    """An endpoint whose folder was deleted (its workspace removed while it ran) stops serving."""
    while folder.exists():
        time.sleep(2.0)
    os._exit(0)


def main() -> int:
    folder, port = Path(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=exit_when_gone, args=(folder,), daemon=True).start()
    routing = Routing(folder)
    with ThreadPoolExecutor(max_workers=4) as mirrors:
        server = Server((LOOPBACK, port), make_handler(routing, mirrors))
        print(f"front door of {folder.name} listening on http://{LOOPBACK}:{port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
