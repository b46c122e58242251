"""The models on their device: loading them (weights pulled when allowed), probing the device, and
running one request's pipeline with device errors mapped to the service's errors.

The request itself is conducted by :func:`models.pipeline.enhance_request`; this module only provides
what it runs on (:attr:`ModelRuntime.pipeline`) and the out-of-memory mapping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

import weights
from models.pipeline import (
    BatchStats,
    CancelToken,
    EnhanceOptions,
    EnhancePipeline,
    FaceModels,
    IdentityPolicy,
    MemoryBudget,
    ModelOutOfMemoryError,
    NetworkWeights,
    PipelineOutcome,
    PipelineRequest,
    SRModel,
    SRNetwork,
    TileBatcher,
    choose_precision,
    choose_tile_size,
    compile_network,
    configure_threads,
    detect_capabilities,
    enhance_request,
    get_network,
    int8_refusal,
    load_pipeline,
    requested_precision,
)
from server.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_NETWORK = "x4plus"
# Tiles are padded to a multiple of this many pixels so that tiles of different requests share shapes.
TILE_QUANTUM = 32
# The share of the memory budget (after the weights) that network batches may use; requests' own
# buffers (canvases, render, outputs) share the rest.
NETWORK_SHARE = 0.5
# The budget on CPU when none is set: host memory is not managed like a GPU's, but the same bound on
# requests in flight keeps a small machine from swapping.
CPU_BUDGET_BYTES = 8 * 1024**3
# The network for each content type the analysis can infer (the policy picks one per request).
CONTENT_NETWORKS = {"photo": "x4plus", "illustration": "x4plus-anime"}
# dlib's face model files by role (names in the weights manifest).
FACE_FILES = {
    "embedder": "dlib-face-recognition-resnet-v1",
    "landmarks": "dlib-shape-predictor-5",
    "detector": "dlib-mmod-face-detector",
}


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def weights_dir_of(settings: Settings) -> Path:
    return settings.weights_dir or weights.default_weights_dir()


def available_networks(weights_dir: Path, auto_pull: bool) -> dict[str, SRNetwork]:
    """The network of each content type whose weights are here (pulled first when allowed). The photo
    network is required (its ``WeightsError`` propagates); another one whose weights cannot be had (an
    offline install made with ``--only realesrgan-x4plus``) is left out, and its content type falls
    back to the photo network."""
    networks: dict[str, SRNetwork] = {}
    for content, name in CONTENT_NETWORKS.items():
        network = get_network(name)
        try:
            try:
                weights.verify_weights(weights_dir, [network.weights_name])
            except weights.WeightsError:
                if not auto_pull:
                    raise
                logger.info("weights of %s missing or invalid in %s: pulling them now", name, weights_dir)
                weights.pull_weights(weights_dir, [network.weights_name])
        except weights.WeightsError as error:
            if content == "photo":
                raise
            logger.warning("network %s left out (%s): %s content uses the photo network", name, error, content)
            continue
        networks[content] = network
    return networks


def memory_budget_bytes(settings: Settings, device: torch.device) -> int:
    """The device memory the enhance work may use: the setting, else 90 % of the GPU (CPU: 8 GiB)."""
    if settings.memory_budget_gb > 0:
        return int(settings.memory_budget_gb * 1024**3)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.9)
    return CPU_BUDGET_BYTES


def _module_bytes(models: dict[str, SRModel]) -> int:
    modules = {id(m): m for model in models.values() for m in (model.fast, model.exact)}.values()
    return sum(p.numel() * p.element_size() for module in modules for p in module.parameters())


@dataclass(frozen=True)
class DeviceBudget:
    """How the memory budget is split: the weights, the network batches' workspace, the requests."""

    total: int
    weights: int
    workspace: int
    requests: int


def split_budget(total: int, weights_bytes: int) -> DeviceBudget:
    """Split ``total`` after ``weights_bytes``: ``NETWORK_SHARE`` to network batches, the rest to
    requests. Raises ``ValueError`` when the weights alone exceed it."""
    free = total - weights_bytes
    if free <= 0:
        raise ValueError(f"memory budget of {total / 1024**3:.1f} GiB does not even hold the weights")
    workspace = int(free * NETWORK_SHARE)
    return DeviceBudget(total=total, weights=weights_bytes, workspace=workspace, requests=free - workspace)


def load_networks(settings: Settings, device: torch.device) -> dict[str, SRModel]:
    """The network for each content type on ``device``. Real mode loads the weights (pulling them first
    when allowed and missing); test mode loads none and gives every content type the weightless
    stand-in (``TEST_NETWORK``), with a warning in the log."""
    if settings.mode == "test":
        # The stand-in runs in float32, but what real mode would refuse is refused here too, with the same
        # message: a precision this device cannot run, and int8 while its quality gate refuses a network.
        requested, capabilities = precision_request(settings), detect_capabilities(device)
        for name in CONTENT_NETWORKS.values():
            choose_precision(requested, device, capabilities, int8_refusal=int8_refusal(name))
        logger.warning(
            "TEST MODE (ENHANCE_MODE=test): no network weights loaded; outputs come from a bicubic stand-in "
            "(network 'none'), every other stage runs for real. Not for real enhancement."
        )
        return load_pipeline(device, stand_in=list(CONTENT_NETWORKS)).networks
    requested = precision_request(settings)
    weights_dir = weights_dir_of(settings)
    networks = available_networks(weights_dir, settings.auto_pull_weights)
    models = {}
    for content, network in networks.items():
        state_dict = weights.load_state_dict(network.weights_name, weights_dir)
        weights_of = {content: NetworkWeights(network.name, state_dict)}
        models[content] = load_pipeline(device, networks=weights_of, precision=requested).networks[content]
        logger.info(
            "loaded %s on %s in %s: %s",
            network.name,
            device,
            models[content].dtype_name,
            models[content].precision_reason,
        )
    return models


def precision_request(settings: Settings) -> str:
    """``ENHANCE_PRECISION`` with the deprecated ``ENHANCE_HALF_PRECISION`` folded in (warned about
    when set); raises ``PrecisionError`` when the two contradict each other."""
    half = settings.half_precision if "half_precision" in settings.model_fields_set else None
    requested, warning = requested_precision(settings.precision, half)
    if warning is not None:
        logger.warning(warning)
    return requested


def load_face_models(settings: Settings, device: torch.device | None = None) -> FaceModels:
    """dlib's face models (ported to PyTorch) from the weights folder (pulled first when missing and
    allowed), on ``device``: by default the device the settings give the network
    (:func:`resolve_device`), so detection and embeddings run beside it."""
    directory = weights_dir_of(settings)
    names = list(FACE_FILES.values())
    if settings.auto_pull_weights:
        try:
            weights.verify_model_files(directory, names)
        except weights.WeightsError:
            logger.info("face model files missing or invalid in %s: pulling them now", directory)
            weights.pull_model_files(directory, names)
    paths: dict[str, Path] = {role: weights.model_file_path(name, directory) for role, name in FACE_FILES.items()}
    faces = load_pipeline(device or resolve_device(settings.device), face_files=paths).faces
    assert faces is not None  # face files were given
    return faces


def identity_policy_of(settings: Settings) -> IdentityPolicy:
    return IdentityPolicy(
        match_threshold=settings.face_match_threshold,
        guard=settings.identity_guard,
        max_drift=settings.identity_max_drift,
        min_face=settings.face_min_size,
    )


def out_of_memory(error: torch.OutOfMemoryError) -> ModelOutOfMemoryError:
    """The one place where running out of device memory becomes an answer: the CUDA cache is freed for
    the requests that follow, and the error is the service's ``ModelOutOfMemoryError`` (503 with
    ``Retry-After`` from the API, a failed job, a failed file in the command line). Used by
    :meth:`ModelRuntime.run` and by the API's handler for an out-of-memory raised anywhere else."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return ModelOutOfMemoryError("out of device memory while rendering; try again later")


@dataclass
class ModelRuntime:
    """The networks on their device (``model`` is the photo network; ``models`` maps each content type
    to its network), the face models (``None``: no identity stage), the tile batcher that owns the
    network, the memory budget requests reserve from, and the options every request starts from."""

    model: SRModel
    settings: Settings
    models: dict[str, SRModel] | None = None
    faces: FaceModels | None = None
    batcher: TileBatcher | None = None
    memory: MemoryBudget | None = None
    budget: DeviceBudget | None = None
    tile: int = field(default=0)

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        on_batch: Callable[[BatchStats], None] | None = None,
        faces: FaceModels | None = None,
    ) -> ModelRuntime:
        """Load (pulling first when allowed and missing) the weights, build the networks, split the
        memory budget, start the tile batcher and, when ``compile_mode`` is set, compile and warm up
        the networks for their tile shapes (minutes on a cold cache; before the service is ready).
        ``faces``: the face models the identity stage uses (loaded with :func:`load_face_models`)."""
        device = resolve_device(settings.device)
        threads, source = configure_threads()
        logger.info("%d intra-op threads (%s)", threads, source)
        models = load_networks(settings, device)
        total = memory_budget_bytes(settings, device)
        if device.type == "cuda":
            # A hard cap: allocations beyond the budget raise out-of-memory (handled) instead of growing.
            capacity = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, total / capacity), device)
        budget = split_budget(total, _module_bytes(models))
        batcher = TileBatcher(
            max_batch=settings.tile_batch_size,
            max_wait_s=settings.batch_wait_ms / 1000.0,
            workspace_bytes=budget.workspace,
            on_batch=on_batch,
        )
        photo = models["photo"]
        tile = settings.tile_size or choose_tile_size(
            photo, max_tile=settings.max_tile_size, cpu_tile=settings.cpu_tile_size, workspace_bytes=budget.workspace
        )
        if settings.compile_mode != "off" and settings.mode != "test":
            sides = [side for side in settings.compile_tile_side_list if side <= tile]
            cache_dir = settings.compile_cache_dir or settings.data_dir / "compile-cache"
            for content, model in list(models.items()):
                models[content] = compile_network(
                    model,
                    mode=settings.compile_mode,
                    tile_sides=sides,
                    batch_limit=partial(batcher.batch_limit, model),
                    cache_dir=cache_dir,
                )
        logger.info(
            "memory budget %.1f GiB: weights %.2f, network batches %.1f, requests %.1f; tiles up to %d px",
            *(v / 1024**3 for v in (budget.total, budget.weights, budget.workspace, budget.requests)),
            tile,
        )
        return cls(
            model=models["photo"],
            settings=settings,
            models=models,
            faces=faces,
            batcher=batcher,
            memory=MemoryBudget(budget.requests),
            budget=budget,
            tile=tile,
        )

    def close(self) -> None:
        """Stop the tile batcher (queued tiles finish first)."""
        if self.batcher is not None:
            self.batcher.close()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def options(self, num_outputs: int = 1) -> EnhanceOptions:
        s = self.settings
        on_cuda = self.device.type == "cuda"
        tile = self.tile or s.tile_size
        if not tile:
            tile = choose_tile_size(self.model, max_tile=s.max_tile_size, cpu_tile=s.cpu_tile_size)
        return EnhanceOptions(
            num_outputs=num_outputs,
            target_long_side=s.target_long_side,
            network_max_side=s.network_max_side or (1024 if on_cuda else 512),
            tile=tile,
            overlap=s.tile_overlap,
            batch_size=s.tile_batch_size,
            tile_quantum=TILE_QUANTUM,
            max_input_pixels=s.max_pixels,
            jpeg_quality=s.jpeg_quality,
            png_compress_level=s.png_compress_level,
        )

    @property
    def pipeline(self) -> EnhancePipeline:
        """What a request runs through: the networks, the face models, the batcher and the budget."""
        return EnhancePipeline(
            networks=self.models or {"photo": self.model},
            options=self.options(),
            faces=self.faces,
            identity=identity_policy_of(self.settings),
            runner=self.batcher,
            memory=self.memory,
        )

    def run(self, request: PipelineRequest, cancel: CancelToken | None = None) -> PipelineOutcome:
        """Run one request through the pipeline (blocking; in a worker slot). The network's tiles go
        through the batcher (shared with every other request); ``cancel`` stops it early. Running out
        of device memory outside the network (which retries with smaller tiles itself) raises
        ``ModelOutOfMemoryError`` (503 with ``Retry-After``)."""
        try:
            return enhance_request(request, self.pipeline, cancel)
        except torch.OutOfMemoryError as exc:
            raise out_of_memory(exc) from exc

    def probe(self) -> None:
        """A tiny operation on the device, and the network thread alive; raises when either fails."""
        x = torch.ones(8, device=self.device)
        if float((x * 2).sum().item()) != 16.0:
            raise RuntimeError("device arithmetic check failed")
        if self.batcher is not None and not self.batcher.alive:
            raise RuntimeError("the network thread has stopped")
