"""HTTP over the identify service (stdlib ``http.server``, a thread a connection).

    GET  /                 the page (csi.serve.page)
    POST /identify         audio as the body (``?name=song.mp3`` names it) or a
                           multipart/form-data upload (field ``file``); ``?topk=N``
    GET  /plot/<id>.png    the alignment plot of an answer's best match
    GET  /health           {"status": "ok", index, model, limits, uptime, responses by status}

Answers and errors are JSON; an error is ``{"error": reason}`` with a 4xx status for a bad
request (csi.serve.upload), 404 for an unknown path or plot, 405 for a wrong method, and
500 (logged with its traceback) for a fault of the service, which goes on serving.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from csi.serve.page import render_page
from csi.serve.service import IdentifyService
from csi.serve.upload import UploadError, parse_upload, read_body

log = logging.getLogger("csi.serve")
PLOT_PATH = re.compile(r"^/plot/([0-9a-f]{32})\.png$")
ROUTES = {"/": ("GET",), "/health": ("GET",), "/identify": ("POST",)}


class IdentifyServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the service its handlers answer with."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: IdentifyService):
        super().__init__(address, IdentifyHandler)
        self.service = service

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class IdentifyHandler(BaseHTTPRequestHandler):
    server: IdentifyServer
    server_version = "csi-serve/1"
    protocol_version = "HTTP/1.1"
    timeout = 120                        # seconds a connection may stall before it is dropped

    # ---- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        service = self.server.service
        url = urlsplit(self.path)
        status = 500
        try:
            plot = PLOT_PATH.match(url.path)
            if plot and method == "GET":
                png = service.plot_png(plot.group(1))
                if png is None:
                    status = self._json(404, {"error": f"no plot {plot.group(1)}: unknown, or an answer too old "
                                                       f"(the last {service.options.plots_kept} are kept)"})
                else:
                    status = self._send(200, png, "image/png")
            elif url.path not in ROUTES and not plot:
                status = self._json(404, {"error": f"no such path {url.path}; see GET /"})
            elif method not in ROUTES.get(url.path, ("GET",)):
                self.close_connection = True
                status = self._json(405, {"error": f"{method} {url.path} is not served (use "
                                                   f"{' or '.join(ROUTES.get(url.path, ('GET',)))})"})
            elif url.path == "/":
                status = self._send(200, render_page(service.health()), "text/html; charset=utf-8")
            elif url.path == "/health":
                status = self._json(200, service.health())
            else:
                status = self._identify(url.query)
        except UploadError as e:
            status = self._json(e.status, {"error": e.reason})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True         # the client left: nothing to answer
            status = 499
        except Exception as e:           # a fault of ours: said, logged, and the server goes on
            log.exception("%s %s failed", method, self.path)
            self.close_connection = True
            status = self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})
        finally:
            service.count(status)

    def _identify(self, query: str) -> int:
        service = self.server.service
        params = parse_qs(query)
        try:
            topk = service.topk(params.get("topk", [None])[-1])
            body = read_body(self.headers, self.rfile, service.options.max_bytes)
        except UploadError:
            self.close_connection = True         # the body may be unread: the connection is not reusable
            raise
        upload = parse_upload(body, self.headers.get("Content-Type", ""), params.get("name", [None])[-1])
        return self._json(200, service.identify(upload, topk))

    # ---- responses -----------------------------------------------------------------------------
    def _json(self, status: int, obj) -> int:
        return self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        return status

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(service: IdentifyService, host: str = "127.0.0.1", port: int = 0) -> IdentifyServer:
    """A server bound to ``host:port`` (port 0: a free one; ``server.url`` says which)."""
    return IdentifyServer((host, port), service)


def serve_in_thread(server: IdentifyServer) -> threading.Thread:
    """Serve from a daemon thread (tests, benchmarks); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="csi-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return thread
