"""The viewer's web application (Starlette): pages, the JSON API and Deep Zoom tiles.

Routes::

    GET /                                   index page: every slide with a thumbnail
    GET /slides/{id}                        viewer page of one slide (OpenSeadragon)
    GET /static/...                         the page scripts, styles and OpenSeadragon
    GET /api/slides                         [{"id", "name", "dzi", "viewer", "thumbnail", "format", ...}]
    GET /api/slides/{id}                    metadata, channels, optical paths, focal planes
    GET /api/slides/{id}/thumbnail.jpg      ?size=N (1..1024, default 256)
    GET /api/slides/{id}/associated/{name}.jpg
    GET /api/slides/{id}/tissue.png         the tissue mask, green, over the whole slide
    GET /api/slides/{id}/plan               ?shape=&stride=&pad=&level=|mpp=|magnification=&min_tissue=
    GET /api/slides/{id}/results            the written tiles of the --results folder
    GET /api/slides/{id}/results/{k}        the image written for row k of its tiles.csv
    GET /api/slides/{id}/channels/auto      contrast ranges from the slide's percentiles
    GET /dzi/{id}.dzi                       DZI descriptor (?format=jpeg|png)
    GET /dzi/{id}_files/{level}/{column}_{row}.{jpeg|png}

Tile and descriptor URLs take ``channels=``, ``optical_path=`` and ``focal_plane=`` (see
:mod:`wsikit.viewer.channels`, :class:`wsikit.DICOMBackend`); OpenSeadragon carries the
descriptor's query string over to its tiles.

Answers: unknown slides, names and tiles out of range 404; malformed parameters 400 with
a one-line reason; a slide that fails to open or a tile that fails to read 500 with a
one-line reason (logged), and the server keeps serving. No answer carries a traceback.
Blocking work (reading, encoding) runs on a thread pool, never on the event loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .catalog import SlideEntry, SlideUnavailable
from .deepzoom import TileOutOfRange
from .encoding import MEDIA_TYPES
from .overlays import OverlayError
from .results import ResultsError
from .service import BadRequest, ViewerService

log = logging.getLogger("wsikit.viewer")
T = TypeVar("T")
_TILE = re.compile(r"^(\d{1,7})_(\d{1,7})\.(jpeg|jpg|png)$")
_LEVEL = re.compile(r"^\d{1,3}$")
_FORMAT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}
_STATIC = resources.files("wsikit.viewer") / "static"
_TEMPLATES = resources.files("wsikit.viewer") / "templates"
# Tiles are immutable for a running server; the browser may keep them while the page is open.
_TILE_HEADERS = {"Cache-Control": "private, max-age=3600"}


#: the names a browser uses for a server on the loopback address
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def create_app(service: ViewerService, workers: int | None = None,
               allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The Starlette application serving ``service``'s slides; reads run on ``workers``
    threads (default: twice the cores, at least 4). Requests whose Host header names none
    of ``allowed_hosts`` are refused (400): a web page elsewhere cannot reach a viewer on
    127.0.0.1 through a name it controls (DNS rebinding). None allows any host, for a
    server bound to another address."""
    pool = ThreadPoolExecutor(max_workers=workers or max(4, 2 * (os.cpu_count() or 1)),
                              thread_name_prefix="wsikit-viewer")

    async def blocking(function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, partial(function, *args))

    def entry_of(request: Request) -> SlideEntry:
        entry = service.catalog.get(request.path_params["slide_id"])
        if entry is None:
            raise HTTPException(404, "no such slide")
        return entry

    async def guarded(request: Request, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Run a handler, mapping the viewer's errors to short plain-text answers."""
        try:
            return await handler()
        except HTTPException:
            raise
        except (BadRequest, OverlayError) as exc:
            return PlainTextResponse(str(exc), status_code=400)
        except TileOutOfRange as exc:
            return PlainTextResponse(str(exc), status_code=404)
        except ResultsError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        except SlideUnavailable as exc:
            return PlainTextResponse(str(exc), status_code=500)
        except Exception as exc:  # a slide that fails to read: this answer fails, the server goes on
            log.warning("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return PlainTextResponse(f"cannot read: {type(exc).__name__}: {exc}", status_code=500)

    # -- pages -----------------------------------------------------------------------------
    async def index_page(request: Request) -> Response:
        return HTMLResponse(_page("index.html", title="wsikit view", root=html.escape(service.catalog.root)))

    async def slide_page(request: Request) -> Response:
        entry = entry_of(request)
        return HTMLResponse(_page("slide.html", title=html.escape(entry.name), slide_id=html.escape(entry.id)))

    # -- API -------------------------------------------------------------------------------
    async def api_slides(request: Request) -> Response:
        async def handle() -> Response:
            entries = service.catalog.entries()
            summaries = await asyncio.gather(*(blocking(service.summary, e) for e in entries))
            return JSONResponse(list(summaries))
        return await guarded(request, handle)

    async def api_slide(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            return JSONResponse(await blocking(service.details, entry))
        return await guarded(request, handle)

    async def api_thumbnail(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            text = request.query_params.get("size", "256")
            if not text.isdigit() or not 1 <= int(text) <= 1024:
                raise BadRequest(f"size must be an integer in [1, 1024], got {text!r}")
            data = await blocking(service.thumbnail, entry, int(text))
            return Response(data, media_type="image/jpeg", headers=_TILE_HEADERS)
        return await guarded(request, handle)

    async def api_associated(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            data = await blocking(service.associated, entry, request.path_params["name"])
            if data is None:
                raise HTTPException(404, "no such associated image")
            return Response(data, media_type="image/jpeg", headers=_TILE_HEADERS)
        return await guarded(request, handle)

    async def api_tissue(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            return Response(await blocking(service.tissue_png, entry), media_type="image/png", headers=_TILE_HEADERS)
        return await guarded(request, handle)

    async def api_plan(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            return JSONResponse(await blocking(service.plan, entry, dict(request.query_params)))
        return await guarded(request, handle)

    async def api_results(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            return JSONResponse(await blocking(service.results, entry))
        return await guarded(request, handle)

    async def api_written_tile(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            text = request.path_params["index"]
            if not text.isdigit() or len(text) > 9:
                raise BadRequest(f"a tile index is a non-negative integer, got {text!r}")
            data, media_type = await blocking(service.written_tile, entry, int(text))
            return Response(data, media_type=media_type)
        return await guarded(request, handle)

    async def api_auto_channels(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            return JSONResponse(await blocking(service.auto_channels, entry))
        return await guarded(request, handle)

    # -- Deep Zoom ---------------------------------------------------------------------------
    async def dzi_descriptor(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            fmt = request.query_params.get("format")
            if fmt is not None and fmt not in _FORMAT_ALIASES:
                raise BadRequest(f"format must be jpeg or png, got {fmt!r}")
            await blocking(service.view, entry, dict(request.query_params))  # refuse bad options here already
            reader = await blocking(service.reader, entry)
            chosen = _FORMAT_ALIASES[fmt] if fmt else service.default_format(reader.slide)
            return Response(reader.dzi.descriptor(chosen), media_type="application/xml")
        return await guarded(request, handle)

    async def dzi_tile(request: Request) -> Response:
        entry = entry_of(request)

        async def handle() -> Response:
            level_text, name = request.path_params["level"], request.path_params["tile"]
            match = _TILE.match(name)
            if not _LEVEL.match(level_text) or match is None:
                raise BadRequest("a tile is <level>/<column>_<row>.<jpeg|png>")
            column, row, fmt = int(match.group(1)), int(match.group(2)), _FORMAT_ALIASES[match.group(3)]
            level, query = int(level_text), dict(request.query_params)
            data = None
            if entry.is_open:  # parsing the view and a cache hit cost no thread hop
                view = service.view(entry, query)
                data = service.cached_tile(entry, level, column, row, fmt, view)
                if data is None:
                    data = await blocking(service.tile, entry, level, column, row, fmt, view)
            else:
                data = await blocking(lambda: service.tile(entry, level, column, row, fmt, service.view(entry, query)))
            return Response(data, media_type=MEDIA_TYPES[fmt], headers=_TILE_HEADERS)
        return await guarded(request, handle)

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        return PlainTextResponse(str(detail), status_code=404)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return PlainTextResponse("internal error", status_code=500)

    routes = [
        Route("/", index_page),
        Route("/slides/{slide_id}", slide_page),
        Route("/api/slides", api_slides),
        Route("/api/slides/{slide_id}", api_slide),
        Route("/api/slides/{slide_id}/thumbnail.jpg", api_thumbnail),
        Route("/api/slides/{slide_id}/associated/{name}.jpg", api_associated),
        Route("/api/slides/{slide_id}/tissue.png", api_tissue),
        Route("/api/slides/{slide_id}/plan", api_plan),
        Route("/api/slides/{slide_id}/results", api_results),
        Route("/api/slides/{slide_id}/results/{index}", api_written_tile),
        Route("/api/slides/{slide_id}/channels/auto", api_auto_channels),
        Route("/dzi/{slide_id}.dzi", dzi_descriptor),
        Route("/dzi/{slide_id}_files/{level}/{tile}", dzi_tile),
        Mount("/static", StaticFiles(directory=str(_STATIC), follow_symlink=False), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.submit(service.warm_up)
        try:
            yield
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    middleware = [] if allowed_hosts is None else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 500: server_error}, lifespan=lifespan,
                    middleware=middleware)
    app.state.service = service
    return app


def _page(name: str, **values: str) -> str:
    """A page from the templates folder with ``$name`` placeholders filled (values already escaped)."""
    return string.Template((_TEMPLATES / name).read_text(encoding="utf-8")).substitute(values)
