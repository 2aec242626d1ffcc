"""A local stand-in for DOL's EFAST2 file server: a real HTTP server (ThreadingHTTPServer on
127.0.0.1, a free port) that serves archives, republishes them, honours conditional requests
(ETag / If-None-Match, Last-Modified / If-Modified-Since) and fails on demand: a 503, a response
slower than the client's timeout, a body cut short (the connection closed mid-body)."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import time
import zipfile
from collections import defaultdict, deque
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from ple.config import DOL_SAMPLE_DIR
from ple.dol import fetch


class DolServer:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, float]] = {}  # path -> (body, etag, last modified)
        self.faults: dict[str, deque] = defaultdict(deque)  # path -> faults for the next requests
        self.requests: list[tuple[str, int, dict]] = []  # (path, status, request headers)
        self.slow_seconds = 2.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def send_response(self, code, message=None) -> None:
                # recorded before the response is sent: a client never sees an answer not yet recorded
                with server.lock:
                    server.requests.append((unquote(self.path), code, dict(self.headers)))
                super().send_response(code, message)

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = unquote(self.path)
                with server.lock:
                    fault = server.faults[path].popleft() if server.faults[path] else None
                    served = server.files.get(path)
                self._serve(path, fault, served)

            def _serve(self, path, fault, served) -> int:
                if fault == "503":
                    self._answer(503, b"busy")
                    return 503
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if served is None:
                    self._answer(404, b"not found")
                    return 404
                body, etag, modified = served
                validators = {"ETag": etag, "Last-Modified": formatdate(modified, usegmt=True)}
                if fault == "cut":
                    self.send_response(200)
                    for name, value in validators.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return 200
                if fault == "corrupt":
                    self._answer(200, body[:-200] + bytes(200), validators)
                    return 200
                match = self.headers.get("If-None-Match")
                since = self.headers.get("If-Modified-Since")
                if (match is not None and match == etag) or (
                    match is None and since is not None and int(modified) <= parsedate_to_datetime(since).timestamp()
                ):
                    self.send_response(304)
                    for name, value in validators.items():
                        self.send_header(name, value)
                    self.end_headers()
                    return 304
                self._answer(200, body, validators)
                return 200

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/FOIA%20Files"

    def path(self, dataset: str, year: int) -> str:
        return f"/FOIA Files/{year}/Latest/{dataset}_{year}_Latest.zip"

    def publish(self, dataset: str, year: int, body: bytes, etag: str | None = None) -> None:
        """(Re)publish an archive under its name; a new Last-Modified, later than any before."""
        with self.lock:
            previous = self.files.get(self.path(dataset, year))
            modified = max(time.time(), previous[2] + 1 if previous else 0)
            self.files[self.path(dataset, year)] = (
                body,
                etag or '"' + hashlib.sha256(body).hexdigest()[:20] + '"',
                modified,
            )

    def fail_next(self, dataset: str, year: int, *faults: str) -> None:
        with self.lock:
            self.faults[self.path(dataset, year)].extend(faults)

    def answered(self, since: int = 0) -> list[tuple[str, int]]:
        with self.lock:
            return [(p, s) for p, s, _ in self.requests[since:]]

    def __enter__(self) -> DolServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# What the tests serve: the sample files as EFAST2 archives.
FAST = fetch.Retry(attempts=4, backoff=0.05, max_backoff=0.2, timeout=0.5)


def csv_bytes(header, rows) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def archive(dataset: str, year: int, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{dataset.lower()}_{year}_latest.csv", data)
    return buffer.getvalue()


def f_5500_2021() -> tuple[list[str], list[list[str]]]:
    with (DOL_SAMPLE_DIR / "f_5500_2021_dbplans_slice.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def served_archives() -> dict[tuple[str, int], bytes]:
    header, rows = f_5500_2021()
    with zipfile.ZipFile(DOL_SAMPLE_DIR / "F_SCH_A_2021_synthetic.zip") as z:
        schedule_a = z.read(z.namelist()[0])
    return {
        ("F_5500", 2021): archive("F_5500", 2021, csv_bytes(header, rows)),
        ("F_SCH_A", 2021): archive("F_SCH_A", 2021, schedule_a),
        ("F_5500_SF", 2023): archive("F_5500_SF", 2023, (DOL_SAMPLE_DIR / "f_5500_sf_2023_synthetic.csv").read_bytes()),
    }
