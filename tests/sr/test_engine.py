"""The engine's k-space operations on the device and data consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import noisy_generator, smooth_volume

from srgan3d.sr.degrade import degrade_array
from srgan3d.sr.engine import GeneratorEngine, choose_window, upscale_volume
from srgan3d.sr.intensity import IntensityScaling
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.volume import Volume

SHAPES = [(16, 12, 10), (15, 13, 9), (8, 9, 6)]  # even and odd lengths: the Nyquist bin differs


def test_engine_output_keeps_the_measured_band_and_no_dc_does_not():
    x = (smooth_volume((16, 14, 10), seed=5) * 1.0).astype(np.float32)
    model = noisy_generator()
    dc = GeneratorEngine(model, device=torch.device("cpu"), dc=True).run(x)
    raw = GeneratorEngine(model, device=torch.device("cpu"), dc=False).run(x)
    err_dc = np.abs(degrade_array(dc, 2) - x).max() / np.abs(x).max()
    err_raw = np.abs(degrade_array(raw, 2) - x).max() / np.abs(x).max()
    assert err_dc < 1e-5
    assert err_raw > 100 * err_dc  # the raw output rewrites the measured band; DC takes it back


def test_engine_with_windows_equals_the_whole_volume_with_dc():
    """Data consistency runs once on the stitched volume, so windows change nothing."""
    x = smooth_volume((50, 41, 23), seed=6)
    x = ((x - x.min()) / (x.max() - x.min())).astype(np.float32)
    model = noisy_generator(1)
    # Receptive radius 5.5 voxels fits in the halo floor(24 * 0.5 / 2) = 6.
    assert model.config.receptive_radius <= 6
    whole = GeneratorEngine(model, device=torch.device("cpu")).run(x)
    tiled = GeneratorEngine(model, device=torch.device("cpu"), window=(24, 24, 24), overlap=0.5).run(x)
    assert np.abs(tiled - whole).max() < 1e-4


def test_out_of_memory_retries_with_smaller_windows(monkeypatch, caplog):
    """A CUDA out-of-memory error (simulated here, so the test runs on any machine) is retried with
    a smaller window, and the result is still the full volume."""
    x = smooth_volume((20, 16, 12), seed=7).astype(np.float32)
    engine = GeneratorEngine(noisy_generator(2), device=torch.device("cpu"), window=(20, 16, 12), sw_batch_size=2)
    calls = {"n": 0}
    forward = engine._forward

    def flaky(t):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(t)

    monkeypatch.setattr(engine, "_forward", flaky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    out = engine.run(x)
    assert out.shape == (40, 32, 24)
    assert "retrying with window" in caplog.text


def test_from_weights_resolves_weights_and_device_once(tiny_weights):
    engine = GeneratorEngine.from_weights(tiny_weights, device="cpu", dc=False)
    assert engine.weights is not None and engine.weights.name == "tiny_x2" and len(engine.weights.sha256) == 64
    assert engine.device.type == "cpu" and engine.dc is False
    vol = Volume(smooth_volume((10, 10, 6), seed=1) * 100 + 10, np.eye(4), {})
    assert upscale_volume(vol, method="generator", engine=engine).shape == (20, 20, 12)


AMD_MILAN = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2 vaes\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n"
SKYLAKE_X = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl\n"


def test_bf16_on_the_cpu_matches_fp32_within_bf16_rounding(monkeypatch):
    """bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%); over a few convolutions the
    output may differ from fp32 by a few of those steps of its largest value, not more. Data
    consistency takes the measured band from the input, so only the added detail carries them."""
    from srgan3d.sr import device as device_mod

    x = smooth_volume((12, 12, 8), seed=8).astype(np.float32)
    model = noisy_generator(3)
    fp32 = GeneratorEngine(model, device=torch.device("cpu"), amp=False).run(x)
    monkeypatch.setattr(device_mod, "_CPU_BF16", True)  # bf16 even where it is only emulated
    engine = GeneratorEngine(noisy_generator(3), device=torch.device("cpu"), amp=True)
    assert engine.precision == "bf16"
    bf16 = engine.run(x)
    err = np.abs(bf16 - fp32).max() / np.abs(fp32).max()
    assert 0 < err < 2e-2  # not identical (bf16 really ran), and within bf16 rounding


@pytest.mark.gpu
def test_bf16_on_cuda_matches_fp32():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = smooth_volume((32, 32, 16), seed=8).astype(np.float32)
    model = noisy_generator(3)
    cpu = GeneratorEngine(model, device=torch.device("cpu")).run(x)
    gpu = GeneratorEngine(model, device=torch.device("cuda"), amp=True).run(x)
    assert np.abs(gpu - cpu).max() < 2e-2 * np.abs(cpu).max()


@pytest.mark.gpu
def test_real_cuda_out_of_memory_is_retried():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = smooth_volume((48, 48, 32), seed=9).astype(np.float32)
    engine = GeneratorEngine(noisy_generator(4), device=torch.device("cuda"), window=(48, 48, 32), sw_batch_size=4)
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(int(free * 0.97) // 4, dtype=torch.float32, device="cuda")  # leave almost nothing
    try:
        out = engine.run(x)
    except torch.OutOfMemoryError:
        pytest.fail("out of memory was not retried down to a window that fits")
    finally:
        del hog
        torch.cuda.empty_cache()
    assert out.shape == (96, 96, 64)


def test_a_volume_that_fits_runs_whole_without_windows(monkeypatch):
    """When the window covers the volume the network runs once on it: MONAI's windowing is never
    entered (it would stitch one window on the host side of the call)."""
    import monai.inferers

    def forbidden(*args, **kwargs):
        raise AssertionError("sliding_window_inference called for a volume that fits")

    monkeypatch.setattr(monai.inferers, "sliding_window_inference", forbidden)
    x = smooth_volume((20, 18, 12), seed=7).astype(np.float32)
    model = noisy_generator(2)
    out = GeneratorEngine(model, device=torch.device("cpu")).run(x)
    assert out.shape == (40, 36, 24) and np.isfinite(out).all()


def test_stage_clock_times_every_stage_of_a_volume():
    from srgan3d.sr.engine import StageClock

    vol = Volume(smooth_volume((30, 26, 12), seed=8) * 500, np.diag([1.0, 1.0, 2.5, 1.0]), {})
    engine = GeneratorEngine(noisy_generator(3), device=torch.device("cpu"), window=(16, 16, 12))
    engine.clock = clock = StageClock(engine.device)
    upscale_volume(vol, engine=engine)
    sec = clock.seconds
    assert set(sec) == {"normalise", "to_device", "network_stitch", "network", "kspace", "copy_back", "denormalise"}
    assert all(v > 0 for v in sec.values()), sec  # every stage ran and was timed
    assert sec["network"] <= sec["network_stitch"]  # the forward passes are inside the windowed pass


def test_channels_last_gives_the_same_output():
    x = smooth_volume((18, 16, 10), seed=9).astype(np.float32)
    model = noisy_generator(4)
    a = GeneratorEngine(model, device=torch.device("cpu")).run(x)
    b = GeneratorEngine(noisy_generator(4), device=torch.device("cpu"), channels_last=True).run(x)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_warmup_runs_once_per_process_and_device(monkeypatch):
    from srgan3d.sr import engine as engine_mod

    monkeypatch.setattr(engine_mod, "_warm", set())
    calls = []
    eng = GeneratorEngine(noisy_generator(5), device=torch.device("cpu"))
    monkeypatch.setattr(eng, "run", lambda x: calls.append(x.shape))
    eng.warmup()
    eng.warmup()
    other = GeneratorEngine(noisy_generator(6), device=torch.device("cpu"))
    monkeypatch.setattr(other, "run", lambda x: calls.append(x.shape))
    other.warmup()
    assert len(calls) == 1


def test_a_crop_super_resolves_like_the_whole_volume_without_edge_ringing():
    """`upscale_box` gives, inside the VOI, what super-resolving the whole scan gives there; a bare
    crop (periodic to the FFT) does not: its far face wraps onto the near one."""
    from srgan3d.sr.engine import upscale_box
    from srgan3d.volume import upscaled_affine

    rng = np.random.default_rng(11)
    shape = (48, 44, 30)
    ramp = np.linspace(0, 400, shape[0], dtype=np.float32)[:, None, None]  # crop faces differ: a jump
    data = (smooth_volume(shape, seed=12) * 300 + ramp + rng.normal(0, 4, shape)).astype(np.float32)
    vol = Volume(data, np.diag([0.8, 0.8, 2.5, 1.0]), {})
    box = (slice(10, 34), slice(8, 30), slice(6, 22))
    voi = tuple(slice(2 * (s.start + 4) - 2 * s.start, 2 * (s.stop - 4) - 2 * s.start) for s in box)  # 4 LR voxels in
    whole = upscale_volume(vol, method="sinc")
    ref = whole.data[tuple(slice(2 * s.start, 2 * s.stop) for s in box)][voi]
    for name in (None, "srgan3d_x2"):  # zero-filled k-space, then the shipped generator with DC
        kw = {"method": "sinc"} if name is None else {"engine": GeneratorEngine.from_weights(name, device="cpu")}
        if name is not None:
            ref = upscale_volume(vol, **kw).data[tuple(slice(2 * s.start, 2 * s.stop) for s in box)][voi]
        got = upscale_box(vol, box, context=8, **kw)
        bare = upscale_volume(Volume(np.ascontiguousarray(data[box]), vol.affine, {}), **kw)
        err = np.abs(got.data[voi] - ref).max() / np.ptp(ref)
        err_bare = np.abs(bare.data[voi] - ref).max() / np.ptp(ref)
        assert err < 0.012, err  # the whole scan's own SR is periodic too: its tails differ slightly
        assert err_bare > 2 * err, (err_bare, err)
        mean, mean_bare = (np.abs(a[voi] - ref).mean() / np.ptp(ref) for a in (got.data, bare.data))
        assert mean < 0.003 and mean_bare > 2 * mean, (mean, mean_bare)
    crop_affine = vol.affine.copy()
    crop_affine[:3, 3] = vol.affine[:3, :3] @ np.array([s.start for s in box], float) + vol.affine[:3, 3]
    np.testing.assert_allclose(got.affine, upscaled_affine(crop_affine, 2), atol=1e-9)
    assert got.shape == tuple(2 * (s.stop - s.start) for s in box)


def test_a_box_at_the_volume_edge_is_reflected():
    """A box touching the volume's edges is super-resolved as if the scan went on as its mirror
    image: equal to the same box cut from the whole volume reflected by np.pad, and not to the
    box with zeros beyond the edge."""
    from srgan3d.sr.engine import upscale_box, upscale_volume

    vol = Volume(smooth_volume((20, 18, 12), seed=13).astype(np.float32) * 100 + 50, np.eye(4), {})
    box, c = (slice(0, 12), slice(5, 18), slice(2, 10)), 8
    out = upscale_box(vol, box, method="sinc", context=c)
    assert out.shape == (24, 26, 16)

    def reference(mode: str) -> np.ndarray:
        padded = np.pad(vol.data, c, mode=mode)  # the scan continued beyond its edges
        window = tuple(slice(sl.start, sl.stop + 2 * c) for sl in box)  # the box and c voxels around it
        sr = upscale_volume(Volume(padded[window], np.eye(4), {}), method="sinc", factors=(2, 2, 2)).data
        return sr[2 * c : -2 * c, 2 * c : -2 * c, 2 * c : -2 * c]

    np.testing.assert_allclose(out.data, reference("symmetric"), rtol=1e-5, atol=1e-3)
    assert np.abs(out.data - reference("constant")).max() > 1.0  # zero padding would ring at the edge


def _random_detail_generator(seed=0):
    torch.manual_seed(seed)
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return model.eval()


@pytest.mark.parametrize(
    ("window", "overlap"), [((24, 24, 24), 0.5), ((48, 48, 48), 0.25), ((20, 48, 20), 0.6)]
)
def test_sliding_window_equals_whole_volume(window, overlap):
    """In fp32 (amp off, on every CPU): windows of other shapes round alike, so 1e-4 holds. The
    bf16 path has its own test with a tolerance from bf16's precision (tests/sr/test_bf16.py)."""
    model = _random_detail_generator()
    # Receptive radius 5.5 voxels fits in the halo: floor(24 * 0.5 / 2) = 6, floor(48 * 0.25 / 2) = 6.
    assert model.config.receptive_radius <= int(min(window) * overlap / 2)
    x = IntensityScaling.fit(smooth_volume((50, 41, 23))).forward(smooth_volume((50, 41, 23)))
    engine = GeneratorEngine(model, device=torch.device("cpu"), window=window, overlap=overlap, amp=False)
    assert engine.precision == "fp32"
    tiled = engine.run_network(x).numpy()
    with torch.inference_mode():
        whole = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert tiled.shape == whole.shape == (100, 82, 46)
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(whole).max() > 0.05  # the detail branch really contributes


def test_sinc_skip_untrained_generator_equals_sinc():
    x = smooth_volume((20, 18, 10))
    engine = GeneratorEngine(Generator(GeneratorConfig(channels=8, n_blocks=1)), device=torch.device("cpu"))
    g = upscale_volume(Volume(x, np.eye(4)), method="generator", factors=(2, 2, 2), engine=engine)
    s = upscale_volume(Volume(x, np.eye(4)), method="sinc", factors=(2, 2, 2))
    np.testing.assert_allclose(g.data, s.data, rtol=1e-4, atol=1e-2)


def test_background_stays_background():
    x = smooth_volume((24, 24, 12))
    x[:, :6] = 0  # padding outside the field of view
    for method in ("sinc", "tricubic"):
        out = upscale_volume(Volume(x, np.eye(4)), method=method, factors=(2, 2, 2)).data
        assert out.min() >= 0
        assert np.all(out[:, :10] == 0)  # inside the zero band (eroded by one coarse voxel)


def test_choose_window_respects_budget():
    assert choose_window((40, 40, 20), max_voxels=10**6, overlap=0.25) == (40, 40, 20)
    roi = choose_window((192, 192, 100), max_voxels=128**3, overlap=0.25)
    assert np.prod(roi) <= 128**3 and all(r <= n for r, n in zip(roi, (192, 192, 100), strict=True))
