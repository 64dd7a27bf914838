"""The device and the precision (`srgan3d.sr.device`): bf16 only where the CPU has bf16 units."""

from __future__ import annotations

import torch
from conftest import noisy_generator

from srgan3d.sr.engine import GeneratorEngine

AMD_MILAN = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2 vaes\n"


SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n"


ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n"


SKYLAKE_X = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl\n"


def test_bf16_units_are_read_from_the_cpu_flags():
    from srgan3d.sr.device import cpu_has_bf16_units

    assert cpu_has_bf16_units(SAPPHIRE_RAPIDS) and cpu_has_bf16_units(ZEN4)
    # AVX2 or AVX512 without BF16: oneDNN emulates bf16 there, far slower than fp32.
    assert not cpu_has_bf16_units(AMD_MILAN) and not cpu_has_bf16_units(SKYLAKE_X)
    assert not cpu_has_bf16_units("")


def test_cpu_precision_follows_the_bf16_units(monkeypatch):
    from srgan3d.sr import device as device_mod

    model = noisy_generator(1)
    monkeypatch.setattr(device_mod, "_CPU_BF16", False)
    assert GeneratorEngine(model, device=torch.device("cpu"), amp=True).precision == "fp32"
    monkeypatch.setattr(device_mod, "_CPU_BF16", True)
    assert GeneratorEngine(model, device=torch.device("cpu"), amp=True).precision == "bf16"
    assert GeneratorEngine(model, device=torch.device("cpu"), amp=False).precision == "fp32"
    # channels_last_3d by default on the CPU (faster there), off when asked
    assert GeneratorEngine(model, device=torch.device("cpu")).channels_last
    assert not GeneratorEngine(model, device=torch.device("cpu"), channels_last=False).channels_last
