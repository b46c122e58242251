"""Shared fixtures: real photos from scikit-image, the converted weights, the app on CPU."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import weights
from models.sr import SRModel, get_network, load_sr_model

if TYPE_CHECKING:  # the servers' modules are imported where their fixtures run (the offline bundle carries neither)
    from tests.postgres_server import PostgresServer
    from tests.s3_server import S3Server

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(requires_cuda)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512×512 RGB uint8 photo (NASA, public domain) bundled with scikit-image."""
    return skdata.astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """400×600 RGB uint8 photo bundled with scikit-image."""
    return skdata.coffee()


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """300×451 RGB uint8 photo of a cat bundled with scikit-image."""
    return skdata.chelsea()


def to_float(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) / 255.0).copy()


def encode_b64(image: np.ndarray | Image.Image, fmt: str = "JPEG", **save: object) -> str:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **save)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_b64(payload: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """The converted weights (pulled once if missing; ``python -m weights pull`` does the same), in
    ``$ENHANCE_WEIGHTS_DIR`` when set (an offline install may convert them there)."""
    directory = Path(os.environ.get("ENHANCE_WEIGHTS_DIR") or weights.default_weights_dir())
    try:
        weights.verify_weights(directory, ["realesrgan-x4plus"])
    except weights.WeightsError:
        weights.pull_weights(directory, ["realesrgan-x4plus"])
    return directory


@pytest.fixture(scope="session")
def x4plus_cpu(weights_dir: Path) -> SRModel:
    network = get_network("x4plus")
    return load_sr_model(network, weights.load_state_dict(network.weights_name, weights_dir), torch.device("cpu"))


@pytest.fixture(scope="session")
def x4plus_cuda(weights_dir: Path) -> Iterator[SRModel]:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    network = get_network("x4plus")
    yield load_sr_model(network, weights.load_state_dict(network.weights_name, weights_dir), torch.device("cuda"))


def stand_in_model(fast: torch.nn.Module, exact: torch.nn.Module | None = None) -> SRModel:
    """An ``SRModel`` on CPU around a stand-in network (tests of tiling and batching)."""
    return SRModel(
        network=get_network("x4plus"),
        device=torch.device("cpu"),
        fast_dtype=torch.float32,
        fast=fast,
        exact=exact or fast,
        channels_last=False,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test session (tests/postgres_server.py)."""
    from tests.postgres_server import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The storage tests run twice: on SQLite in ``tmp_path`` and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'enhance.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture(scope="session")
def scene_photo() -> Callable[..., np.ndarray]:
    """``scene_photo(name, long_side=512)``: a real photo of ``tests/scene_photos.py`` (night, low-key,
    high-key, coloured, ...) as uint8 RGB; its Debian packages are installed on first use when root."""
    from tests.scene_photos import ensure_installed, load_original

    ensure_installed()
    return load_original


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on loopback for the whole session, its credentials in the environment
    the way an operator sets them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    from tests.s3_server import running_s3_server

    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        saved = {name: os.environ.get(name) for name in server.environment()}
        os.environ.update(server.environment())
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
