"""GET /v1/phota/files/{name}: signed, expiring downloads; no API key."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from server.deps import FilesDep
from server.errors import ForbiddenError
from server.storage.files import MEDIA_TYPES

router = APIRouter(tags=["files"])


@router.get("/files/{name}", response_class=FileResponse, responses={403: {"description": "Expired or tampered"}})
async def download_file(
    name: str, files: FilesDep, expires: int = Query(...), signature: str = Query(...)
) -> FileResponse:
    """Download an output file through its signed URL."""
    path = files.verify(name, expires, signature)
    if path is None or not path.is_file():
        raise ForbiddenError("This download link is invalid or has expired.")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lstrip(".")])
