"""Which upscale method and weights a run uses: `--method auto` takes the generator only where its
model card records a gain over zero-filled k-space on held-out real abdominal MRI
(`srgan3d.sr.weights.auto_eligibility`), never opt-in weights of restricted licence in place of
the default (`srgan3d.sr.licences`), and says once why when it does not."""

from __future__ import annotations

import logging
from pathlib import Path

from srgan3d.sr.config import THROUGH_PLANE_KIND
from srgan3d.sr.weights import DEFAULT_WEIGHTS, WeightsError, auto_eligibility, auto_weights, find_weights

log = logging.getLogger(__name__)

def resolve_method(method: str, weights: str | Path = DEFAULT_WEIGHTS) -> str:
    """`method`, with "auto" made "generator" only when `weights` are installed *and* their model
    card records a gain over zero-filled k-space on held-out real abdominal MRI
    (`srgan3d.sr.weights.auto_eligibility`); otherwise "sinc", and the reason is logged once.

    Raises:
        WeightsError: `weights` other than the shipped default name cannot be found or have no
            model card: weights a user named must exist, so a typo never turns into a silent
            fall-back to zero-filled k-space.
    """
    if method != "auto":
        return method
    try:
        info = find_weights(weights)
    except WeightsError:
        if str(weights) != DEFAULT_WEIGHTS:
            raise
        say_once(f"no generator weights {str(weights)!r} installed: using zero-filled k-space (--method sinc)")
        return "sinc"
    if str(weights) == DEFAULT_WEIGHTS and info.licence.opt_in:
        say_once(f"--method auto uses zero-filled k-space (sinc), not {info.name}: its licence is {info.licence.licence} "
                 f"({info.licence.why}); name them with --weights to use them")  # fmt: skip
        return "sinc"
    ok, why = auto_eligibility(info)
    if not ok:
        say_once(f"--method auto uses zero-filled k-space (sinc), not {info.name}: {why}")
        return "sinc"
    return "generator"


def resolve_method_and_weights(method: str, weights: str | Path = DEFAULT_WEIGHTS) -> tuple[str, str | Path]:
    """`resolve_method`, with "auto" on the shipped default also choosing between the fidelity
    model and its GAN companion (`srgan3d.sr.weights.auto_weights`). Returns (method, weights)."""
    chosen = auto_weights(weights) if method == "auto" else weights
    return resolve_method(method, chosen), chosen


def through_plane_weights_sha(weights: str | Path) -> str | None:
    """The sha256 of `weights` when they are through-plane weights (`srgan3d train
    --through-plane`), else None."""
    try:
        info = find_weights(weights)
    except WeightsError:
        return None
    return info.sha256 if info.card.kind == THROUGH_PLANE_KIND else None


_said: set[str] = set()


def say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)
