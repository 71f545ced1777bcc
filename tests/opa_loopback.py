"""A loopback server that speaks OPA's v1 policy and data REST API, for tests only.

No OPA binary can be installed from the registries this project reaches, so the OPA-server
backend is exercised against this server: it stores policies and data as OPA does
(PUT/GET /v1/policies/{id}, PUT /v1/data/{path}, POST /v1/data/{path} with {"input": ...}) and
evaluates queries with regopy (`Interpreter.query`, not the compiled-bundle path the embedded
engine uses). Undefined results answer ``{}`` without ``result``, errors answer 500, as OPA does.
It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slmgate.engine.policy._embedded import _regopy


class _State:
    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.queries = 0


def _interpreter(state: _State, strict: bool) -> Any:
    rego = _regopy()
    interp = rego.Interpreter()
    interp.strict_built_in_errors = strict
    interp.add_data(state.data)
    for pid, source in sorted(state.policies.items()):
        interp.add_module(pid.replace("/", "_") + ".rego", source)
    return interp


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any | None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            self._send(200, {})
        elif path.startswith("/v1/policies/"):
            pid = path.removeprefix("/v1/policies/")
            if pid in self.state.policies:
                self._send(200, {"result": {"id": pid, "raw": self.state.policies[pid]}})
            else:
                self._send(404, {"code": "resource_not_found",
                                 "message": f"storage_not_found_error: policy id {pid!r}"})
        else:
            self._send(404, {"code": "resource_not_found", "message": path})

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        with self.state.lock:
            if path.startswith("/v1/policies/"):
                pid = path.removeprefix("/v1/policies/")
                previous = self.state.policies.get(pid)
                self.state.policies[pid] = body.decode()
                try:
                    _interpreter(self.state, True)
                except Exception as exc:
                    if previous is None:
                        self.state.policies.pop(pid)
                    else:
                        self.state.policies[pid] = previous
                    self._send(400, {"code": "invalid_parameter", "message": str(exc)[:500], "errors": []})
                    return
                self._send(200, {})
            elif path.startswith("/v1/data/"):
                node = self.state.data
                *parents, last = path.removeprefix("/v1/data/").split("/")
                for part in parents:
                    node = node.setdefault(part, {})
                node[last] = json.loads(body)
                self._send(204, None)
            else:
                self._send(404, {"code": "resource_not_found", "message": path})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/v1/data/"):
            self._send(404, {"code": "resource_not_found", "message": parts.path})
            return
        strict = parse_qs(parts.query).get("strict-builtin-errors", ["false"])[0] == "true"
        ref = "data." + parts.path.removeprefix("/v1/data/").replace("/", ".")
        request = json.loads(self._body() or b"{}")
        with self.state.lock:
            self.state.queries += 1
            try:
                interp = _interpreter(self.state, strict)
                interp.set_input(request.get("input", {}))
                output = interp.query(f"x = {ref}")
                text = str(output)
            except Exception as exc:
                self._send(500, {"code": "internal_error", "message": str(exc)[:500]})
                return
        if not output.ok():
            self._send(500, {"code": "internal_error", "message": "eval_builtin_error"})
        elif text.strip() == "undefined":
            self._send(200, {})
        else:
            self._send(200, {"result": json.loads(text)["bindings"]["x"]})


@contextmanager
def opa_loopback() -> Iterator[tuple[str, _State]]:
    """Serve on 127.0.0.1 (a free port) for the duration of the block; yields (url, state)."""
    state = _State()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
