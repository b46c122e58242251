"""Which number format the network runs in on a device, chosen once at start, with the reason.

``ENHANCE_PRECISION`` is one of :data:`PRECISIONS`. ``auto`` picks, from capabilities that are
detected (never assumed): bfloat16 on a CPU with native bfloat16 instructions (``avx512_bf16`` or
``amx_bf16`` on x86, ``bf16`` on Arm), float32 on other CPUs; float16 on CUDA, or bfloat16 on a GPU
that has it when the network is known to overflow in float16. An explicit precision the device cannot
run natively is a :class:`PrecisionError` at start, never a slow emulated fallback. Whatever runs, a
tile whose reduced-precision output is not finite is re-run in float32 (models/sr/_batching.py).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

_CPUINFO = Path("/proc/cpuinfo")
# cpuinfo flags meaning the CPU computes in that format natively (x86 flags; Arm's "Features" names).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
_FP16_FLAGS = ("avx512_fp16", "amx_fp16", "fphp")
_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


class PrecisionError(ValueError):
    """A precision this device (or this network) cannot run: raised at start, with the reason."""


@dataclass(frozen=True)
class Capabilities:
    """What a device can compute natively. ``flags`` are the CPU's cpuinfo flags that matter here
    (for the log); on CUDA ``cuda_bf16`` says whether the GPU has bfloat16 arithmetic."""

    device_type: str
    bf16: bool
    fp16: bool
    int8: bool
    flags: tuple[str, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision the network runs in: ``name`` (one of fp32, bf16, fp16, int8), the torch dtype of
    its activations (int8 runs its convolutions in int8 between float32 activations), what was asked
    for, and why this one."""

    name: str
    dtype: torch.dtype
    requested: str
    reason: str

    @property
    def reduced(self) -> bool:
        return self.name != "fp32"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on Arm); empty
    where there is no such file (then nothing reduced is assumed)."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def detect_capabilities(device: torch.device, cpuinfo: str | None = None) -> Capabilities:
    """What ``device`` computes natively: on a CPU from its cpuinfo flags (and oneDNN being built in),
    on CUDA from the device's properties."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, _minor = torch.cuda.get_device_capability(index)
        return Capabilities(
            device_type="cuda",
            bf16=major >= 8,  # Ampere and later compute in bfloat16
            fp16=True,
            int8=False,
            name=torch.cuda.get_device_name(index),
        )
    if device.type != "cpu":
        return Capabilities(device_type=device.type, bf16=False, fp16=False, int8=False)
    flags = cpu_flags(cpuinfo)
    onednn = torch.backends.mkldnn.is_available()
    return Capabilities(
        device_type="cpu",
        bf16=onednn and any(flag in flags for flag in _BF16_FLAGS),
        fp16=onednn and any(flag in flags for flag in _FP16_FLAGS),
        int8=onednn and any(flag in flags for flag in _INT8_FLAGS),
        flags=tuple(sorted(flag for flag in flags if flag in (*_BF16_FLAGS, *_FP16_FLAGS, *_INT8_FLAGS))),
        name=platform.processor() or platform.machine(),
    )


def _cpu_native(capabilities: Capabilities, kind: str) -> str:
    shown = ", ".join(capabilities.flags) or "none"
    return f"this CPU has no native {kind} instructions (relevant cpuinfo flags: {shown})"


def choose_precision(
    requested: str,
    device: torch.device,
    capabilities: Capabilities,
    *,
    supports_half: bool = True,
    supports_bfloat16: bool = True,
    int8_refusal: str | None = None,
) -> PrecisionChoice:
    """The precision to run in for ``requested`` (one of :data:`PRECISIONS`) on ``device``.

    ``supports_half`` / ``supports_bfloat16``: whether the network is known to run correctly in those
    (spandrel's descriptor says; float16 overflowing is why a network would not). ``int8_refusal``:
    why int8 is not offered (the quality gate's verdict), or None when it is. Raises
    :class:`PrecisionError` for a precision the device or network cannot run."""
    if requested not in PRECISIONS:
        raise PrecisionError(f"unknown precision {requested!r}; known: {', '.join(PRECISIONS)}")
    on = f"{device.type}" + (f" ({capabilities.name})" if capabilities.name else "")
    if requested == "auto":
        if device.type == "cuda":
            if supports_half:
                return PrecisionChoice("fp16", torch.float16, requested, f"auto: float16 on {on}")
            if supports_bfloat16 and capabilities.bf16:
                return PrecisionChoice(
                    "bf16", torch.bfloat16, requested, f"auto: the network overflows in float16; bfloat16 on {on}"
                )
            return PrecisionChoice(
                "fp32", torch.float32, requested, "auto: the network overflows in float16 and this GPU has no bfloat16"
            )
        if device.type == "cpu" and capabilities.bf16 and supports_bfloat16:
            flags = ", ".join(flag for flag in capabilities.flags if flag in _BF16_FLAGS)
            return PrecisionChoice("bf16", torch.bfloat16, requested, f"auto: native bfloat16 on this CPU ({flags})")
        if device.type == "cpu" and capabilities.bf16:
            return PrecisionChoice("fp32", torch.float32, requested, "auto: the network does not run in bfloat16")
        if device.type == "cpu":
            return PrecisionChoice(
                "fp32", torch.float32, requested, f"auto: float32, {_cpu_native(capabilities, 'bfloat16')}"
            )
        return PrecisionChoice("fp32", torch.float32, requested, f"auto: float32 on {device.type}")
    if requested == "fp32":
        return PrecisionChoice("fp32", torch.float32, requested, "ENHANCE_PRECISION=fp32")
    if requested == "int8":
        if device.type != "cpu":
            raise PrecisionError(f"int8 runs on the CPU only (x86 with VNNI), not on {device.type}")
        if int8_refusal is not None:
            raise PrecisionError(f"int8 is not offered: {int8_refusal}")
        if not capabilities.int8:
            raise PrecisionError(f"int8 needs VNNI: {_cpu_native(capabilities, 'int8 dot-product')}")
        return PrecisionChoice("int8", torch.float32, requested, "ENHANCE_PRECISION=int8 (quantized convolutions)")
    kind = "bfloat16" if requested == "bf16" else "float16"
    network_ok = supports_bfloat16 if requested == "bf16" else supports_half
    if not network_ok:
        raise PrecisionError(f"this network does not run correctly in {kind}; use fp32 or auto")
    native = capabilities.bf16 if requested == "bf16" else capabilities.fp16
    if not native:
        if device.type == "cpu":
            reason = _cpu_native(capabilities, kind) + "; it would be emulated, slower than float32"
        else:
            reason = f"{on} has no {kind} arithmetic"
        raise PrecisionError(f"ENHANCE_PRECISION={requested} cannot run here: {reason}. Use auto or fp32.")
    return PrecisionChoice(requested, DTYPES[requested], requested, f"ENHANCE_PRECISION={requested}, native on {on}")


def requested_precision(precision: str, half_precision: bool | None) -> tuple[str, str | None]:
    """What ``ENHANCE_PRECISION`` means once the deprecated ``ENHANCE_HALF_PRECISION`` is folded in,
    and a deprecation warning (or None). ``half_precision`` is None when it was not set.

    ``ENHANCE_HALF_PRECISION=true`` (the old default: a reduced precision where the device has one)
    maps to ``auto`` and ``false`` to ``fp32``. Set beside an explicit ``ENHANCE_PRECISION`` that
    says the opposite, it is a :class:`PrecisionError`; beside one that agrees, only a warning."""
    if half_precision is None:
        return precision, None
    mapped = "auto" if half_precision else "fp32"
    setting = f"ENHANCE_HALF_PRECISION={str(half_precision).lower()}"
    if precision == "auto" or precision == mapped:
        return mapped, f"{setting} is deprecated: it means ENHANCE_PRECISION={mapped}; set that instead"
    if (precision == "fp32") == half_precision:
        raise PrecisionError(f"{setting} contradicts ENHANCE_PRECISION={precision}; drop the deprecated {setting}")
    return precision, f"{setting} is deprecated and ignored beside ENHANCE_PRECISION={precision}"
