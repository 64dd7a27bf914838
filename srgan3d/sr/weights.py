"""Weights and their model cards: lookup by name, checksum, safe loading, and the card as the
typed `WeightsCard` the tool reads.

A weights file `<name>.pt` holds a state_dict only; `<name>.json` beside it (the model card)
holds the architecture config, scale, training data and recipe, validation metrics and the
sha256 of the .pt (through-plane weights: the network and the acquisition protocol). Nothing is
ever fetched from the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srgan3d.atomic import atomic_path, write_text_atomic
from srgan3d.sr import DEFAULT_WEIGHTS
from srgan3d.sr.licences import WeightsLicence, announce_licence, card_licence
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.slice_profile import AcquisitionProtocol

# Package data: the shipped weights are installed with the wheel, next to this module.
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


class WeightsError(ValueError):
    """Weights that are missing, tampered with or do not fit the generator."""


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in a state_dict that hold NaN or infinity."""
    return [
        k for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]  # fmt: skip


def check_finite_state(state: Mapping[str, torch.Tensor], path: str | Path, *, what: str = "weights") -> None:
    """Refuse a state_dict with a NaN or infinite tensor, naming the file and the tensors: such
    weights turn every output voxel they touch into NaN."""
    bad = non_finite_tensors(state)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise WeightsError(
            f"{path}: {what} hold NaN or infinite values ({shown}); the training run that made them diverged. "
            "Retrain (with --no-amp if it ran in bf16) or use other weights"
        )


class WeightsCard(Mapping[str, Any]):
    """A model card as its `.json` holds it (read-only; `to_dict` gives it back as written), with
    typed accessors for what the tool reads from it: what kind of weights, their architecture,
    their held-out results, the protocol of through-plane weights, their licence."""

    def __init__(self, raw: Mapping[str, Any] | None = None) -> None:
        self._raw: dict[str, Any] = dict(raw or {})

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"WeightsCard({self._raw!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._raw)

    @property
    def kind(self) -> str:
        """"generator" (isotropic or one-axis 3D generator) or "through-plane" (`sr/protocol.py`)."""
        return str(self._raw.get("kind", "generator"))

    @property
    def sha256(self) -> str:
        return str(self._raw.get("sha256", ""))

    @property
    def generator(self) -> GeneratorConfig | None:
        """The generator's architecture (None for through-plane weights or a card without one)."""
        g = self._raw.get("generator")
        return GeneratorConfig.from_dict(dict(g)) if isinstance(g, Mapping) else None

    @property
    def plane_net(self) -> dict[str, int]:
        """The through-plane network's architecture (`through_plane.PlaneNet` arguments)."""
        return {str(k): int(v) for k, v in dict(self._raw.get("plane_net") or {}).items()}

    @property
    def protocol(self) -> AcquisitionProtocol | None:
        """The acquisition protocol through-plane weights were trained for (None otherwise)."""
        p = self._raw.get("protocol")
        return AcquisitionProtocol.from_dict(p) if isinstance(p, Mapping) and p else None

    @property
    def held_out_gain_db(self) -> float | None:
        """Through-plane weights: the held-out gain over B-spline + consistency (None otherwise)."""
        h = self._raw.get("held_out")
        return float(h["gain_db"]) if isinstance(h, Mapping) and "gain_db" in h else None

    @property
    def trained_for_dc(self) -> bool:
        """Was the generator's loss taken on the data-consistent output?"""
        recipe = self._raw.get("recipe")
        return bool(recipe.get("dc_loss")) if isinstance(recipe, Mapping) else False

    @property
    def licence(self) -> WeightsLicence:
        return card_licence(self._raw)


@dataclass(frozen=True)
class WeightsInfo:
    name: str
    path: Path
    card: WeightsCard

    def __post_init__(self) -> None:
        if not isinstance(self.card, WeightsCard):
            object.__setattr__(self, "card", WeightsCard(self.card))

    @property
    def sha256(self) -> str:
        return self.card.sha256

    @property
    def licence(self) -> WeightsLicence:
        """The licence the card records, or the one its training data imply (`srgan3d.sr.licences`)."""
        return self.card.licence


def weights_dirs() -> list[Path]:
    """Folders searched for weights by name: $SRGAN3D_WEIGHTS_DIR (os.pathsep-separated), then the
    package's own `srgan3d/sr/weights/` (installed with the wheel)."""
    dirs = [Path(p) for p in os.environ.get("SRGAN3D_WEIGHTS_DIR", "").split(os.pathsep) if p]
    return [*dirs, PACKAGE_WEIGHTS]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_weights() -> list[WeightsInfo]:
    """Every `<name>.pt` with a model card in the search folders (first folder wins a name)."""
    found: dict[str, WeightsInfo] = {}
    for d in weights_dirs():
        if not d.is_dir():
            continue
        for pt in sorted(d.glob("*.pt")):
            card_path = pt.with_suffix(".json")
            if pt.stem in found or not card_path.exists():
                continue
            found[pt.stem] = WeightsInfo(pt.stem, pt, json.loads(card_path.read_text()))
    return list(found.values())


NO_WEIGHTS_HELP = (
    "The generator weights were not found (the package ships its weights in srgan3d/sr/weights/). Train your own with "
    "`srgan3d train` and `srgan3d export` (see the README), give a weights file with --weights PATH, "
    "or use an interpolation baseline: --method sinc (zero-filled k-space) or --method tricubic."
)


def find_weights(name_or_path: str | Path = DEFAULT_WEIGHTS) -> WeightsInfo:
    """Resolve a weights name (searched in `weights_dirs()`) or a path to a `.pt` with its card."""
    p = Path(name_or_path)
    if p.suffix == ".pt" or p.exists():
        if not p.is_file():
            raise WeightsError(f"{p}: no such weights file")
        card_path = p.with_suffix(".json")
        if not card_path.is_file():
            raise WeightsError(f"{p}: model card {card_path.name} is missing beside it")
        return WeightsInfo(p.stem, p, json.loads(card_path.read_text()))
    for info in list_weights():
        if info.name == str(name_or_path):
            return info
    installed = ", ".join(i.name for i in list_weights()) or "none"
    raise WeightsError(f"weights {str(name_or_path)!r} not found (installed: {installed}). {NO_WEIGHTS_HELP}")


HELDOUT_KEY = "heldout_abdominal_mri"
"""Model-card key of the held-out test on real abdominal MRI (written by benchmarks/quality.py
--card): {"volumes": [{"name", "psnr_gain_db", "ssim", "ssim_sinc"}...], "mean_gain_db",
"min_gain_db", "data_consistency"}; gains are PSNR over zero-filled k-space (sinc)."""


SITE_KEY = "site_heldout"
"""Model-card key of a fine-tune's held-out result on the site's own scans (written by
`srgan3d export` for a run started with --init): PSNR/SSIM of the weights, of zero-filled
k-space and of the weights it started from, on the part no training patch touched."""


def auto_eligibility(info: WeightsInfo) -> tuple[bool, str]:
    """May `--method auto` use these weights? Only when their card records, on held-out real
    abdominal MRI, a mean PSNR gain over zero-filled k-space, no volume below it by more than
    0.05 dB, and a mean SSIM at least zero-filled k-space's; or, for weights fine-tuned on a site's
    own scans (`SITE_KEY`), a PSNR gain on the held-out part over zero-filled k-space *and* over the
    weights they started from, with SSIM at least zero-fill's. Returns (eligible, the reason)."""
    site = info.card.get(SITE_KEY)
    if isinstance(site, dict) and HELDOUT_KEY not in info.card:
        if site["gain_vs_sinc_db"] <= 0:
            return False, f"on the held-out part of its site's scans it is {site['gain_vs_sinc_db']:+.2f} dB against zero-filled k-space"
        if site["gain_vs_init_db"] <= 0:
            return False, (f"on the held-out part of its site's scans it is {site['gain_vs_init_db']:+.2f} dB against the "
                           "weights it was fine-tuned from: use those instead")  # fmt: skip
        if site["ssim"] < site["ssim_sinc"]:
            return False, "on the held-out part of its site's scans its SSIM is below zero-filled k-space's"
        return True, (f"{site['gain_vs_sinc_db']:+.2f} dB over zero-filled k-space and {site['gain_vs_init_db']:+.2f} dB "
                      "over its starting weights on the held-out part of its site's scans")  # fmt: skip
    test = info.card.get(HELDOUT_KEY)
    if not isinstance(test, dict) or not test.get("volumes"):
        return False, "its model card records no test on held-out real abdominal MRI"
    vols = test["volumes"]
    mean_gain = float(np.mean([v["psnr_gain_db"] for v in vols]))
    worst = min(vols, key=lambda v: v["psnr_gain_db"])
    ssim_gain = float(np.mean([v["ssim"] - v["ssim_sinc"] for v in vols]))
    if mean_gain <= 0:
        return False, f"on held-out real abdominal MRI it is {mean_gain:+.2f} dB against zero-filled k-space"
    if worst["psnr_gain_db"] < -0.05:
        return False, f"on held-out {worst['name']} it is {worst['psnr_gain_db']:+.2f} dB against zero-filled k-space"
    if ssim_gain < 0:
        return False, f"on held-out real abdominal MRI its SSIM is {ssim_gain:+.4f} below zero-filled k-space's"
    return True, f"{mean_gain:+.2f} dB over zero-filled k-space on {len(vols)} held-out abdominal MRI volume(s)"


GAN_SUFFIX = "_gan"


def auto_weights(weights: str | Path = DEFAULT_WEIGHTS) -> str | Path:
    """The weights `--method auto` runs when the user named `weights`.

    For the shipped default, its GAN companion `<name>_gan` is taken only when both are
    licence-clean (never opt-in weights, `srgan3d.sr.licences`), that card is
    eligible too (`auto_eligibility`) and records a higher mean held-out gain over zero-filled
    k-space than the fidelity model's own card: the GAN must beat the fidelity model on the
    card's criteria, not merely pass them. Any other name or path is used as given.
    """
    if str(weights) != DEFAULT_WEIGHTS:
        return weights
    try:
        fidelity, gan = find_weights(DEFAULT_WEIGHTS), find_weights(DEFAULT_WEIGHTS + GAN_SUFFIX)
    except WeightsError:
        return weights
    if fidelity.licence.opt_in or gan.licence.opt_in or not auto_eligibility(gan)[0]:
        return weights
    fidelity_gain = _mean_heldout_gain(fidelity) if auto_eligibility(fidelity)[0] else -float("inf")
    return gan.name if _mean_heldout_gain(gan) > fidelity_gain else weights


def _mean_heldout_gain(info: WeightsInfo) -> float:
    return float(np.mean([v["psnr_gain_db"] for v in info.card[HELDOUT_KEY]["volumes"]]))


def load_checked_state(
    name_or_path: str | Path = DEFAULT_WEIGHTS, *, map_location: str = "cpu"
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """The state_dict of weights whose sha256 matches their model card, loaded with
    `torch.load(weights_only=True)` (which refuses anything but tensors and plain containers),
    finite; and their `WeightsInfo`."""
    info = find_weights(name_or_path)
    digest = sha256_file(info.path)
    if not info.sha256:
        raise WeightsError(
            f"{info.path.with_suffix('.json')}: model card has no sha256, so the weights cannot be checked; "
            "re-export them with `srgan3d export` (which records it)"
        )
    if digest != info.sha256:
        raise WeightsError(
            f"{info.path}: sha256 {digest[:16]}... does not match its model card ({info.sha256[:16]}...); "
            "the file is damaged or was replaced: restore it"
        )
    try:
        state = torch.load(info.path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{info.path}: cannot be loaded safely as a state_dict ({exc})") from exc
    if isinstance(state, dict) and "params_ema" in state:
        state = state["params_ema"]
    if not isinstance(state, dict):
        raise WeightsError(f"{info.path}: holds a {type(state).__name__}, not a state_dict")
    check_finite_state(state, info.path)
    announce_licence(info.name, info.card)
    return state, WeightsInfo(info.name, info.path, WeightsCard({**info.card, "sha256": digest}))


def load_generator(
    name_or_path: str | Path = DEFAULT_WEIGHTS, *, map_location: str = "cpu"
) -> tuple[Generator, WeightsInfo]:
    """Build the generator its model card describes and load its weights (`load_checked_state`)."""
    info = find_weights(name_or_path)
    config = info.card.generator
    if config is None:
        raise WeightsError(f"{info.path.with_suffix('.json')}: model card has no 'generator' config")
    state, info = load_checked_state(info.path, map_location=map_location)
    model = Generator(config)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise WeightsError(f"{info.path}: weights do not fit the generator of its card ({exc})") from exc
    return model.eval(), info


def save_weights(model: Generator, path: str | Path, card: dict[str, Any]) -> Path:
    """Write the state_dict to `path` and its model card (with sha256 and config) beside it.
    Non-finite weights are refused (`check_finite_state`) and nothing is written."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite_state(state, path, what="the weights to be written")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    full = {**card, "generator": model.config.to_dict(), "sha256": sha256_file(path), "file": path.name}
    write_text_atomic(path.with_suffix(".json"), json.dumps(full, indent=2) + "\n")
    return path
