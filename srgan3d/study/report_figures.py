"""The report's figures: each a function of the study's result tree (results.json) alone, one panel
per set of the split, returned as a PNG data URI with
the simulated-data stamp in its pixels when the cohort is simulated."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.report_format import fmt_auc, fmt_p_eq, variable_label
from srgan3d.study.results import CLASSIFIER_LABELS, StudyResult, SurvivalEndpoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SIMULATED_STAMP = "SIMULATED DATA: srgan3d synthetic cohort, not patients"


def stamp_for(results: StudyResult) -> str | None:
    return SIMULATED_STAMP if results.cohort.simulated else None


def _png(fig: Figure, stamp: str | None = None) -> str:
    """The figure as a data URI; `stamp` is written across its head, so that a copied figure
    carries it (the simulated-data note)."""
    import matplotlib.pyplot as plt

    if stamp:
        # above the panels (legends sit below them); the tight bounding box takes it in
        fig.text(0.5, 1.0, stamp, ha="center", va="bottom", fontsize=9, color="#b00020", weight="bold",
                 bbox={"facecolor": "#fff3cd", "edgecolor": "#b00020", "boxstyle": "round,pad=0.3"})  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _predictions(results: StudyResult) -> pd.DataFrame:
    return pd.DataFrame(results.predictions)


def _panels(n: int, size: float = 5.0) -> tuple[Figure, list[Axes]]:
    """A row of `n` square panels (one per set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.5, size), squeeze=False)
    return fig, list(axes[0])


def set_title(results: StudyResult, name: str) -> str:
    """'test set (n = 24)' over '13 responders, 11 non-responders', the set named as the table
    names it."""
    m = results.metrics[name]
    return f"{name} set (n = {m.n})\n{m.n_responders} responders, {m.n - m.n_responders} non-responders"


def roc_figure(results: StudyResult) -> str:
    """ROC of every roster model, one panel per set; readers' points on the test sets."""
    pred = _predictions(results)
    fig, axes = _panels(len(results.sets))
    readers = results.readers
    for ax, name in zip(axes, results.sets, strict=True):
        sub = pred[pred["set"] == name]
        y = sub["label"].to_numpy(int)
        for e in results.roster.models:
            pts = stats.roc_points(y, sub[e.name].to_numpy())
            r = results.metrics[name].roc[e.name]
            ax.step(pts["fpr"], pts["tpr"], where="post", color=e.colour, lw=2 if e.family == "study" else 1.5,
                    ls="-" if e.family == "study" else "-.", label=f"{e.label}: {fmt_auc(r)}")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=1)
        if readers is not None and name in readers.sets:
            for i, rd in enumerate(readers.sets[name].readers):
                ax.plot(1 - rd.specificity, rd.sensitivity, marker="osD^v"[i % 5], color="#222", ms=7, ls="none",
                        label=f"{rd.reader.replace('reader_', 'Reader ')}: AUC {rd.roc.auc:.3f}")  # fmt: skip
        ax.set(title=set_title(results, name), xlabel="1 − specificity", ylabel="Sensitivity",
               xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))  # fmt: skip
        ax.title.set_fontsize(10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7, title="AUC [95% CI, DeLong]",
                  title_fontsize=7)  # below the axes: no curve hidden
        ax.set_aspect("equal")
    return _png(fig, stamp_for(results))


def dca_figure(results: StudyResult) -> str:
    """Decision curves of every roster model, one panel per set."""
    fig, axes = _panels(len(results.sets), 4.6)
    for ax, name in zip(axes, results.sets, strict=True):
        dc = pd.DataFrame(results.metrics[name].decision_curve).set_index("threshold")
        dc = dc[dc.index <= 0.95]
        ax.plot(dc.index, dc["treat_all"], color="#555", lw=1.5, label="Treat all")
        ax.plot(dc.index, dc["treat_none"], color="#000", lw=1.5, ls="--", label="Treat none")
        for e in results.roster.models:
            ax.plot(dc.index, dc[e.name], color=e.colour, lw=2 if e.family == "study" else 1.6,
                    ls="-" if e.family == "study" else "-.", label=e.label)  # fmt: skip
        top = float(np.nanmax(dc.to_numpy()))
        ax.set(xlabel="Threshold probability of response", ylabel="Net benefit", ylim=(-0.05, max(0.1, top * 1.1)),
               title=f"Decision curves, {set_title(results, name)}")  # fmt: skip
        ax.title.set_fontsize(9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7)
        ax.grid(alpha=0.3)
    return _png(fig, stamp_for(results))


def calibration_figure(results: StudyResult) -> str:
    fig, axes = _panels(len(results.sets))
    for ax, name in zip(axes, results.sets, strict=True):
        for e in results.roster.models:
            c = results.metrics[name].calibration[e.name].curve
            ax.plot(c["mean_predicted"], c["observed"], "o-" if e.family == "study" else "s-.", color=e.colour,
                    label=e.label, ms=4)  # fmt: skip
        ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=1, label="Ideal")
        ax.set(title=f"Calibration, {set_title(results, name)}",
               xlabel="Predicted probability of response", ylabel="Observed fraction of responders",
               xlim=(0, 1), ylim=(-0.02, 1.02))  # fmt: skip
        ax.title.set_fontsize(9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7)
        ax.set_aspect("equal")
    return _png(fig, stamp_for(results))


def examples_figure(results: StudyResult) -> str | None:
    import matplotlib.pyplot as plt

    examples = results.examples
    if not examples:
        return None
    fig, axes = plt.subplots(len(examples), 2, figsize=(8, 4 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        for ax, key, title in ((row[0], "lr", "before SR"), (row[1], "sr", "after SR")):
            part = ex.lr if key == "lr" else ex.sr
            img = np.asarray(part.image, float)
            mask = np.asarray(part.mask, float)
            # shown in radiological convention: patient's right on the left, anterior at the top
            for axis, flip in enumerate(part.flip):
                if flip:
                    img, mask = np.flip(img, axis), np.flip(mask, axis)
            sp = part.spacing_mm
            extent = (0, img.shape[0] * sp[0], 0, img.shape[1] * sp[1])
            lo, hi = np.percentile(img, [1, 99.5])
            ax.imshow(
                img.T, cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent, interpolation="nearest"
            )
            ax.contour(mask.T, levels=[0.5], colors="#ffcc00", linewidths=1.2, origin="lower", extent=extent)
            ax.set_title(
                f"{ex.patient_id} ({ex.response}, {ex.set} set), {title}: {sp[0]:.2f} × {sp[1]:.2f} mm", fontsize=9
            )
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _png(fig, stamp_for(results))


def panel_roc_figure(results: StudyResult) -> str | None:
    """ROC of each panel classifier on each test set, pre-SR (dashed) and post-SR (solid), with
    the clinical model: one panel per test set."""
    import matplotlib.pyplot as plt

    panel = results.panel
    if panel is None or not panel.models:
        return None
    pred = _predictions(results)
    tested = results.split.evaluation
    fig, axes = plt.subplots(1, len(tested), figsize=(5.5 * len(tested) + 0.5, 5.5), squeeze=False)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for ax, name in zip(axes[0], tested, strict=True):
        sub = pred[pred["set"] == name]
        y = sub["label"].to_numpy(int)
        for colour, (clf, images) in zip(colours, panel.models.items(), strict=False):
            for image, ls in (("pre", "--"), ("post", "-")):
                if image not in images:
                    continue
                pts = stats.roc_points(y, sub[f"{clf}_{image}"].to_numpy())
                ax.step(pts["fpr"], pts["tpr"], where="post", color=colour, lw=1.6, ls=ls,
                        label=f"{CLASSIFIER_LABELS[clf]}, {image}-SR: {fmt_auc(images[image].roc[name])}")  # fmt: skip
        pts = stats.roc_points(y, sub["clinical"].to_numpy())
        ax.step(pts["fpr"], pts["tpr"], where="post", color="#555", lw=1.2, ls=":", label="Clinical (CR)")
        ax.plot([0, 1], [0, 1], color="#999", ls=":", lw=1)
        ax.set(title=f"Classifier panel, {set_title(results, name)}", xlabel="1 − specificity",
               ylabel="Sensitivity", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))  # fmt: skip
        ax.title.set_fontsize(9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=6, title="AUC [95% CI, DeLong]",
                  title_fontsize=6)  # below the axes: no curve hidden
        ax.set_aspect("equal")
    return _png(fig, stamp_for(results))


def nomogram_figure(results: StudyResult) -> str | None:
    """The combined (RCR) logistic model as a nomogram: a points axis per predictor (round values,
    labels never closer than their width), total points, and the probability of response."""
    import matplotlib.pyplot as plt
    from scipy.special import expit

    nomo = results.nomogram
    if nomo is None:
        return None
    preds = nomo.predictors
    total_max = sum(r.max_points for r in preds)
    n = len(preds) + 3
    fig, ax = plt.subplots(figsize=(10, 0.75 * n + 0.8))
    scale_x = 100.0 / max(total_max, 1e-9)  # total-points axis drawn on the same 0-100 width
    char = 1.0  # about one points-unit per character at this size (7 pt labels, 10 inch figure)

    def axis(row: int, label: str, ticks: list[tuple[float, str]]) -> None:
        yv = n - row
        xs = [t[0] for t in ticks]
        ax.plot([min(xs), max(xs)], [yv, yv], color="#333", lw=1)
        last_end = -np.inf
        for i, (x, text) in enumerate(sorted(ticks)):
            ax.plot([x, x], [yv, yv + 0.12], color="#333", lw=1)
            # labels that would touch their neighbour go below the line
            below = x - len(text) * char / 2 < last_end + char and i % 2 == 1
            ax.text(x, yv - 0.12 if below else yv + 0.18, text, ha="center", va="top" if below else "bottom", fontsize=7)
            if not below:
                last_end = x + len(text) * char / 2
        ax.text(-3, yv, label, ha="right", va="center", fontsize=8.5)

    def labels(values: list[float]) -> list[str]:
        return [f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}" for v in values]

    axis(0, "Points", [(x, f"{x:g}") for x in range(0, 101, 10)])
    for i, r in enumerate(preds, start=1):
        lo, hi, ppu = r.min, r.max, abs(r.points_per_unit)
        binary = {lo, hi} <= {0.0, 1.0}
        width = max(len(t) for t in labels([lo, hi])) + 2
        values = [lo, hi] if binary else stats.round_ticks(lo, hi, width * char / max(ppu, 1e-12))
        axis(i, variable_label(r.variable),
             [(r.points_per_unit * (v - r.ref), t) for v, t in zip(values, labels(values), strict=True)])  # fmt: skip
    tot = stats.round_ticks(0, total_max, 6 * char / scale_x)
    axis(len(preds) + 1, "Total points", [(t * scale_x, f"{t:g}") for t in tot])
    ticks: list[tuple[float, str]] = []
    for p in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99):
        x = (np.log(p / (1 - p)) - nomo.offset) / nomo.scale * scale_x
        if 0 <= x <= 100 and (not ticks or x - ticks[-1][0] >= 5 * char):
            ticks.append((x, f"{p:g}"))
    lp = nomo.offset + np.array([0.0, total_max]) * nomo.scale
    if len(ticks) >= 2:
        axis(len(preds) + 2, "Probability of response", ticks)
    ax.set(xlim=(-42, 106), ylim=(0.3, n + 0.8))
    ax.axis("off")
    which = "the combined model (RCR)" if results.fitted.combined_model else "the clinical model (CR)"
    ax.set_title(f"Nomogram of {which}; probability range {expit(lp.min()):.2f}-{expit(lp.max()):.2f}",
                 fontsize=10)  # fmt: skip
    return _png(fig, stamp_for(results))


#: The KM axis of each known endpoint: what the curve is the probability of.
KM_AXIS = {"overall survival": "Survival probability", "time to progression": "Probability without progression",
           "progression-free survival": "Progression-free probability",
           "recurrence-free survival": "Recurrence-free probability", "disease-free survival": "Disease-free probability",
           "event-free survival": "Event-free probability"}  # fmt: skip


def km_figure(results: StudyResult, endpoint: SurvivalEndpoint) -> str:
    """Kaplan-Meier curves of the best model's risk groups, one panel per set, each with its
    numbers-at-risk table under the time axis (columns at the axis ticks)."""
    import matplotlib.pyplot as plt

    shown = [(n, s) for n, s in endpoint.sets.items() if not s.skipped]
    fig, axes = plt.subplots(1, len(shown), figsize=(5.6 * len(shown) + 0.5, 5.6), squeeze=False)
    colours = {"predicted responder": "#d62728", "predicted non-responder": "#1f77b4"}
    unit = endpoint.time_unit
    for ax, (name, sv) in zip(axes[0], shown, strict=True):
        for k in sv.kaplan_meier:
            c = colours.get(k.group, "#333")
            median = f"{k.median:.1f} {unit}" if np.isfinite(k.median) else "not reached"
            ax.step(k.times, k.survival, where="post", color=c, lw=2, label=f"{k.group} (median {median})")
            ax.fill_between(k.times, k.ci_low, k.ci_high, step="post", color=c, alpha=0.12)
        ticks = [float(t) for t, _ in sv.kaplan_meier[0].at_risk] if sv.kaplan_meier else []
        ax.set(xlabel=f"Time ({unit})", ylabel=KM_AXIS.get(endpoint.endpoint, "Probability without the event"), ylim=(0, 1.02),
               title=f"{endpoint.endpoint.capitalize()}, {name} set (n = {sv.n})\nlog-rank "
                     f"{fmt_p_eq(sv.logrank.p if sv.logrank else None)}")  # fmt: skip
        if ticks:
            t_end = max([ticks[-1], *(max(k.times) for k in sv.kaplan_meier)])
            ax.set_xticks(ticks)
            ax.set_xlim(-0.02 * t_end, t_end * 1.03)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        # numbers at risk: one row per group under the axis, one column per tick
        ax.text(-0.02, -0.2, "Numbers at risk", transform=ax.transAxes, fontsize=7, weight="bold", ha="left")
        for row, k in enumerate(sv.kaplan_meier):
            yy = -0.27 - 0.065 * row
            ax.text(-0.02, yy, k.group.replace("predicted ", ""), transform=ax.transAxes, fontsize=7, ha="right",
                    color=colours.get(k.group, "#333"))  # fmt: skip
            for t, n in k.at_risk:
                ax.text(float(t), yy, str(n), transform=ax.get_xaxis_transform(), fontsize=7, ha="center")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.27 - 0.065 * len(sv.kaplan_meier)))
    fig.subplots_adjust(bottom=0.38, wspace=0.45)
    return _png(fig, stamp_for(results))
