"""Request and response bodies of the profiles endpoints (API.md, "Profiles")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.storage.profiles import ProfileStatus
from server.stored_text import Label

TrainingTier = Literal["standard", "fast"]
# References each tier takes (API.md): the whole range is 5..50.
TIER_RANGES: dict[str, tuple[int, int]] = {"standard": (10, 50), "fast": (5, 10)}


class AddProfileRequest(BaseModel):
    """Body of ``POST /v1/phota/profiles/add``. Unknown fields are ignored. A count outside 5..50, or
    outside the tier's range (standard 10..50, fast 5..10), is a 422 like any other body error."""

    model_config = ConfigDict(extra="ignore")

    image_urls: list[str] = Field(
        min_length=5,
        max_length=50,
        description="5 to 50 reference photos of one person: http(s) URLs, raw base64 or data URLs.",
    )
    training_tier: TrainingTier = Field(default="standard", description="standard: 10..50 images; fast: 5..10.")
    tag: Label | None = Field(
        default=None, min_length=1, max_length=128, description="Free label for ids?tag= (no control characters)."
    )

    @model_validator(mode="after")
    def _tier_range(self) -> AddProfileRequest:
        low, high = TIER_RANGES[self.training_tier]
        if not low <= len(self.image_urls) <= high:
            raise ValueError(
                f"training_tier '{self.training_tier}' takes {low} to {high} image_urls, got {len(self.image_urls)}"
            )
        return self


class AddProfileResponse(BaseModel):
    profile_id: str


class ProfileIdsResponse(BaseModel):
    profiles: list[str]


class ProfileStatusResponse(BaseModel):
    profile_id: str
    status: ProfileStatus
    message: str | None = None


class DeleteProfileResponse(BaseModel):
    profile_id: str
    status: Literal["ok"] = "ok"
