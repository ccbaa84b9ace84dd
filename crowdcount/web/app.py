"""The dashboard's web application (Starlette, served by uvicorn; server-sent events by sse-starlette).

Routes (docs/dashboard.md): ``/`` the page and ``/static/*`` its scripts and styles (inside the package),
``/api/info``, ``/api/status``, ``/api/series``, ``/api/alerts``, ``/events`` (SSE), ``/stream/NAME.mjpg``,
``/api/results``, ``/api/results/ID``, ``/download/ID.json|.csv`` and ``/metrics``.

With a token every route wants it: ``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` once (the page's
address), which sets an HTTP-only cookie that the page's own requests (its streams included) then carry.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdcount.errors import ConfigError
from crowdcount.web.live import LiveHub
from crowdcount.web.results import ResultsCatalog, detail, is_result, to_csv

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "crowdcount_token"
#: frames per second at most on an MJPEG stream
MJPEG_MAX_FPS = 15.0


def _missing_extra(exc: ImportError) -> ConfigError:
    return ConfigError(
        f"the dashboard needs the web extra ({exc.name} is not installed)", "pip install 'crowdcount[web]'"
    )


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1 (``[::1]:8080`` for IPv6)."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--web {text!r} is not [HOST:]PORT", "e.g. --web 8080 or --web 0.0.0.0:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> None:
    """A bind beyond this machine needs a token (:class:`ConfigError` otherwise)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"the dashboard on {host} would be open to the network without a token",
            "give --token TOKEN (or set CROWDCOUNT_WEB_TOKEN), or bind 127.0.0.1",
        )


def annotate(frame: Any, scale: float = 0.5) -> np.ndarray:
    """The BGR image of a hub frame: boxes with track ids, faces, lines, zones and the count drawn (as in
    ``analyze --annotate``: :mod:`crowdcount.analyzer.annotate` draws both), the count in a bar at the bottom."""
    from crowdcount.analyzer.annotate import draw_boxes, draw_lines, draw_text, draw_zones, frame_scale, text_size

    canvas = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
    scale = frame_scale(canvas.shape[0])
    lines, zones = frame.geometry
    draw_zones(canvas, zones, scale)
    draw_lines(canvas, lines, scale)
    for category, dets in frame.detections.items():
        draw_boxes(canvas, category, dets, scale)
    # the count in a bar at the bottom left, where it hides no line or zone label
    width, height_text, base = text_size(frame.header, scale)
    bottom = canvas.shape[0]
    cv2.rectangle(canvas, (0, bottom - height_text - base - 10), (width + 12, bottom), (0, 0, 0), -1)
    draw_text(canvas, frame.header, (6, bottom - base - 5), (255, 255, 255), scale)
    return canvas


def create_app(
    hub: LiveHub | None = None,
    catalog: ResultsCatalog | None = None,
    registry: Any | None = None,
    token: str | None = None,
    title: str = "crowdcount",
    jpeg_quality: int = 80,
) -> Any:
    """The Starlette application of the dashboard: live (``hub``), finished (``catalog``) or both."""
    try:
        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.middleware import Middleware
        from starlette.requests import Request
        from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles
    except ImportError as exc:
        raise _missing_extra(exc) from None

    secret = token.encode() if token else None

    class TokenMiddleware:
        """Every route (streams and /metrics included) wants the token, when there is one."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if secret is None or scope["type"] not in ("http", "websocket"):
                await self.app(scope, receive, send)
                return
            request = Request(scope)
            given = request.query_params.get("token")
            header = request.headers.get("authorization", "")
            cookie = request.cookies.get(COOKIE)
            candidates = [
                given,
                urllib.parse.unquote(cookie) if cookie is not None else None,
                header[7:] if header.lower().startswith("bearer ") else None,
            ]
            if not any(c is not None and hmac.compare_digest(c.encode(), secret) for c in candidates):
                response = PlainTextResponse(
                    "401 Unauthorized: this dashboard needs its token (open it as /?token=TOKEN)\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
            if given is not None:  # the page's address: keep the token in a cookie for its own requests

                async def send_with_cookie(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        # percent-encoded: a token's ';', ',', spaces or non-ASCII letters would break the cookie
                        value = urllib.parse.quote(token or "", safe="")
                        cookie = f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/"
                        message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
                    await send(message)

                await self.app(scope, receive, send_with_cookie)
                return
            await self.app(scope, receive, send)

    class SecurityHeaders:
        """Every response says what the page may load (its own scripts, styles, images and streams only), so that
        markup smuggled into a value (a result file, a camera name) cannot run or send anything elsewhere, and
        that the page is not framed by another site nor leaks its address (the token) to other sites."""

        HEADERS = (
            (
                b"content-security-policy",
                b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        )

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", []).extend(self.HEADERS)
                await send(message)

            await self.app(scope, receive, send_with_headers)

    def no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    async def index(request: Request) -> Response:
        return no_store(FileResponse(STATIC / "index.html", media_type="text/html"))

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "title": title,
                "live": hub is not None,
                "results": catalog is not None,
                "sources": hub.names if hub is not None else [],
            }
        )

    async def status(request: Request) -> Response:
        if hub is None:
            return JSONResponse({"sources": [], "alerts": []})
        return no_store(JSONResponse(await run_in_threadpool(hub.status)))

    async def alerts(request: Request) -> Response:
        if hub is None:
            return JSONResponse({"active": [], "history": []})
        return JSONResponse({"active": hub.alerts.active(), "history": hub.alerts.history()})

    async def series(request: Request) -> Response:
        if hub is None:
            return JSONResponse({"error": "no live sources in this dashboard"}, status_code=404)
        source = request.query_params.get("source", "")
        try:
            seconds = float(request.query_params.get("seconds", "300"))
        except ValueError:
            return JSONResponse({"error": "seconds must be a number"}, status_code=400)
        if source not in hub.names:
            return JSONResponse({"error": f"no source {source!r}", "sources": hub.names}, status_code=404)
        return no_store(JSONResponse(hub.series(source, max(1.0, min(seconds, 86400.0)))))

    async def events(request: Request) -> Response:
        if hub is None:
            return JSONResponse({"error": "no live sources in this dashboard"}, status_code=404)

        async def stream() -> Any:  # the status twice a second: the page is at most 0.5 s behind
            while not await request.is_disconnected():
                payload = await run_in_threadpool(hub.status)
                yield {"event": "status", "data": json.dumps(payload, separators=(",", ":"))}
                await asyncio.sleep(0.5)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    async def mjpeg(request: Request) -> Response:
        name = request.path_params["name"]
        if hub is None or name not in hub.names:
            return JSONResponse({"error": f"no source {name!r}"}, status_code=404)

        async def frames() -> Any:
            hub.add_viewer(name)
            try:
                seq = 0
                while True:  # Starlette cancels this generator when the viewer goes
                    frame = hub.latest_frame(name, seq)
                    if frame is None:
                        await asyncio.sleep(0.04)
                        continue
                    seq = frame.seq
                    jpeg = await run_in_threadpool(_encode, frame, jpeg_quality)
                    yield (
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpeg)).encode()
                        + b"\r\n\r\n"
                        + jpeg
                        + b"\r\n"
                    )
                    await asyncio.sleep(1.0 / MJPEG_MAX_FPS)
            finally:
                hub.remove_viewer(name)

        return StreamingResponse(
            frames(), media_type="multipart/x-mixed-replace; boundary=frame", headers={"Cache-Control": "no-store"}
        )

    async def read(entry: Any) -> tuple[Any, Response | None]:
        """The entry's document, or the 502 saying it cannot be read now (S3 denied, throttled, unreachable)."""
        try:
            return await run_in_threadpool(catalog.document, entry), None  # type: ignore[union-attr]
        except Exception as exc:
            from crowdcount.aws.errors import error_code

            code = error_code(exc) or type(exc).__name__
            logger.warning("result %s (%s) cannot be read: %s", entry.id, entry.location, code)
            error = f"result {entry.id!r} cannot be read now ({code}); try again later"
            return None, JSONResponse({"error": error}, status_code=502)

    def cannot_show(entry_id: str) -> Response:
        error = f"result {entry_id!r} cannot be shown: its file is no complete crowdcount result"
        return JSONResponse({"error": error}, status_code=422)

    async def results(request: Request) -> Response:
        if catalog is None:
            return JSONResponse({"results": [], "errors": []})
        rows = await run_in_threadpool(catalog.rows)
        return no_store(JSONResponse({"results": rows, "errors": catalog.errors}))

    async def result(request: Request) -> Response:
        entry = await run_in_threadpool(catalog.get, request.path_params["video"]) if catalog is not None else None
        if entry is None:
            return JSONResponse({"error": "no such result"}, status_code=404)
        document, failed = await read(entry)
        if failed is not None:
            return failed
        try:
            return no_store(JSONResponse(detail(entry, document if is_result(document) else None)))
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            return cannot_show(entry.id)

    async def download(request: Request) -> Response:
        video, kind = request.path_params["video"], request.path_params["kind"]
        if kind not in ("json", "csv"):
            return JSONResponse({"error": f"no download {kind!r}: ask for .json or .csv"}, status_code=404)
        entry = await run_in_threadpool(catalog.get, video) if catalog is not None else None
        document, failed = await read(entry) if entry is not None else (None, None)
        if failed is not None:
            return failed
        if document is None or entry is None or not is_result(document):  # gone, or rewritten into no result
            return JSONResponse({"error": "no such result"}, status_code=404)
        described = document.get("video")
        name = described.get("name") if isinstance(described, dict) else None
        stem = Path(str(name or video)).stem or "result"
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        if kind == "csv":
            try:
                body, media = to_csv(document), "text/csv"
            except (AttributeError, TypeError, ValueError, KeyError, IndexError):
                return cannot_show(entry.id)
        else:
            body, media = json.dumps(document, separators=(",", ":")), "application/json"
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{stem}.{kind}"'}
        )

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        # a gauge may list the results (a slow folder or S3 prefix): never on the event loop
        body = await run_in_threadpool(generate_latest, registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/status", status),
        Route("/api/series", series),
        Route("/api/alerts", alerts),
        Route("/events", events),
        Route("/stream/{name:path}.mjpg", mjpeg),  # a URL source is named host:port/path
        Route("/api/results", results),
        Route("/api/results/{video:path}", result),
        Route("/download/{video:path}.{kind:str}", download),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders), Middleware(TokenMiddleware)])


def _encode(frame: Any, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", annotate(frame), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


class WebServer:
    """Serves an app with uvicorn, in a thread (``watch --web``) or in the foreground (``dashboard``).

    The socket is bound at construction, so a port in use is a :class:`ConfigError` before any work, and port 0
    picks a free one (:attr:`port`)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        try:
            import uvicorn
        except ImportError as exc:
            raise _missing_extra(exc) from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ConfigError(
                f"the dashboard cannot listen on {host}:{port}: {exc.strerror}", "pick another port with --web"
            ) from None
        self.sock.listen(128)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve in this thread until stopped (Ctrl-C in the main thread)."""
        self.server.run(sockets=[self.sock])

    def start(self) -> WebServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.run, name="crowdcount-web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout=3)
        self.sock.close()


def parse_limits(pairs: tuple[str, ...] | list[str], option: str = "--max-occupancy") -> dict[str, int]:
    """``ZONE=N`` pairs -> ``{zone: N}`` (:class:`ConfigError` for anything else)."""
    limits = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise ConfigError(f"{option} {pair!r} is not ZONE=N", f"e.g. {option} queue=5")
        limits[name.strip()] = int(value)
    return limits


def start_live_dashboard(
    watcher: Any,
    bind: str,
    token: str | None = None,
    registry: Any | None = None,
    max_occupancy: dict[str, int] | None = None,
    webhook: str | None = None,
    history_s: int = 3600,
    source_limits: dict[str, dict[str, int]] | None = None,
) -> tuple[LiveHub, WebServer]:
    """Attach a :class:`LiveHub` to ``watcher`` (before it starts) and serve its dashboard on ``bind``
    (``[HOST:]PORT``) in a background thread. ``max_occupancy`` (zone -> people) applies to every source with the
    zone, ``source_limits`` (source -> zone -> people: a cameras file's) to its source only. :class:`ConfigError`
    for a bad address, a port in use, a non-loopback bind without a token, a zone limit on no zone of any source,
    a webhook that is no http(s) URL."""
    from crowdcount.web.alerts import AlertMetrics, AlertMonitor, WebhookSender

    host, port = parse_bind(bind)
    check_token(host, token)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError("--webhook must be an http:// or https:// URL")
    zones = {zone for source in watcher.sources for zone in watcher.pipelines.totals(source.id).get("zones", {})}
    unknown = sorted(set(max_occupancy or {}) - zones)
    if unknown:
        raise ConfigError(
            f"--max-occupancy names no --zone: {', '.join(unknown)}",
            f"zones: {', '.join(sorted(zones)) or 'none (give --zone NAME=...)'}",
        )
    metrics = AlertMetrics(registry) if registry is not None else None
    sender = WebhookSender(webhook, metrics=metrics) if webhook else None
    hub = LiveHub(
        watcher, history_s=history_s, alerts=AlertMonitor(max_occupancy, metrics, sender, source_limits=source_limits)
    )
    try:
        server = WebServer(create_app(hub=hub, registry=registry, token=token, title="crowdcount watch"), host, port)
    except BaseException:  # a port in use: the webhook's thread goes too
        hub.stop()
        raise
    watcher.observers.append(hub)
    hub.start()
    server.start()
    return hub, server
