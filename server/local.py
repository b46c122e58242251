"""The enhance pipeline in this process, one file at a time (the command-line tool's default): the
same models, conductor (:func:`models.pipeline.enhance_request`: decode, analyse, steer,
super-resolve, identity guard, encode) and settings as the service, without HTTP."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from models.pipeline import PipelineRequest
from server.runtime import ModelRuntime, load_face_models
from server.settings import Settings


@dataclass
class LocalPipeline:
    """The loaded models (networks, none in test mode; face models) and the settings every file is
    enhanced with."""

    runtime: ModelRuntime
    settings: Settings

    @classmethod
    def load(cls, settings: Settings) -> LocalPipeline:
        """Load the networks and the face models, pulling missing files when allowed."""
        return cls(runtime=ModelRuntime.load(settings, faces=load_face_models(settings)), settings=settings)

    def enhance_file(
        self,
        data: bytes,
        num_outputs: int,
        *,
        prompt: str | None = None,
        fmt: Literal["png", "jpg"] | None = None,
        today: dt.date | None = None,
    ) -> list[bytes]:
        """Enhance one image file's bytes into ``num_outputs`` encoded variations, as the service would
        (``fmt`` None: png for an image with alpha, else the service's dated default; the identity guard
        on, no candidates to count). Raises the decoder's ``InvalidImageError`` /
        ``UnsupportedFormatError`` and ``ModelOutOfMemoryError``."""
        request = PipelineRequest(
            source=data,
            num_outputs=num_outputs,
            prompt=prompt,
            output_format=fmt,
            default_format=self.settings.default_format_on(today or dt.date.today()),
            mode=self.settings.mode,
        )
        return self.runtime.run(request).outputs

    def close(self) -> None:
        self.runtime.close()
