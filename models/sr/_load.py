"""Loading a network in the precision the operator asked for: detect the device, choose, build."""

from __future__ import annotations

import torch

from models.sr._int8 import int8_refusal, quantize_int8
from models.sr._network import SRModel, SRNetwork, load_sr_model, network_supports
from models.sr._precision import Capabilities, choose_precision, detect_capabilities


def load_sr_model_in(
    network: SRNetwork,
    state_dict: dict[str, torch.Tensor],
    device: torch.device,
    requested: str,
    capabilities: Capabilities | None = None,
) -> SRModel:
    """``network`` on ``device`` in the precision ``requested`` (``ENHANCE_PRECISION``) resolves to
    there (:func:`choose_precision`; capabilities detected unless given). Raises ``PrecisionError``
    for a precision the device or network cannot run, or int8 while its quality gate refuses it."""
    supports_half, supports_bfloat16 = network_supports(state_dict)
    choice = choose_precision(
        requested,
        device,
        capabilities or detect_capabilities(device),
        supports_half=supports_half,
        supports_bfloat16=supports_bfloat16,
        int8_refusal=int8_refusal(network.name),
    )
    if choice.name == "int8":
        return quantize_int8(load_sr_model(network, state_dict, device, precision=None, half=False), choice)
    return load_sr_model(network, state_dict, device, precision=choice)
