"""The report's text and HTML: formatters of numbers, p-values, AUCs, intervals and variable names,
and the HTML primitives (tables, figures, footnotes) the sections are written with. Pure
functions of their arguments; imports neither matplotlib nor any fitting module.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from srgan3d.study.results import GROUP_COVARIATE, FitNote, OddsRatio
from srgan3d.study.stats import DelongResult, RocResult


def fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_auc(r: RocResult) -> str:
    """An AUC with its CI as '0.812 [0.700-0.920]'."""
    return f"{r.auc:.3f} [{r.ci_low:.3f}-{r.ci_high:.3f}]"


def fmt_p_eq(p: float | None) -> str:
    """'p = 0.032' or 'p < 0.001'."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


#: Names of the models' variables as the report shows them; the user's own columns keep their names.
VARIABLE_LABELS = {
    "const": "Intercept",
    "diameter_mm": "Tumour diameter (mm)",
    "arterial_enhancement": "Arterial enhancement (0 = no, 1 = yes)",
    "radscore_post_sr": "Post-SR radscore",
    "dl_score": "Deep score, post-SR (log-odds)",
    GROUP_COVARIATE: "Predicted responder (vs non-responder)",
    "bclc": "BCLC stage",
    "child_pugh": "Child-Pugh class",
    "afp_ng_ml": "AFP (ng/mL)",
    "ast_u_l": "AST (U/L)",
    "age": "Age (years)",
    "sex": "Sex",
}


#: Unit suffixes of column names (`afp_log10_ng_ml`, `tumour_size_cm`) as the report writes them.
UNIT_SUFFIXES = (("_log10_ng_ml", ", log10 (ng/mL)"), ("_ng_ml", " (ng/mL)"), ("_u_l", " (U/L)"), ("_mm", " (mm)"),
                 ("_cm", " (cm)"), ("_years", " (years)"), ("_weeks", " (weeks)"), ("_months", " (months)"),
                 ("_days", " (days)"), ("_over_50pct", " over 50%"), ("_pct", " (%)"))  # fmt: skip
#: Words the report writes in capitals.
ACRONYMS = {"afp": "AFP", "bclc": "BCLC", "clip": "CLIP", "tnm": "TNM", "ast": "AST", "alt": "ALT", "hbv": "HBV",
            "hcv": "HCV", "sr": "SR", "ct": "CT", "mri": "MRI", "cps": "CPS"}  # fmt: skip


def variable_label(name: str) -> str:
    """A column's name as the report shows it: the study's own variables by `VARIABLE_LABELS`; any
    other column in words, its unit suffix in brackets (`afp_log10_ng_ml` -> 'AFP, log10
    (ng/mL)', `log10(afp_ng_ml)` -> 'log10 AFP (ng/mL)', `tumour_size_cm` -> 'Tumour size (cm)',
    `bclc_stage` -> 'BCLC stage')."""
    if name in VARIABLE_LABELS:
        return VARIABLE_LABELS[name]
    if name.startswith("log10(") and name.endswith(")"):  # a variable the study models on log10
        return f"log10 {variable_label(name[6:-1])}"
    base, unit = name, ""
    for suffix, shown in UNIT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            base, unit = name[: -len(suffix)], shown
            break
    words = [ACRONYMS.get(w.lower(), w) for w in base.replace("-", "_").split("_") if w]
    if not words:
        return name
    first = words[0] if words[0].isupper() else words[0].capitalize()
    return (" ".join([first, *words[1:]]) + unit).replace("Child pugh", "Child-Pugh")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1240px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em;max-width:100%}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:right;white-space:nowrap}th,td.l{white-space:normal;overflow-wrap:break-word}th{background:#f3f3f3}
td.l,th.l{text-align:left}.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.7em 1em;
border-radius:4px}.key{background:#eef5fb;border:1px solid #b8d4ea;padding:.7em 1em;border-radius:4px}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555;max-width:900px}img{max-width:100%}
code{background:#f5f5f5;padding:0 .2em}.small{font-size:.85em;color:#555}
"""


def figure_html(uri: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'
    )


def esc(v: object) -> str:
    return html.escape(str(v))


def fmt_ci(v: float, lohi: Sequence[float]) -> str:
    """A proportion with its interval: '0.812 [0.700-0.890]' (– when undefined)."""
    return f"{v:.3f} [{lohi[0]:.3f}-{lohi[1]:.3f}]" if np.isfinite(v) else "–"


def fmt_num(v: object, digits: int = 3) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(v)
    if not np.isfinite(f):
        return "–" if np.isnan(f) else ("∞" if f > 0 else "−∞")
    text = f"{f:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text  # never '-0.00'


def _rounds_to_one(v: float, digits: int) -> bool:
    return bool(np.isfinite(v)) and v != 1.0 and float(f"{v:.{digits}f}") == 1.0


def fmt_ratio(est: float, lo: float, hi: float, digits: int = 3) -> str:
    """An odds or hazard ratio with its CI, "1.234 [1.010-1.508]", with as many decimals (up to
    8) as it takes for no ratio that is not 1 to print as 1.000; beyond that, 10 significant
    digits. A ratio is never shown as 1.000 [1.000-1.000] when it is not."""
    d = digits
    while d < 8 and any(_rounds_to_one(float(v), d) for v in (est, lo, hi)):
        d += 1
    if any(_rounds_to_one(float(v), d) for v in (est, lo, hi)):
        return " ".join([f"{float(est):.10g}", f"[{float(lo):.10g}-{float(hi):.10g}]"])
    return f"{fmt_num(est, d)} [{fmt_num(lo, d)}-{fmt_num(hi, d)}]"


def fmt_coef(v: object, digits: int = 4) -> str:
    """A coefficient: `digits` decimals, or the scientific form where those would print a
    non-zero value as 0.0000."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(v)
    if np.isfinite(f) and f != 0 and abs(f) < 0.5 * 10**-digits:
        return f"{f:.2e}"
    return fmt_num(f, digits)


def fmt_per(unit: str, size: float) -> str:
    """What a ratio is per: "SD (0.87)" for a continuous variable, "1 unit" for a binary one."""
    return f"SD ({float(size):.3g})" if unit == "SD" else "1 unit"


def table_html(df: pd.DataFrame, *, left: tuple[str, ...] = (), formats: dict[str, Callable[[float], str]] | None = None) -> str:
    formats = formats or {}
    head = "".join(f'<th class="{"l" if c in left else ""}">{esc(c)}</th>' for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            text = (
                esc(formats[c](v))
                if c in formats
                else (fmt_num(v) if isinstance(v, (float, np.floating)) else esc(v))
            )
            cells.append(f'<td class="{"l" if c in left else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def fmt_signed(v: float, digits: int = 3) -> str:
    """'+0.084', '−0.006', and '0.000' for a value that rounds to zero (never '-0.000')."""
    if not np.isfinite(v):
        return "–"
    text = f"{v:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def delong_cell(d: DelongResult) -> str:
    return f"{fmt_signed(d.difference)} [{fmt_signed(d.ci_low)}, {fmt_signed(d.ci_high)}]; {fmt_p_eq(d.p_value)}"


def delong_cells(d: DelongResult, label: str) -> dict[str, str]:
    """A DeLong comparison as two table cells: the difference with its CI, and the p-value."""
    return {f"{label} [95% CI]": f"{fmt_signed(d.difference)} [{fmt_signed(d.ci_low)}, {fmt_signed(d.ci_high)}]",
            f"{label} p": fmt_p(d.p_value)}  # fmt: skip


def var_label(name: str) -> str:
    return variable_label(name)


def fmt_ranges(runs: list[list[float]]) -> str:
    """'0.34–0.59, 0.71–0.99' (thresholds of the decision-curve grid), or 'none'."""
    if not runs:
        return "none"
    return ", ".join(f"{a:.2f}" if a == b else f"{a:.2f}–{b:.2f}" for a, b in runs)


class Notes:
    """Numbered footnotes of one table: `mark(text)` gives the cell its '[n]', `html()` the list."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def html(self) -> str:
        return "".join(f"<p class='small'>[{i}] {esc(t)}</p>" for i, t in enumerate(self.texts, start=1))


def fit_line(name: str, note: FitNote) -> str:
    """'RCR: complete separation (by the post-SR radscore) in the training set: fitted by Firth's ...'."""
    by = ", ".join(var_label(v) for v in note.separating_variables)
    return (f"<b>{esc(name)}</b>: {esc(note.separation)} separation of responders and non-responders in the "
            f"training set{f' (by {esc(by)})' if by else ''}, so the maximum-likelihood estimate does not exist; "
            f"fitted instead by {esc(note.remedy or note.method)}.")  # fmt: skip


def odds_ratio_table(rows: Sequence[OddsRatio]) -> pd.DataFrame:
    kept = [o for o in rows if o.variable != "const"]
    return pd.DataFrame(
        {
            "Variable": [var_label(o.variable) for o in kept],
            "Per": [fmt_per(o.unit, o.unit_size) for o in kept],
            "OR [95% CI]": [fmt_ratio(o.odds_ratio, o.or_ci_low, o.or_ci_high) for o in kept],
            "p": [fmt_p(o.p_value) for o in kept],  # escaped by table_html
        }
    )
