"""One through-plane network per acquisition protocol: trained once on many scans of the protocol
(`train_protocol`, `srgan3d train --through-plane`), exported with a model card that records the
protocol, the scans and the held-out gain, and applied at network speed to every scan of that
protocol (`upscale_with_protocol`, `srgan3d upscale --scale through-plane --weights W`). A scan of
another protocol (slice spacing, thickness, profile, in-plane spacing beyond `PROTOCOL_RTOL`) is
refused by name: its slices were made differently, so the network's learnt detail does not hold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srgan3d.atomic import atomic_path, write_text_atomic
from srgan3d.discovery import find_scans
from srgan3d.provenance import versions
from srgan3d.sr.config import THROUGH_PLANE_KIND, ThroughPlaneConfig
from srgan3d.sr.licences import card_licence, data_entry, weights_licence
from srgan3d.sr.slice_profile import (
    AcquisitionProtocol,
    SliceGeometry,
    inplane_can_teach,
    measure_axis_detail,
    protocol_mismatch,
    slice_geometry,
    slices_can_learn,
    teaching_axes,
)
from srgan3d.sr.through_plane import (
    PlaneFit,
    PlaneNet,
    PlanePairs,
    apply_plane_net,
    finish_volume,
    fit_plane_net,
    scaled_slices_last,
    upscale_bspline_consistent,
)
from srgan3d.sr.weights import (
    WeightsError,
    WeightsInfo,
    check_finite_state,
    find_weights,
    sha256_file,
)
from srgan3d.volume import Volume, thickest_axis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolScan:
    """A scan of the protocol, read: its volume, slice axis and geometry."""

    volume: Volume
    geometry: SliceGeometry

    @property
    def name(self) -> str:
        return str(self.volume.meta.get("source", "scan"))


def scan_geometry(volume: Volume, *, factor: int, profile: str, thickness_mm: float | None) -> SliceGeometry:
    """The slice geometry of a scan upscaled along its thickest axis."""
    axis = thickest_axis(volume)
    return slice_geometry(volume.spacing_mm, volume.meta, axis=axis, factor=factor, kind=profile, thickness_mm=thickness_mm)


def teach_axes_of(volume: Volume, geometry: SliceGeometry) -> tuple[int, ...]:
    """The in-plane axes that teach, in the slices-last order of `scaled_slices_last` (0, 1)."""
    order = [a for a in range(3) if a != geometry.axis] + [geometry.axis]
    spacing = [volume.spacing_mm[a] * (1 if a == geometry.axis else geometry.inplane_factor) for a in order]
    return teaching_axes(spacing, 2, geometry.profile.factor)


def read_protocol_scans(
    inputs: Sequence[str | Path], *, factor: int = 2, profile: str = "boxcar", thickness_mm: float | None = None
) -> list[ProtocolScan]:
    """Every scan under `inputs`, checked to share one protocol (the first scan's) and to have
    in-plane axes that can teach; all problems are named at once."""
    sources = find_scans(inputs)
    if not sources:
        raise FileNotFoundError(f"no scans found in {', '.join(map(str, inputs))}")
    scans: list[ProtocolScan] = []
    problems: list[str] = []
    for src in sources:
        vol = src.read()
        geometry = scan_geometry(vol, factor=factor, profile=profile, thickness_mm=thickness_mm)
        scan = ProtocolScan(vol, geometry)
        if scans:
            diff = protocol_mismatch(scans[0].geometry.protocol(), geometry.protocol())
            if diff:
                problems.append(f"{scan.name}: another protocol than {scans[0].name}: {diff}")
                continue
        if not teach_axes_of(vol, geometry):
            problems.append(f"{scan.name}: no in-plane axis is as fine as the target spacing")
            continue
        scans.append(scan)
    if problems:
        raise ValueError(
            f"{len(problems)} scan(s) cannot train one through-plane model:\n  - " + "\n  - ".join(problems)
            + "\nTrain one model per protocol: give only scans of one protocol (or --slice-thickness for all)"
        )  # fmt: skip
    return scans


@dataclass(frozen=True)
class ProtocolModel:
    """A trained protocol network: where its weights are, and the fit."""

    weights: Path
    fit: PlaneFit
    protocol: AcquisitionProtocol
    scans: tuple[str, ...]


def train_protocol(
    inputs: Sequence[str | Path], output: str | Path, config: ThroughPlaneConfig | None = None, *, factor: int = 2,
    profile: str = "boxcar", thickness_mm: float | None = None, device: str = "cpu", progress: bool = False,
) -> ProtocolModel:  # fmt: skip
    """Train one through-plane network on the in-plane planes of every scan under `inputs` (one
    protocol) within `config.minutes`, and write `OUTPUT/<folder name>.pt` with its model card
    (.json and .md) and the run's config. One in-plane plane of each `holdout_every` of every scan
    is held out: it picks the best checkpoint and gives the card's gain over B-spline +
    consistency."""
    config = config or ThroughPlaneConfig()
    output = Path(output)
    scans = read_protocol_scans(inputs, factor=factor, profile=profile, thickness_mm=thickness_mm)
    pairs = PlanePairs(scans[0].geometry.profile)
    details = []
    for scan in scans:
        x, _, _ = scaled_slices_last(scan.volume, scan.geometry.axis)
        teach = teach_axes_of(scan.volume, scan.geometry)
        detail = measure_axis_detail(x)
        ok, why = inplane_can_teach(detail, teach)
        if not ok:
            log.warning("%s: %s", scan.name, why)
        details.append({**data_entry(scan.name), "teach_axes": list(teach), **detail.to_dict()})
        pairs.add_volume(x, holdout_every=config.holdout_every, teach=teach, inplane_factor=scan.geometry.inplane_factor)
    model, fit = fit_plane_net(pairs, config, device=device, progress=progress)
    protocol = _median_protocol([s.geometry for s in scans])
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{output.resolve().name}.pt"
    card = {
        "kind": THROUGH_PLANE_KIND,
        "description": f"Through-plane network for one protocol ({scans[0].geometry.profile.describe(protocol.spacing_mm)}), "
                       f"trained by `srgan3d train --through-plane` on {len(scans)} scan(s).",
        "protocol": protocol.to_dict(), "training_data": details,
        "licence": weights_licence(details).to_dict(), "held_out": fit.to_dict(), "config": config.to_dict(),
        "date": datetime.now().isoformat(timespec="seconds"), "versions": versions(),
    }  # fmt: skip
    save_plane_net(model, path, card)
    return ProtocolModel(path, fit, protocol, tuple(s.name for s in scans))


def _median_protocol(geometries: Sequence[SliceGeometry]) -> AcquisitionProtocol:
    """The first scan's protocol with the median spacing, thickness and (sorted) in-plane spacings."""
    ps = [g.protocol() for g in geometries]
    return replace(
        ps[0], spacing_mm=round(float(np.median([p.spacing_mm for p in ps])), 4),
        thickness_mm=round(float(np.median([p.thickness_mm for p in ps])), 4),
        inplane_mm=tuple(round(float(np.median([sorted(g.inplane_mm)[i] for g in geometries])), 4) for i in (0, 1)),
    )  # fmt: skip


def save_plane_net(model: PlaneNet, path: Path, card: dict[str, Any]) -> None:
    """The state_dict (atomically) and its model card (.json with the sha256, and .md)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite_state(state, path, what="the weights to be written")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    full = {**card, "plane_net": dict(model.config), "sha256": sha256_file(path), "file": path.name}
    write_text_atomic(path.with_suffix(".json"), json.dumps(full, indent=2) + "\n")
    write_text_atomic(path.with_suffix(".md"), plane_card_markdown(full))


def plane_card_markdown(card: dict[str, Any]) -> str:
    p, h = card["protocol"], card["held_out"]
    lines = [
        f"# {Path(card['file']).stem}: through-plane network", "", card.get("description", ""), "",
        "## Protocol", "",
        f"- slice profile {p['profile']}, thickness {p['thickness_mm']} mm, spacing {p['spacing_mm']} mm, x{p['factor']}",
        f"- in-plane {p['inplane_mm'][0]} x {p['inplane_mm'][1]} mm (scanner interpolation x{p.get('inplane_factor', 1)})",
        "", "## Held-out in-plane planes", "",
        f"{h['held_out_planes']} planes never trained on: {h['held_out_psnr_db']} dB against {h['baseline_psnr_db']} dB "
        f"for B-spline + slice-profile consistency (**{h['gain_db']:+.3f} dB**), after {h['steps']} steps "
        f"({h['seconds']} s, {h['precision']}; best at step {h['best_step']}).",
        "", "## Licence", "", f"**{card_licence(card).licence}** — {card_licence(card).why}.",
        "", "## Training scans", "",
        *[f"- `{d['file']}` — {d.get('licence', 'not stated')}" for d in card["training_data"]], "",
        f"sha256 `{card['sha256']}`", "",
    ]  # fmt: skip
    return "\n".join(lines)


def is_through_plane_weights(name_or_path: str | Path) -> bool:
    try:
        return find_weights(name_or_path).card.kind == THROUGH_PLANE_KIND
    except WeightsError:
        return False


def card_protocol(info: WeightsInfo) -> AcquisitionProtocol:
    """The protocol through-plane weights were trained for, from their card (WeightsError when it
    records none)."""
    if info.card.protocol is None:
        raise WeightsError(f"{info.path}: its model card records no acquisition protocol; re-export the weights")
    return info.card.protocol


def upscale_with_protocol(
    volume: Volume, model: PlaneNet, info: WeightsInfo, *, factor: int, thickness_mm: float | None = None,
    amp: bool = True,
) -> tuple[Volume, SliceGeometry, str | None]:  # fmt: skip
    """Apply protocol weights to one scan along its thickest axis; where the scan's slices look
    made from a band-limited truth (`slices_can_learn`), B-spline + consistency instead. Returns
    the output, the geometry and the reason for that fall-back (None: the network ran).

    Raises:
        ValueError: the scan's protocol is not the weights' (named, with what differs)."""
    expected = card_protocol(info)
    geometry = scan_geometry(volume, factor=factor, profile=expected.profile, thickness_mm=thickness_mm)
    diff = protocol_mismatch(expected, geometry.protocol())
    if diff:
        raise ValueError(
            f"{volume.meta.get('source', 'scan')}: the through-plane weights {info.name} were trained for another "
            f"protocol: {diff}. Train weights on scans of this protocol (srgan3d train --through-plane) or use "
            "--method self-supervised"
        )
    x, scaling, order = scaled_slices_last(volume, geometry.axis)
    teach = teach_axes_of(volume, geometry)
    ok, why = slices_can_learn(x, teach, geometry.profile)
    if not ok:
        return upscale_bspline_consistent(volume, geometry), geometry, why
    y = apply_plane_net(model, x, geometry.profile, teach=teach, amp=amp)
    return finish_volume(y, volume, scaling, order, factor, geometry.axis), geometry, None


__all__ = [
    "ProtocolModel", "ProtocolScan", "is_through_plane_weights", "read_protocol_scans",
    "save_plane_net", "train_protocol", "upscale_with_protocol",
]  # fmt: skip
