"""A training run's generator as weights with their model card (`srgan3d export`): the `.pt`
state_dict, the card's `.json` (architecture, scale, recipe, data, validation, sha256, and for a
fine-tune its held-out result on the site's own scans) and a short `.md` for people.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from srgan3d.atomic import write_text_atomic
from srgan3d.provenance import versions
from srgan3d.sr.config import TrainConfig
from srgan3d.sr.licences import data_entries, weights_licence
from srgan3d.sr.nets import Generator
from srgan3d.sr.weights import SITE_KEY, WeightsError, check_finite_state, find_weights, save_weights


def export_weights(
    run_dir: str | Path,
    out: str | Path,
    *,
    use_ema: bool = True,
    description: str = "",
    training_data: Sequence[str] | None = None,
    checkpoint: str = "last",
) -> Path:
    """Write a run's generator (EMA by default) as `out` (.pt state_dict) with its model card
    (`.json` and a short `.md`): architecture, scale, data, recipe, steps, validation, sha256.

    `checkpoint`: "last" (`checkpoint.pt`) or "best" (`best.pt`, the step with the highest mean
    validation PSNR, kept by `train` whenever validation improves)."""
    run_dir = Path(run_dir)
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', not {checkpoint!r}")
    ckpt = run_dir / ("checkpoint.pt" if checkpoint == "last" else "best.pt")
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint (best.pt exists only for runs with --val)")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(json.loads(state["config_json"]))
    params = state["params_ema" if use_ema else "params"]
    check_finite_state(params, ckpt, what="its generator weights")
    model = Generator(config.generator)
    model.load_state_dict(params)
    run_info = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    val_path = run_dir / ("last_validation.json" if checkpoint == "last" else "best.json")
    validation = json.loads(val_path.read_text()) if val_path.exists() else {}
    init_path = run_dir / "init_validation.json"
    site = _site_heldout(validation, json.loads(init_path.read_text()) if init_path.exists() else None, run_info)
    training = data_entries(list(training_data or run_info.get("data", [])))
    inherited = _inherited_training_data(run_info.get("init"))
    card = {
        "description": description,
        "scale": list(config.scale),
        "stage": "gan" if config.gan_steps > 0 else ("pixel (L1 + gradient)" if config.edge_weight else "pixel (L1)")
        + (", loss on the data-consistent output" if config.dc_loss else ""),
        "parameters": "EMA" if use_ema else "raw",
        "training_precision": run_info.get("precision", "not recorded"),
        "steps": int(state["step"]),
        "checkpoint": checkpoint,
        "recipe": config.to_dict(),
        "training_data": training,
        "initialised_from": run_info.get("init"),
        **({"inherited_training_data": inherited} if inherited else {}),
        "licence": weights_licence([*training, *inherited]).to_dict(),
        "validation_data": data_entries(run_info.get("val", [])),
        "validation_is_not_redistribution": "validation data chose the checkpoint only; their terms do not pass to the weights",
        "validation": validation,
        "versions": versions(),
    }
    if site is not None:
        card[SITE_KEY] = site
    path = save_weights(model, out, card)
    write_text_atomic(path.with_suffix(".md"), _card_markdown(path, config, card, description))
    return path


def _inherited_training_data(init: dict[str, Any] | None) -> list[dict[str, object]]:
    """The training data of the weights a fine-tune started from (they are in the new weights
    too, so their terms are): from the starting weights' card where it can be found."""
    if not init or not init.get("name"):
        return []
    try:
        card = find_weights(init.get("path") or init["name"]).card
    except (WeightsError, OSError):
        return [{"file": f"the training data of {init['name']} (card not found)", "licence": "not stated",
                 "source": "", "commercial_use": None, "derivatives": None, "share_alike": None}]  # fmt: skip
    return data_entries([*card.get("training_data", []), *card.get("inherited_training_data", [])])


def _card_markdown(path: Path, config: TrainConfig, card: dict[str, Any], description: str) -> str:
    """The model card's short Markdown beside the weights: what they are, how they were trained,
    how they validated, and their sha256."""
    full = json.loads(path.with_suffix(".json").read_text())
    site, init = card.get(SITE_KEY), card["initialised_from"]
    md = [
        f"# {path.stem}",
        "",
        description or "Generator weights trained by srgan3d.",
        "",
        f"- Scale: {tuple(config.scale)}; skip: {config.skip}; stage: {card['stage']}; {card['steps']} steps; "
        f"generator trained in {card['training_precision']} (discriminator and losses in fp32).",
        f"- Architecture: {json.dumps(full['generator'])}",
        f"- **Licence: {card['licence']['licence']}** — {card['licence']['why']}.",
        f"- Training data (at 1/{', 1/'.join(map(str, config.hr_scales))} of their resolution; phantoms: "
        f"{config.phantoms}, grids up to {config.phantom_coarsening}x coarser):",
        *_data_lines(card["training_data"]),
        *(["- Inherited from the starting weights:", *_data_lines(card["inherited_training_data"])]
          if card.get("inherited_training_data") else []),
        *([f"- Fine-tuned from: {init['name']} (sha256 {init['sha256']})"] if init else []),
        "- Validation data (held out; chose the checkpoint only, so their terms do not pass to the weights):",
        *_data_lines(card["validation_data"]),
        f"- Validation at step {card['steps']} (central crops, 2x k-space degradation, foreground PSNR dB):",
        *_validation_lines(card["validation"]),
        *([f"- Held-out part of the site's scans ({site['split']}): {site['psnr_db']:.2f} dB, "
           f"{site['gain_vs_sinc_db']:+.2f} dB over zero-filled k-space, {site['gain_vs_init_db']:+.2f} dB over the "
           f"weights it started from; SSIM {site['ssim']:.4f} (zero-fill {site['ssim_sinc']:.4f}, start "
           f"{site['ssim_init']:.4f}). `--method auto` uses these weights only if both gains are positive."]
          if site else []),
        f"- sha256: {full['sha256']}",
        "",
    ]  # fmt: skip
    return "\n".join(md)


def _site_heldout(
    validation: dict[str, Any], start: dict[str, Any] | None, run_info: dict[str, Any]
) -> dict[str, Any] | None:
    """A fine-tune's held-out result for its model card: on the part of the user's scans that no
    training patch touched (`split_for_validation`, or --val), the exported checkpoint's PSNR/SSIM
    against zero-filled k-space and against the weights it started from (None when the run did
    not start from weights or has no validation)."""
    if not validation or start is None or "psnr" not in validation:
        return None
    return {
        "split": run_info.get("validation_split", ""),
        "volumes": run_info.get("val", []),
        "psnr_db": round(float(validation["psnr"]), 4),
        "psnr_sinc_db": round(float(validation["psnr_sinc"]), 4),
        "psnr_init_db": round(float(start["psnr"]), 4),
        "ssim": round(float(validation["ssim"]), 5),
        "ssim_sinc": round(float(validation["ssim_sinc"]), 5),
        "ssim_init": round(float(start["ssim"]), 5),
        "gain_vs_sinc_db": round(float(validation["psnr"] - validation["psnr_sinc"]), 4),
        "gain_vs_init_db": round(float(validation["psnr"] - start["psnr"]), 4),
        "protocol": "central crops of the held-out part, 2x grid-consistent k-space truncation, foreground PSNR",
    }


def _validation_lines(validation: dict[str, Any]) -> list[str]:
    names = [k[5:-1] for k in validation if k.startswith("psnr[")]
    if not names:  # older runs recorded only the means
        return [f"  - mean over the volumes: {json.dumps(validation)}"] if validation else ["  - none"]
    return [
        f"  - {n}: this model {validation[f'psnr[{n}]']:.2f}, zero-filled k-space "
        f"{validation.get(f'psnr_sinc[{n}]', float('nan')):.2f}, tricubic "
        f"{validation.get(f'psnr_tricubic[{n}]', float('nan')):.2f}"
        for n in names
    ]


def _data_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    if not entries:
        return ["  - none"]
    return [f"  - `{e['file']}` — {e['licence']} ({e['source']})" for e in entries]
