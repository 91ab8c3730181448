"""``wsikit view``: a browser viewer for slides, with the overlays that matter for tiling.

    wsikit view PATH [--port N] [--host 127.0.0.1] [--no-browser] [--results OUT]

PATH is a slide or a folder searched for slides (:func:`wsikit.inventory.find_slides`).
A local web server (Starlette on uvicorn) serves an index page, a viewer page per slide
(OpenSeadragon, vendored under ``static/openseadragon`` with its BSD licence), Deep Zoom
tiles read by wsikit's reader, and a JSON API (:mod:`wsikit.viewer.app` lists the routes).
Overlays, all off when a page opens: the tissue mask, the tile plan ``wsikit tile`` would
cut for chosen options, and the tiles a finished ``wsikit tile`` run wrote (``--results``).
Multiplex slides get a channel picker (colour and contrast per channel, composited on the
server), DICOM slides optical path and focal plane selectors.

Modules: :mod:`.catalog` (which slides, by id), :mod:`.deepzoom` (DZI geometry and tile
reads), :mod:`.channels` (compositing), :mod:`.encoding` (JPEG / PNG, the byte-bounded
cache), :mod:`.overlays` (tissue, plan), :mod:`.results` (``--results``), :mod:`.service`
(the work behind each route), :mod:`.app` (routes), :mod:`.server` (running it).

From Python::

    from wsikit.viewer import ViewerServer, ViewerService, create_app
    with ViewerServer(create_app(ViewerService("slides/")), port=0) as server:
        print(server.url)
"""
from __future__ import annotations

from .app import create_app
from .server import ViewerServer, serve
from .service import ViewerService

__all__ = ["ViewerServer", "ViewerService", "create_app", "serve"]
