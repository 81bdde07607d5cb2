"""An online endpoint's front door: ``python -m labkit.sim.endpoints.online_frontdoor <endpoint folder> <port>``.

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

Why asyncio with httptools (and uvloop where it installs): the front door is an extra hop in
every scoring call, on the same two cores as the caller and the inference server. Python's
``http.server`` with a thread per connection and ``http.client`` upstream spent about a
millisecond a request on parsing and thread hand-offs (``benchmarks/bench_online_endpoints.py``);
one event loop with the C parser uvicorn uses spends a fraction of that. Only the HTTP/1.1 the
endpoint speaks is handled: keep-alive, ``Content-Length`` or chunked bodies, ``Expect: 100-continue``.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path

import httptools

LOOPBACK = "127.0.0.1"
DEPLOYMENT_HEADER = "azureml-model-deployment"
FORWARDED_REQUEST_HEADERS = ("content-type", "x-request-id", "x-ms-client-request-id", "x-ms-request-id", "traceid")
RETURNED_HEADERS = ("content-type", "x-ms-run-fn-exec-ms", "x-ms-run-function-failed", "x-request-id",
                    "x-ms-request-id", "x-ms-client-request-id", "x-ms-server-version")
MAX_PAYLOAD_BYTES = 1_500_000  # the service refuses larger requests with 413 (about 1.5 MB)
SERVER_NAME = "labkit-sim-endpoint"


class Routing:
    """``routing.json``, reloaded when its modification time changes."""

    def __init__(self, folder: Path):
        self.path = folder / "routing.json"
        self.stamp = None
        self.data: dict = {}
        self.random = random.Random(folder.name)
        self.next_instance: dict[str, int] = {}

    def current(self) -> dict:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            return self.data
        if stamp != self.stamp:
            try:
                self.data = json.loads(self.path.read_text())
                self.stamp = stamp
            except (FileNotFoundError, json.JSONDecodeError):
                pass  # mid-replace: keep the previous rules for this request
        return self.data

    def draw(self) -> float:
        return self.random.uniform(0, 100)

    def port_of(self, name: str, ports: list[int]) -> int:
        index = self.next_instance.get(name, 0)  # round robin over the deployment's instances
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
        from labkit.sim.core.credentials import FAKE_TOKEN

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


class Answer:
    """One HTTP answer: status, headers (names in lower case) and body."""

    def __init__(self, status: int, body: bytes, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}

    @classmethod
    def error(cls, status: int, message: str, headers: dict | None = None) -> Answer:
        return cls(status, json.dumps({"message": message}).encode(), headers)


def record_header(headers: dict, name: bytes, value: bytes) -> None:
    """A header as httptools hands it over, kept under its name in lower case."""
    headers[name.decode("latin-1").lower()] = value.decode("latin-1")


class Request:
    """One parsed HTTP request (``Connection`` fills it in from httptools' callbacks)."""

    def __init__(self):
        self.url = b""
        self.headers: dict[str, str] = {}  # names in lower case
        self.body = bytearray()
        self.method = ""
        self.keep_alive = True


class UpstreamAnswer(asyncio.Protocol):
    """Reads one answer from a deployment's inference server (which closes the connection after it)."""

    def __init__(self, request: bytes):
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as problem:
            self._finish(problem)

    def connection_lost(self, problem) -> None:
        self._finish(problem or ConnectionResetError("the deployment closed the connection before answering"))

    def on_header(self, name: bytes, value: bytes) -> None:
        record_header(self.headers, name, value)

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self._finish(None)

    def _finish(self, problem) -> None:
        if not self.done.done():
            if problem is None:
                self.done.set_result(Answer(self.parser.get_status_code(), bytes(self.body), self.headers))
            else:
                self.done.set_exception(problem)


async def forward(port: int, path: str, method: str, body: bytes, headers: dict, timeout_s: float) -> Answer:
    """Send one request to a deployment's instance and read its answer; ``TimeoutError`` past ``timeout_s``."""
    request = http_message(f"{method} {path} HTTP/1.1",
                           {"host": f"{LOOPBACK}:{port}", "content-length": str(len(body)), **headers}, body)
    loop = asyncio.get_running_loop()
    # A timer that cancels this task, rather than asyncio.wait_for's extra task per request.
    task, expired = asyncio.current_task(), []
    timer = loop.call_later(timeout_s, lambda: (expired.append(True), task.cancel()))
    transport = None
    try:
        transport, upstream = await loop.create_connection(lambda: UpstreamAnswer(request), LOOPBACK, port)
        return await upstream.done
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError(f"no answer within {timeout_s} s") from None
        raise
    finally:
        timer.cancel()
        if transport is not None:
            transport.close()


class FrontDoor:
    """The endpoint's rules, applied to one request at a time."""

    def __init__(self, routing: Routing):
        self.routing = routing
        self.background: set[asyncio.Task] = set()  # mirrored copies in flight

    async def answer(self, request: Request) -> Answer:
        method, target_url = request.method, request.url.decode("latin-1")
        path = target_url.split("?", 1)[0]
        if (method, path) not in (("POST", "/score"), ("GET", "/swagger.json")):
            return Answer.error(404, f"{method} {path} is not a route of this endpoint: score with POST /score.")
        rules = self.routing.current()
        if not authorized(rules, request.headers.get("authorization")):
            return Answer.error(401, "Unauthorized: send the endpoint's key or token as 'Authorization: Bearer <key>'.")
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return Answer.error(413, "Payload too large: the request body is larger than 1.5 MB.")
        deployments = rules.get("deployments") or {}
        named = request.headers.get(DEPLOYMENT_HEADER)
        if named:
            if named not in deployments:
                return Answer.error(404, f"Deployment '{named}' named in the {DEPLOYMENT_HEADER} header was not "
                                         f"found in endpoint '{rules.get('endpoint')}'.")
            target = named
        else:
            target = pick_live(rules, self.routing)
            if target is None or target not in deployments:
                return Answer.error(404, "No valid deployments to route to. Please check that the endpoint has at "
                                         "least one deployment with positive weight values or use a deployment "
                                         "specific header to route.")
        spec = deployments[target]
        if not spec.get("ports"):
            return Answer.error(503, f"Deployment '{target}' has no instance running.")
        forwarded = {name: value for name, value in request.headers.items() if name in FORWARDED_REQUEST_HEADERS}
        forwarded.setdefault("content-type", "application/json")
        body = bytes(request.body) if method == "POST" else b""
        if method == "POST" and not named:
            self.mirror(rules, target, body, forwarded)
        try:
            answer = await forward(self.routing.port_of(target, spec["ports"]),
                                   "/score" if method == "POST" else target_url, method, body, forwarded,
                                   spec.get("request_timeout_ms", 5000) / 1000)
        except TimeoutError:
            return Answer.error(408, f"Request timeout: deployment '{target}' took longer than its "
                                     f"request_timeout_ms ({spec.get('request_timeout_ms')} ms).",
                                {DEPLOYMENT_HEADER: target})
        except (OSError, httptools.HttpParserError) as problem:
            return Answer.error(502, f"Deployment '{target}' could not be reached: {problem}",
                                {DEPLOYMENT_HEADER: target})
        if method == "POST" and spec.get("data_collector"):
            await asyncio.get_running_loop().run_in_executor(
                None, _collect, spec["data_collector"], body, answer.status, answer.body,
                request.headers.get("x-request-id"))
        returned = {name: answer.headers[name] for name in RETURNED_HEADERS if name in answer.headers}
        returned[DEPLOYMENT_HEADER] = target
        status = answer.status
        if status != 200 and path == "/score":
            returned["ms-azureml-model-error-statuscode"] = str(status)
            returned["ms-azureml-model-error-reason"] = "model_error"
            status = 424
        return Answer(status, answer.body, returned)

    def mirror(self, rules: dict, live: str, body: bytes, headers: dict) -> None:
        for shadow, share in (rules.get("mirror_traffic") or {}).items():
            spec = (rules.get("deployments") or {}).get(shadow)
            if shadow == live or not spec or not spec.get("ports") or share <= 0:
                continue
            if self.routing.draw() < share:
                copy = forward(self.routing.port_of(shadow, spec["ports"]), "/score", "POST", body, dict(headers),
                               spec.get("request_timeout_ms", 5000) / 1000)
                task = asyncio.ensure_future(_quietly(copy))
                self.background.add(task)
                task.add_done_callback(self.background.discard)


async def _quietly(copy) -> None:
    try:
        await copy
    except Exception:  # the shadow's answer, or its failure, never reaches the caller
        pass


def _collect(spec: dict, body: bytes, status: int, payload: bytes, request_id: str | None) -> None:
    """The deployment's data collector logs the request (``labkit.sim.endpoints.data_collection``); a failure
    to log never changes the caller's answer."""
    try:
        from labkit.sim.endpoints import data_collection

        data_collection.record(spec, body, status, payload, request_id)
    except Exception as problem:
        print(f"data collector: could not log a request: {problem}", file=sys.stderr, flush=True)


REASONS = {status.value: status.phrase for status in HTTPStatus}
_date = [0, ""]  # the Date header, formatted once a second


def http_date() -> str:
    now = int(time.time())
    if now != _date[0]:
        _date[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date[1]


def http_message(start_line: str, headers: dict, body: bytes) -> bytes:
    """An HTTP/1.1 request or response: its start line, headers and body, as bytes."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{start_line}\r\n{head}\r\n".encode("latin-1") + body


def encode(answer: Answer, keep_alive: bool) -> bytes:
    headers = {"server": SERVER_NAME, "date": http_date(), **answer.headers}  # names in lower case already
    headers.setdefault("content-type", "application/json")
    headers["content-length"] = str(len(answer.body))
    if not keep_alive:
        headers["connection"] = "close"
    return http_message(f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, '')}", headers, answer.body)


class Connection(asyncio.Protocol):
    """One client connection: requests are parsed as they arrive and answered in order."""

    def __init__(self, door: FrontDoor):
        self.door = door
        self.transport = None
        self.request = Request()
        self.parser = httptools.HttpRequestParser(self)
        self.queue: asyncio.Queue[Request | None] = asyncio.Queue()
        self.worker = None  # the task answering this connection (held, so it is not collected)
        self.closing = False  # a request said "Connection: close": nothing after it is read

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.worker = asyncio.ensure_future(self.serve())

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # no protocol upgrade (h2c, WebSocket) is served here
            self.queue.put_nowait(None)
        except httptools.HttpParserError:
            if self.closing:
                return  # bytes after the last request: its answer goes out, then the connection closes
            self.transport.write(encode(Answer.error(400, "Bad request: the request is not valid HTTP/1.1."), False))
            self.transport.close()

    def connection_lost(self, problem) -> None:
        self.queue.put_nowait(None)

    # httptools.HttpRequestParser callbacks
    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        record_header(self.request.headers, name, value)

    def on_headers_complete(self) -> None:
        if self.request.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.request.body += chunk

    def on_message_complete(self) -> None:
        self.request.method = self.parser.get_method().decode("latin-1")
        self.request.keep_alive = self.parser.should_keep_alive()
        self.closing = not self.request.keep_alive
        self.queue.put_nowait(self.request)
        self.request = Request()

    async def serve(self) -> None:
        try:
            while (request := await self.queue.get()) is not None:
                answer = await self.door.answer(request)
                if self.transport.is_closing():
                    return
                self.transport.write(encode(answer, request.keep_alive))
                if not request.keep_alive:
                    return
        finally:
            self.transport.close()


def exit_when_gone(folder: Path) -> None:
    """An endpoint whose folder was deleted (its workspace removed while it ran) stops serving."""
    while folder.exists():
        time.sleep(2.0)
    os._exit(0)


async def serve(folder: Path, port: int) -> None:
    door = FrontDoor(Routing(folder))
    server = await asyncio.get_running_loop().create_server(lambda: Connection(door), LOOPBACK, port, backlog=128)
    print(f"front door of {folder.name} listening on http://{LOOPBACK}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    folder, port = Path(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=exit_when_gone, args=(folder,), daemon=True).start()
    try:
        import uvloop  # libuv's event loop: not built for Windows, where asyncio's own serves
    except ImportError:
        asyncio.run(serve(folder, port))
    else:
        uvloop.run(serve(folder, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
