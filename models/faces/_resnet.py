"""dlib's 128-D face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network is dlib's ``anet_type`` (``dlib/examples/dnn_face_recognition_ex.cpp``): a 7×7/2
convolution and a 3×3/2 max pool, then residual levels of 32, 64, 128 and 256 filters (each block
two 3×3 convolutions with affine layers, down-sampling blocks adding a 2×2 average pool of their
input), a global average pool and a 128-output linear layer without bias. Its weights come from the
``.dat`` file itself (:mod:`models.faces._dlib_format`); the type below only says how the file's
layers nest, which the file does not record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.faces._dlib_format import DlibFormatError, Node, read_network
from models.faces._dlib_net import DlibNet

CHIP_SIZE = 150
EMBEDDING_SIZE = 128

_LAYER = Node("layer")


def _block() -> list[Node]:
    """``affine<con<N,3,3,1,1,relu<affine<con<N,3,3,s,s,SUBNET>>>>>``, top-down."""
    return [_LAYER] * 5


def _residual() -> list[Node]:
    """``relu<add_prev1<block<tag1<SUBNET>>>>``."""
    return [_LAYER, Node("layer", 1), *_block(), Node("tag", 1)]


def _residual_down() -> list[Node]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<SUBNET>>>>>>>``."""
    return [_LAYER, Node("layer", 2), _LAYER, Node("skip", 1), Node("tag", 2), *_block(), Node("tag", 1)]


def network_nodes() -> list[Node]:
    """The nodes of ``anet_type`` from the loss down (``loss_metric`` excluded)."""
    levels = [
        _residual_down(),  # level 0: 256
        _residual() * 2 + _residual_down(),  # level 1: 256
        _residual() * 2 + _residual_down(),  # level 2: 128
        _residual() * 3 + _residual_down(),  # level 3: 64
        _residual() * 3,  # level 4: 32
    ]
    nodes = [_LAYER, _LAYER]  # fc_no_bias<128>, avg_pool_everything
    for level in levels:
        nodes += level
    return nodes + [_LAYER] * 4  # max_pool, relu, affine, con 7×7/2 on the input


class FaceEmbedder(nn.Module):
    """150×150 aligned face chips → 128-D descriptors, as dlib's ``face_recognition_model_v1``."""

    mean: torch.Tensor

    def __init__(self, net: DlibNet, mean: tuple[float, float, float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1))

    @classmethod
    def from_file(cls, path: Path) -> FaceEmbedder:
        """The embedder with the weights of ``path`` (dlib's file, checked by the caller).

        Raises:
            DlibFormatError: the file is not dlib's face-recognition ResNet.
        """
        network = read_network(path.read_bytes(), network_nodes())
        if network.input.get("size") != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"expected a {CHIP_SIZE}² input layer, found {network.input}")
        embedder = cls(DlibNet(network.layers), network.input["mean"])
        embedder.eval()
        return embedder

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips``: uint8 (N, 150, 150, 3) RGB on the module's device, as extracted by
        :func:`models.faces._chips.extract_face_chips`. Returns float32 (N, 128) descriptors on that
        device (N may be 0).

        Raises:
            ValueError: ``chips`` is not uint8 N×150×150×3.
        """
        if chips.dtype != torch.uint8 or chips.ndim != 4 or tuple(chips.shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(
                f"expected uint8 N×{CHIP_SIZE}×{CHIP_SIZE}×3 chips, got {chips.dtype} {tuple(chips.shape)}"
            )
        if chips.shape[0] == 0:
            return torch.zeros((0, EMBEDDING_SIZE), dtype=torch.float32, device=chips.device)
        x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0
        return self.net(x)


def embed_chips(embedder: FaceEmbedder, chips: np.ndarray, batch: int = 32) -> np.ndarray:
    """Descriptors of ``chips`` (uint8 N×150×150×3 RGB, numpy) in batches of ``batch`` on the
    embedder's device; float32 (N, 128) on the CPU."""
    device = next(embedder.buffers()).device
    out = np.zeros((len(chips), EMBEDDING_SIZE), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(chips), batch):
            part = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch])).to(device)
            out[start : start + len(part)] = embedder(part).float().cpu().numpy()
    return out
