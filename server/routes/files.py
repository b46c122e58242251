"""GET /v1/phota/files/{name}: signed, expiring downloads; no API key."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from server.deps import ServicesDep
from server.errors import ForbiddenError
from server.storage.files import MEDIA_TYPES

router = APIRouter(tags=["files"])


@router.get("/files/{name}", response_class=FileResponse, responses={403: {"description": "Expired or tampered"}})
async def download_file(
    name: str, services: ServicesDep, expires: int = Query(...), signature: str = Query(...)
) -> Response:
    """Download an output file through its signed URL."""
    files = services.started_files()
    verified = files.verify(name, expires, signature)
    if verified is None:
        raise ForbiddenError("This download link is invalid or has expired.")
    media_type = MEDIA_TYPES[verified.rsplit(".", 1)[-1]]
    path = files.local_path(verified)
    if path is not None:
        return FileResponse(path, media_type=media_type)
    # A link signed by the service for a file in a remote store (e.g. issued before the store moved).
    data = await anyio.to_thread.run_sync(files.read, verified)
    if data is None:
        raise ForbiddenError("This download link is invalid or has expired.")
    return Response(data, media_type=media_type)
