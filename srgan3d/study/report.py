"""The evaluation report: one self-contained HTML file (figures embedded as PNG data URIs, no
external resources), rendered from the study's result tree (`results.json`) alone, so that
`srgan3d report OUT` can redo it; and the terminal summary. The sections live in
`srgan3d.study.report_sections` (numbered in the order of `SECTIONS`), their text and HTML in
`srgan3d.study.report_format`, the figures in `srgan3d.study.report_figures`. Each set of the split
is a column of the tables and a panel of the figures, named as the cohort table names it. The
report renders results and fits nothing: its figures redraw ROC and calibration curves from the
stored predictions, and every number in its text comes from results.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from srgan3d.atomic import write_text_atomic
from srgan3d.study.report_format import CSS, esc, fmt_auc, fmt_p_eq, fmt_signed
from srgan3d.study.report_sections import SECTIONS, cohort_line, has_model, key_results, model_name
from srgan3d.study.results import RADSCORE_MODELS, TRAIN, StudyResult


def render_html(results: StudyResult) -> str:
    """The whole report as one HTML string; everything comes from `results`."""
    import matplotlib

    matplotlib.use("Agg")
    r = results
    c = r.cohort
    parts: list[str] = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                        f"<title>srgan3d evaluation: {esc(c.name)}</title><style>{CSS}</style></head><body>",
                        "<h1>" + ("Does super-resolution improve the radiomics prediction of response?"
                                  if r.radiomics.extracted or has_model(r, "radiomics_post_sr")
                                  else "Predicting response: the study without super-resolution") + "</h1>",
                        f"<p class='small'>srgan3d {esc(r.provenance.versions.get('srgan3d', ''))} · cohort "
                        f"<code>{esc(c.name)}/{esc(c.file)}</code> · {esc(r.created)}</p>"]  # fmt: skip
    if c.simulated:
        parts.append(
            "<p class='banner'><b>Simulated data.</b> This cohort is srgan3d's built-in synthetic cohort: the "
            "images are phantoms and the responses were <b>simulated</b> from a documented logistic model "
            "(tumour diameter, arterial enhancement and fine tumour texture carry the signal). No figure in this "
            "report says anything about real patients.</p>"
        )
    parts += key_results(r)
    number = 0
    for section in SECTIONS:
        made = section(r)
        if made is None:
            continue
        number += 1
        title, body = made
        parts.append(f"<h2>{number}. {esc(title)}</h2>")
        parts += body
    parts.append("</body></html>")
    return "\n".join(parts)


def terminal_summary(results: StudyResult) -> str:
    """A plain-text table of the study's AUCs per set, for the terminal."""
    r = results
    opt = {o.model: o.corrected_auc for o in (r.fitted.optimism or ())}
    tested = r.split.evaluation
    head = f"{'model':30s} {'train AUC':>9s}" + "".join(f" {s + ' AUC [95% CI]':>26s}" for s in tested) + f" {'corrected':>9s}"
    lines = [head]
    lines.insert(0, cohort_line(r))
    for e in r.roster.models:
        if e.family != "study":
            continue
        m = e.name
        row = f"{e.label[:30]:30s} {r.metrics[TRAIN].roc[m].auc:9.3f}"
        for s in tested:
            row += f" {fmt_auc(r.metrics[s].roc[m]):>26s}"
        corrected = opt.get(m, float("nan"))
        lines.append(row + (f" {corrected:9.3f}" if np.isfinite(corrected) else f" {'–':>9s}"))
    if not opt:
        lines.append("corrected: – (no bootstrap; --bootstrap 0)")
    for s in tested if has_model(r, RADSCORE_MODELS[1]) and has_model(r, RADSCORE_MODELS[0]) else ():
        d = r.metrics[s].delong_pair(RADSCORE_MODELS[1], RADSCORE_MODELS[0])
        lines.append(f"DeLong, post- vs pre-SR radiomics ({s} set): ΔAUC {fmt_signed(d.difference)} (post − pre), "
                     f"{fmt_p_eq(d.p_value)}")  # fmt: skip
    for gone in r.excluded:
        lines.append(f"left out: patient {gone.patient_id}: {gone.reason}")
    for line in r.absent.values():
        lines.append(line)
    for name, note in r.fitted.separated.items():
        lines.append(f"warning: {model_name(name)}: {note.separation} separation in the training set; fitted by "
                     f"{note.method}")  # fmt: skip
    return "\n".join(lines)


def read_results(outdir: str | Path) -> StudyResult:
    """The study's result tree from `outdir/results.json`."""
    src = Path(outdir) / "results.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found; run `srgan3d evaluate COHORT.csv -o {outdir}` first")
    return StudyResult.from_dict(json.loads(src.read_text()))


def write_report(outdir: str | Path) -> Path:
    """Render `outdir/report.html` from `outdir/results.json` (atomically)."""
    return write_text_atomic(Path(outdir) / "report.html", render_html(read_results(outdir)))
