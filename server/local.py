"""The enhance pipeline in this process, for one file at a time (the command-line tool's default):
the same model loading, enhancement, identity guard and encoding as the service, without HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from models.faces import FaceModels, identify_outputs
from models.imageio import decode_image, encode_image, flatten_alpha
from server.engine import Engine
from server.profiles import load_face_models
from server.profiles._identity import identity_policy_of
from server.settings import Settings


@dataclass
class LocalPipeline:
    """The loaded networks and face models, and the settings every file is enhanced with."""

    engine: Engine
    faces: FaceModels
    settings: Settings

    @classmethod
    def load(cls, settings: Settings) -> LocalPipeline:
        """Load the networks (none in test mode) and the face models, pulling missing files when allowed."""
        return cls(engine=Engine.load(settings), faces=load_face_models(settings), settings=settings)

    def enhance_file(
        self,
        data: bytes,
        num_outputs: int,
        *,
        prompt: str | None = None,
        fmt: Literal["png", "jpg"] | None = None,
        today: dt.date | None = None,
        stage: Callable[[str], None] = lambda name: None,
    ) -> list[bytes]:
        """Decode ``data``, enhance it into ``num_outputs`` variations, guard faces and encode them as the
        service would (``fmt`` None: png for an image with alpha, else the service's dated default).
        ``stage`` is told each stage's name as it starts. Raises the decoder's ``InvalidImageError`` /
        ``UnsupportedFormatError``."""
        stage("decode")
        decoded = decode_image(data, max_side=4096, max_pixels=self.settings.max_pixels)
        chosen: Literal["png", "jpg"] = fmt or (
            "png" if decoded.alpha is not None else self.settings.default_format_on(today or dt.date.today())
        )
        stage("enhance")
        result = self.engine.enhance(decoded.rgb, decoded.alpha, num_outputs, prompt=prompt, source=data)
        outcome = identify_outputs(
            decoded.rgb, [image.rgb for image in result.images], self.faces, [], identity_policy_of(self.settings)
        )
        images = [replace(image, rgb=rgb) for image, rgb in zip(result.images, outcome.images, strict=True)]
        stage("encode")
        encoded = []
        for image in images:
            rgb, alpha = image.rgb, image.alpha
            if chosen == "jpg" and alpha is not None:
                rgb, alpha = flatten_alpha(rgb, alpha), None
            encoded.append(
                encode_image(
                    rgb,
                    alpha,
                    chosen,
                    exif=decoded.exif,
                    jpeg_quality=self.settings.jpeg_quality,
                    png_compress_level=self.settings.png_compress_level,
                )
            )
        return encoded

    def close(self) -> None:
        self.engine.close()
