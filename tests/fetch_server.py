"""A local HTTP file server with fault injection, for the fetch tests and benchmark (127.0.0.1, ephemeral port).

Faults are queued per path and consumed one per request, in order:
``Fault("status", status=503)``, ``Fault("drop", after=N)`` (reset the
connection after N body bytes), ``Fault("ignore_range")``, ``Fault("slow",
delay=s)`` (sleep before the body), ``Fault("wrong", body=b"...")``.
``drop_every`` cuts every response after that many body bytes, with a TCP
reset (``drop_mode="reset"``, unsent bytes are lost) or a clean close
(``"close"``). ``GET /_control?drop_every=N&drop_mode=close`` sets those and
answers ``{"bytes_sent": ..., "requests": ...}`` (for a server in another process).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Optional


@dataclass
class Fault:
    kind: str
    status: int = 503
    after: int = 0
    delay: float = 0.0
    body: bytes = b""


class _Dropped(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        if path == "/_control":
            self._control(owner, query)
            return
        range_header = self.headers.get("Range")
        with owner.lock:
            fault = owner.faults.get(path, []).pop(0) if owner.faults.get(path) else None
            owner.requests.append((path, range_header, fault.kind if fault else None))
        data = owner.files.get(path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        if fault and fault.kind == "status":
            self.send_error(fault.status)
            return
        body = fault.body if fault and fault.kind == "wrong" else data
        start = 0
        honour = owner.honour_range and not (fault and fault.kind == "ignore_range")
        match = re.match(r"bytes=(\d+)-$", range_header or "")
        if match and honour:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        limit = fault.after if fault and fault.kind == "drop" else owner.drop_every
        view = memoryview(body)[start:]
        sent = 0
        try:
            while sent < len(view):
                n = owner.chunk
                if limit:
                    n = min(n, limit - sent)
                self.wfile.write(view[sent:sent + n])
                sent += n
                with owner.lock:
                    owner.bytes_sent += n
                if limit and sent >= limit and sent < len(view):
                    self._cut(owner.drop_mode if not fault else "reset")
                    return
        except (BrokenPipeError, ConnectionResetError):
            return

    def _cut(self, mode: str) -> None:
        """End the response early: a TCP reset (like a flaky proxy; unsent bytes are lost) or a clean close."""
        self.wfile.flush()
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_WR)
        self.connection.close()
        self.close_connection = True

    def _control(self, owner: "FileServer", query: str) -> None:
        for key, value in (kv.partition("=")[::2] for kv in query.split("&") if kv):
            if key == "drop_every":
                owner.drop_every = int(value)
            elif key == "drop_mode":
                owner.drop_mode = value
        body = json.dumps({"bytes_sent": owner.bytes_sent, "requests": len(owner.requests)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "FileServer"

    def handle_error(self, request, client_address) -> None:  # dropped connections are the point
        pass


class FileServer:
    """Serve ``files`` ({"/path": bytes}) at ``url(path)`` until ``stop()`` (or the ``with`` block ends)."""

    def __init__(self, files: Optional[dict[str, bytes]] = None, chunk: int = 64 * 1024):
        self.files = dict(files or {})
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[tuple[str, Optional[str], Optional[str]]] = []
        self.bytes_sent = 0
        self.honour_range = True
        self.drop_every = 0
        self.drop_mode = "reset"
        self.chunk = chunk
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add_faults(self, path: str, *faults: Fault) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def closed_port_url(path: str = "/x") -> Iterator[str]:
    """A URL on 127.0.0.1 where nothing listens (connection refused), for the ``with`` block.

    The port stays bound (never listening) until the block ends, so no other process can
    take it in between, as it could if the socket were closed before the test connects.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}{path}"


def fail_invalid_names(monkeypatch) -> None:
    """Make names under ``.invalid`` fail to resolve here, so no resolver is ever asked.

    Such names never resolve (RFC 6761), but a system resolver may still send the
    query out; tests must not touch the network at all.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
