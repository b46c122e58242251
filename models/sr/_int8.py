"""int8 (PT2E static quantization, X86InductorQuantizer): offered only when it passes its quality gate.

The gate (issue 19): on the held-out half of the scene set, at every degradation level, int8 may
lose at most :data:`MAX_PSNR_LOSS_DB` of PSNR and raise NIQE by at most :data:`MAX_NIQE_RISE`
against float32. ``tests/benchmarks/int8_gate.py`` measures it (calibrating on the tuning half);
its figures are recorded in :data:`INT8_GATE` and :func:`int8_refusal` reads them, so a network
that failed, or was never measured, makes ``ENHANCE_PRECISION=int8`` an error at start that cites
the measured loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from models.sr._network import SRModel
from models.sr._precision import PrecisionChoice, PrecisionError

MAX_PSNR_LOSS_DB = 0.1
MAX_NIQE_RISE = 0.2


@dataclass(frozen=True)
class GateLevel:
    """Held-out means at one degradation level: PSNR (dB, against the original) and NIQE, float32
    and int8."""

    level: str
    psnr_fp32: float
    psnr_int8: float
    niqe_fp32: float
    niqe_int8: float

    @property
    def psnr_loss(self) -> float:
        return self.psnr_fp32 - self.psnr_int8

    @property
    def niqe_rise(self) -> float:
        return self.niqe_int8 - self.niqe_fp32


def gate_refusal(levels: Sequence[GateLevel]) -> str | None:
    """Why int8 fails the gate on these figures (every failing level, with its loss), or None when
    every level is within both bounds. No figures at all is a refusal."""
    if not levels:
        return "its quality gate was never measured (tests/benchmarks/int8_gate.py)"
    failures = [
        f"{g.level}: {g.psnr_loss:+.2f} dB PSNR loss, {g.niqe_rise:+.2f} NIQE"
        for g in levels
        if g.psnr_loss > MAX_PSNR_LOSS_DB or g.niqe_rise > MAX_NIQE_RISE
    ]
    if not failures:
        return None
    return (
        f"it fails the quality gate (at most {MAX_PSNR_LOSS_DB} dB PSNR loss and {MAX_NIQE_RISE} NIQE rise against "
        f"float32 at every degradation level, held-out scene photos): {'; '.join(failures)}"
    )


# Measured by tests/benchmarks/int8_gate.py (torchao 0.18.0, PyTorch 2.14.1, CPU, 2026-12-06): calibrated on
# 60 inputs of the tuning half, scored on the 17 held-out photos at each level; see docs/cpu.md.
INT8_GATE: dict[str, tuple[GateLevel, ...]] = {
    "x4plus": (
        GateLevel("clean", psnr_fp32=25.062, psnr_int8=24.952, niqe_fp32=12.049, niqe_int8=11.235),
        GateLevel("mild", psnr_fp32=24.149, psnr_int8=24.056, niqe_fp32=11.035, niqe_int8=10.930),
        GateLevel("heavy", psnr_fp32=22.646, psnr_int8=22.631, niqe_fp32=11.697, niqe_int8=12.192),
    ),
}


def int8_refusal(network: str) -> str | None:
    """Why ``network`` is not offered in int8 (the recorded gate's verdict), or None when it is."""
    return gate_refusal(INT8_GATE.get(network, ()))


def quantize_int8(model: SRModel, choice: PrecisionChoice) -> SRModel:
    """``model`` with int8 convolutions. Only reached for a network that passed its gate; none has
    (x4plus: 0.11 dB PSNR lost on clean inputs, NIQE +0.50 on heavily degraded ones), so the
    quantization flow lives in tests/benchmarks/int8_gate.py and this refuses with the verdict."""
    refusal = int8_refusal(model.network.name)
    raise PrecisionError(f"int8 is not offered for {model.network.name}: {refusal or 'not built into this service'}")
