"""The loaded models and how one enhance request runs through them (blocking; called off the loop)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import weights
from models.pipeline import EnhanceOptions, EnhanceResult, enhance_image
from models.prompt import parse_prompt
from models.sr import SRModel, choose_tile_size, get_network, load_sr_model
from server.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_NETWORK = "x4plus"
# The network for each content type the analysis can infer (the policy picks one per request).
CONTENT_NETWORKS = {"photo": "x4plus", "illustration": "x4plus-anime"}


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def weights_dir_of(settings: Settings) -> Path:
    return settings.weights_dir or weights.default_weights_dir()


@dataclass
class Engine:
    """The networks on their device (``model`` is the photo network; ``models`` maps each content type
    to its network), and the options every request starts from."""

    model: SRModel
    settings: Settings
    models: dict[str, SRModel] | None = None

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load (pulling first when allowed and missing) the weights and build the networks."""
        networks = {content: get_network(name) for content, name in CONTENT_NETWORKS.items()}
        names = sorted({n.weights_name for n in networks.values()})
        weights_dir = weights_dir_of(settings)
        if settings.auto_pull_weights:
            try:
                weights.verify_weights(weights_dir, names)
            except weights.WeightsError:
                logger.info("weights missing or invalid in %s: pulling them now", weights_dir)
                weights.pull_weights(weights_dir, names)
        device = resolve_device(settings.device)
        models = {}
        for content, network in networks.items():
            state_dict = weights.load_state_dict(network.weights_name, weights_dir)
            models[content] = load_sr_model(network, state_dict, device, half=settings.half_precision)
            logger.info("loaded %s on %s (%s)", network.name, device, models[content].fast_dtype)
        return cls(model=models["photo"], settings=settings, models=models)

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

    def enhance(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray | None,
        num_outputs: int,
        *,
        prompt: str | None = None,
        source: bytes | None = None,
    ) -> EnhanceResult:
        """Analyse, steer by ``prompt`` and enhance one decoded image; ``source`` is its file bytes
        (a JPEG's quantisation tables give its quality exactly)."""
        return enhance_image(
            rgb,
            alpha,
            self.models or {"photo": self.model},
            self.options(num_outputs),
            steering=parse_prompt(prompt),
            source=source,
        )

    def probe(self) -> None:
        """A tiny operation on the device; raises when the device is unusable."""
        x = torch.ones(8, device=self.device)
        if float((x * 2).sum().item()) != 16.0:
            raise RuntimeError("device arithmetic check failed")
