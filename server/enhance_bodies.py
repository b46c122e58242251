"""The bodies of an enhance request and its answer (API.md, named as in the hosted API's OpenAPI
document), shared by the route, the enhance flow (``server.enhancing``) and the jobs, which store the
request and answer with the result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.stored_text import StoredText


class EnhanceRequest(BaseModel):
    """Body of ``POST /v1/phota/enhance``. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    image: str = Field(description="Raw base64, a data URL, or an http(s) URL of the image.")
    profile_ids: list[str] | None = Field(default=None, description="Candidate identities.")
    num_output_images: int = Field(default=1, ge=1, le=4)
    output_format: Literal["png", "jpg"] | None = Field(
        default=None, description="png or jpg; default png before 2026-05-08, jpg from then."
    )
    response_mode: Literal["bytes", "urls"] = "bytes"
    prompt: StoredText | None = None
    async_: bool = Field(default=False, alias="async")
    callback_url: StoredText | None = None
    client_request_id: StoredText | None = None


class KnownSubjects(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)


class EditResponse(BaseModel):
    """Response of enhance (shared with the hosted edit/generate endpoints)."""

    known_subjects: KnownSubjects = Field(default_factory=KnownSubjects)
    images: list[str] = Field(default_factory=list)
    download_urls: list[str] = Field(default_factory=list)
