"""A real MJPEG-over-HTTP server on 127.0.0.1 for the live tests: serves a video's frames as
``multipart/x-mixed-replace`` (what IP cameras serve), paced at the video's frame rate, looping.

It can be stopped and started again on the same port (to prove reconnection), can stall (send the headers
and a frame, then nothing, holding the connection open) and can change the frame size.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

BOUNDARY = "crowdcountframe"


def load_jpegs(video: Path, limit: int | None = None, size: tuple[int, int] | None = None) -> list[bytes]:
    """The frames of ``video`` as JPEG bytes (optionally resized to ``size`` = (width, height))."""
    cap = cv2.VideoCapture(str(video))
    out: list[bytes] = []
    try:
        while limit is None or len(out) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if size is not None:
                frame = cv2.resize(frame, size)
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            out.append(data.tobytes())
    finally:
        cap.release()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MjpegServer:
    """Serves ``jpegs`` at ``fps`` on ``http://127.0.0.1:<port>/stream.mjpg``; :meth:`stop` closes every
    connection, :meth:`start` serves again on the same port. With ``stall_after`` frames, each connection
    goes silent after that many frames while keeping the socket open."""

    def __init__(self, jpegs: list[bytes], fps: float = 10.0, port: int | None = None) -> None:
        self.jpegs = jpegs
        self.fps = fps
        self.port = port or free_port()
        self.stall_after: int | None = None
        self.connections = 0
        self.frames_sent = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                start = time.monotonic()
                i = 0
                try:
                    while not server._stopped.is_set():
                        if server.stall_after is not None and i >= server.stall_after:
                            server._stopped.wait(0.05)  # silent, connection held open
                            continue
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        part = (
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        ).encode()
                        self.wfile.write(part + jpeg + b"\r\n")
                        self.wfile.flush()
                        server.frames_sent += 1
                        i += 1
                        delay = start + i / server.fps - time.monotonic()
                        if delay > 0:
                            server._stopped.wait(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def start(self) -> MjpegServer:
        self._stopped.clear()
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def solid_jpegs(n: int, size: tuple[int, int]) -> list[bytes]:
    """``n`` plain grey JPEG frames of ``size`` (width, height)."""
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    ok, data = cv2.imencode(".jpg", frame)
    assert ok
    return [data.tobytes()] * n
