"""IMAGE_URLS under test: an HTTP server on this host that publishes minstack's own test image.

CirrOS's download hosts are out of reach here, so the functional suite publishes an image itself:
tests/functional/localrc's IMAGE_URLS points at http://127.0.0.1:<port>/<name>.qcow2 and this server
answers it with the offline test image (built first by minstack's own builder), and answers the
SHA256SUMS beside it as CirrOS's publisher does.  The stack then downloads, checks and caches the
file and uploads what it downloaded, exactly as it would CirrOS.  Every request is recorded, so a
test can tell that the image was fetched once, with its sums, and that later runs used the cache.
"""
from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from minstack import images

CHUNK = 1 << 20


def served_here(url: str) -> bool:
    """An IMAGE_URLS entry this suite must serve itself: plain HTTP on the loopback address."""
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme == "http" and parsed.hostname == "127.0.0.1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    range: str | None


class ImageServer:
    """Serves one image file at url's path and its SHA256SUMS beside it; 404 for anything else."""

    def __init__(self, url: str, image: Path, log: Path):
        parsed = urllib.parse.urlparse(url)
        self.url, self.image, self.log = url, image, log
        self.image_path = parsed.path
        self.sums_path = parsed.path.rsplit("/", 1)[0] + "/SHA256SUMS"
        self.sha256 = images.sha256_of(image)
        self.requests: list[Request] = []
        self._httpd = ThreadingHTTPServer((parsed.hostname, parsed.port or 80), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="image-server", daemon=True)

    def start(self) -> "ImageServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(f"serving {self.image} (sha256 {self.sha256}) as {self.url}\n")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def downloads(self) -> list[Request]:
        """The successful GETs of the image itself."""
        return [r for r in self.requests if r.path == self.image_path and r.method == "GET" and r.status == 200]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path == server.image_path:
                    self._answer(200, server.image.stat().st_size, server.image)
                elif self.path == server.sums_path:
                    body = f"{server.sha256}  {Path(server.image_path).name}\n".encode()
                    self._answer(200, len(body), body)
                else:
                    self._answer(404, 0, b"")

            def _answer(self, status: int, length: int, body: bytes | Path):
                server.requests.append(Request("GET", self.path, status, self.headers.get("Range")))
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if isinstance(body, Path):
                    with body.open("rb") as f:
                        while chunk := f.read(CHUNK):
                            self.wfile.write(chunk)
                else:
                    self.wfile.write(body)

            def log_message(self, fmt, *args):
                with server.log.open("a") as log:
                    log.write(f"{self.log_date_time_string()} {fmt % args}\n")

        return Handler
