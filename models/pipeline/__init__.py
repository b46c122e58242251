"""The enhance pipeline: from a decoded image to enhanced outputs and a report of what was done."""

from models.pipeline._enhance import (
    VARIATIONS,
    EnhancedImage,
    EnhanceOptions,
    EnhanceResult,
    Variation,
    enhance_image,
    plan_output_size,
)

__all__ = [
    "VARIATIONS",
    "EnhanceOptions",
    "EnhanceResult",
    "EnhancedImage",
    "Variation",
    "enhance_image",
    "plan_output_size",
]
