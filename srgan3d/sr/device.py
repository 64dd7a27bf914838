"""The device and the precision the generator runs on: CUDA or the CPU, bf16 autocast where the
hardware multiplies bf16 (CUDA; CPUs with AMX-BF16 or AVX512-BF16) and fp32 elsewhere, and how
large a sliding window fits in the memory there is."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from srgan3d.sr.nets import Generator


def cpu_has_bf16_units(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16).

    Elsewhere bf16 autocast is emulated by oneDNN and far slower than fp32 (one training step of
    the default generator: 64 s in bf16 against 0.8 s in fp32 on an AVX2-only AMD EPYC,
    benchmarks/RESULTS.md), so the engine and training use it only where this says yes.
    `cpuinfo`: the text of /proc/cpuinfo (read when None; an unreadable one, e.g. on macOS, is no).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def use_bf16(device: torch.device, amp: bool) -> bool:
    """bf16 autocast on `device` when `amp` asks for it: always on CUDA, on a CPU only with bf16
    matrix units (`cpu_has_bf16_units`)."""
    if not amp:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _CPU_BF16


_CPU_BF16 = cpu_has_bf16_units()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], not {device!r}")
    return torch.device(device)


def cuda_window_voxels(model: Generator, device: torch.device, *, fraction: float = 0.5) -> int:
    """Input voxels per window that fit in `fraction` of the GPU's free memory.

    Estimate of the activations alive at once per input voxel, in fp32 (bf16 halves it, which is
    the margin): two feature maps of `channels` in the low-resolution trunk plus the sub-pixel
    upsampling's `upsample_channels * prod(scale)` before and after the shuffle, and the output
    pair. At least 32^3; no upper cap, so a clinical volume that fits runs whole, with no window
    and no stitching (320x320x80 with the default generator: 6.2 GB in bf16 on an H100).
    """
    bytes_per_voxel = _window_bytes_per_voxel(model)
    free, total = torch.cuda.mem_get_info(device)
    # A process capped by torch.cuda.set_per_process_memory_fraction sees the cap, not the card.
    cap = torch.cuda.get_per_process_memory_fraction(device) * total - torch.cuda.memory_reserved(device)
    return int(max(32**3, fraction * min(free, cap) / bytes_per_voxel))


def _window_bytes_per_voxel(model: Generator) -> int:
    """Activations alive at once per input voxel, in fp32 (bf16 halves it, which is the margin):
    two feature maps of `channels` in the low-resolution trunk plus the sub-pixel upsampling's
    `upsample_channels * prod(scale)` before and after the shuffle, and the output pair."""
    cfg = model.config
    n_sub = math.prod(cfg.scale)
    return 4 * (3 * cfg.channels + 2 * cfg.upsample_channels * n_sub + 4 * n_sub)


def cpu_window_voxels(model: Generator, *, fraction: float = 0.4) -> int:
    """Input voxels per window that fit in `fraction` of the memory the system has available,
    between 64^3 and 384^3; 128^3 where that cannot be read (not Linux). A clinical volume that
    fits runs whole: no window halos computed twice, nothing to stitch."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 128**3
    return int(min(384**3, max(64**3, fraction * available / _window_bytes_per_voxel(model))))
