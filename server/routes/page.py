"""The before/after page at ``/`` and its static files: plain HTML, JavaScript and CSS shipped inside
the package (``server/static``), no key needed to load them (the page asks for the key and keeps it in
the browser)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# The page's files and their media types: an explicit list, so nothing else under the package is served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

router = APIRouter(tags=["page"], include_in_schema=False)


def _static(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"No static file {name!r}.")
    # no-cache: the browser revalidates (ETag), so a new release's page is never mixed with old scripts.
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def page() -> FileResponse:
    """The before/after page."""
    return _static("index.html")


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    """One of the page's files (404 for anything not in ``STATIC_FILES``)."""
    return _static(name)
