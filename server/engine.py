"""The loaded models and how one enhance request runs through them (blocking; called off the loop)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

import weights
from models.pipeline import EnhanceOptions, EnhanceResult, enhance_image
from models.sr import SRModel, choose_tile_size, get_network, load_sr_model
from server.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_NETWORK = "x4plus"


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def weights_dir_of(settings: Settings) -> Path:
    return settings.weights_dir or weights.default_weights_dir()


@dataclass
class Engine:
    """The photo network on its device, and the options every request starts from."""

    model: SRModel
    settings: Settings

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load (pulling first when allowed and missing) the weights and build the network."""
        network = get_network(DEFAULT_NETWORK)
        weights_dir = weights_dir_of(settings)
        if settings.auto_pull_weights:
            try:
                weights.verify_weights(weights_dir, [network.weights_name])
            except weights.WeightsError:
                logger.info("weights missing or invalid in %s: pulling them now", weights_dir)
                weights.pull_weights(weights_dir, [network.weights_name])
        state_dict = weights.load_state_dict(network.weights_name, weights_dir)
        device = resolve_device(settings.device)
        model = load_sr_model(network, state_dict, device, half=settings.half_precision)
        logger.info("loaded %s on %s (%s)", network.name, device, model.fast_dtype)
        return cls(model=model, settings=settings)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def options(self, num_outputs: int) -> EnhanceOptions:
        s = self.settings
        on_cuda = self.device.type == "cuda"
        tile = s.tile_size or choose_tile_size(self.model, max_tile=s.max_tile_size, cpu_tile=s.cpu_tile_size)
        return EnhanceOptions(
            num_outputs=num_outputs,
            target_long_side=s.target_long_side,
            network_max_side=s.network_max_side or (1024 if on_cuda else 512),
            tile=tile,
            overlap=s.tile_overlap,
            batch_size=s.tile_batch_size,
        )

    def enhance(self, rgb, alpha, num_outputs: int) -> EnhanceResult:  # type: ignore[no-untyped-def]
        return enhance_image(rgb, alpha, self.model, self.options(num_outputs))

    def probe(self) -> None:
        """A tiny operation on the device; raises when the device is unusable."""
        x = torch.ones(8, device=self.device)
        if float((x * 2).sum().item()) != 16.0:
            raise RuntimeError("device arithmetic check failed")
