"""Several readers' mRECIST: each patient's label from the readers' majority, and how well they agree.

A reader's read is one of the ordered mRECIST categories CR < PR < SD < PD, or a responder call
1/0 (objective response = CR + PR). Agreement, each with its 95% CI:

- Fleiss' kappa over all readers (Fleiss 1971), on the four categories and on responder calls,
  over the patients every reader read; its CI is a percentile bootstrap over patients (seeded).
- Cohen's kappa for every pair of readers, linear-weighted on the ordered categories (weights
  1 - |i - j| / (k - 1)) and unweighted on responder calls, with the large-sample variance of
  Fleiss, Cohen & Everitt (1969), as R's vcd::Kappa and statsmodels compute it (psych::cohen.kappa gives
  the same kappas and unweighted CIs; its weighted CI differs, see tests/study/test_agreement.py).
- Percentage agreement for every pair, with Wilson's interval.

numpy/scipy only; imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from srgan3d.study.results import KappaResult, PairAgreement, ReaderAgreement
from srgan3d.study.stats import wilson_ci

#: The mRECIST categories in order of worsening; CR and PR are objective response.
CATEGORIES = ("CR", "PR", "SD", "PD")
RESPONDER = {"CR": 1, "PR": 1, "SD": 0, "PD": 0}
#: What `--response-ties` may say about a patient whose readers split evenly.
TIE_POLICIES = ("drop", "responder", "non-responder")


#: mRECIST categories as people write them (lower case, single spaces, '-' and '_' as spaces).
WRITTEN = {"cr": "CR", "pr": "PR", "sd": "SD", "pd": "PD", "complete response": "CR", "partial response": "PR",
           "stable disease": "SD", "progressive disease": "PD"}  # fmt: skip
_CODE_IN_BRACKETS = re.compile(r"\((cr|pr|sd|pd)\)")


def written_category(text: str) -> str | None:
    """An mRECIST category written out: 'CR', 'cr', 'Complete response', 'complete response (CR)',
    'Progressive-disease' ...; None when the text is none of them."""
    t = re.sub(r"[\s_-]+", " ", text.strip().lower()).strip()
    if (m := _CODE_IN_BRACKETS.search(t)) is not None:
        rest = t.replace(m.group(0), "").strip()
        if rest in ("", *(k for k, v in WRITTEN.items() if v == m.group(1).upper())):
            return m.group(1).upper()
        return None
    return WRITTEN.get(t)


def parse_read(raw: object, codes: Mapping[str, str] | None = None) -> str | int | None:
    """One reader's cell: an mRECIST category as people write it (`written_category`), 1/0 as a
    responder call, empty = None (not read). `codes` says what numeric codes mean (--response-codes
    1=CR,2=PR,3=SD,4=PD): given, a code is read through it, never guessed. Anything else raises
    ValueError with the value."""
    s = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
    if s == "" or s.lower() == "nan":
        return None
    if codes:
        key = s[:-2] if s.endswith(".0") else s
        if key in codes:
            return codes[key]
    if (cat := written_category(s)) is not None:
        return cat
    up = s.upper()
    if up in ("1", "1.0"):
        return 1
    if up in ("0", "0.0"):
        return 0
    hint = (f" (--response-codes maps {', '.join(f'{k}={v}' for k, v in codes.items())}, not {s!r})" if codes
            else "; numeric codes other than 1/0 need --response-codes, e.g. 1=CR,2=PR,3=SD,4=PD")  # fmt: skip
    raise ValueError(f"{s!r} is not an mRECIST read; use CR, PR, SD, PD (or complete response, partial response, "
                     f"stable disease, progressive disease), or 1/0 for a responder call (empty = not read){hint}")


def parse_response_codes(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """`--response-codes 1=CR,2=PR,3=SD,4=PD` as {"1": "CR", ...}; each target must be an mRECIST
    category (written any way `written_category` reads) or 1/0."""
    if not spec:
        return {}
    items = spec.items() if isinstance(spec, Mapping) else (p.partition("=")[::2] for p in str(spec).split(",") if p.strip())
    out: dict[str, str] = {}
    for code, target in items:
        cat = written_category(str(target))
        if not str(code).strip() or cat is None:
            raise ValueError(f"--response-codes {code}={target}: write CODE=CR|PR|SD|PD, e.g. 1=CR,2=PR,3=SD,4=PD")
        out[str(code).strip()] = cat
    return out


def responder_call(read: str | int) -> int:
    return RESPONDER[read] if isinstance(read, str) else int(read)


def majority_label(reads: Sequence[str | int | None]) -> int | None:
    """1 when most readers who read the patient called a responder, 0 when most did not, None on a
    tie or when nobody read the patient."""
    calls = [responder_call(r) for r in reads if r is not None]
    pos, neg = sum(calls), len(calls) - sum(calls)
    if pos == neg:
        return None
    return int(pos > neg)


# --------------------------------------------------------------------------------------------
# Kappas


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a (subjects, categories) table of counts, every subject rated by the same
    number of raters (Fleiss 1971): (P̄ - P̄e) / (1 - P̄e)."""
    counts = np.asarray(counts, float)
    n = counts.sum(axis=1)
    if counts.ndim != 2 or len(counts) == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs every subject rated by the same number (>= 2) of raters")
    m = n[0]
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.sum(counts * counts, axis=1) - m) / (m * (m - 1))
    p_bar, p_e = float(p_i.mean()), float(np.sum(p_j * p_j))
    if p_e >= 1:
        return float("nan")  # every rating in one category: agreement beyond chance is undefined
    return (p_bar - p_e) / (1 - p_e)


def _counts(codes: np.ndarray, k: int) -> np.ndarray:
    """(subjects, raters) category indices -> (subjects, k) counts."""
    return np.stack([(codes == j).sum(axis=1) for j in range(k)], axis=1)


def fleiss_kappa_ci(
    codes: np.ndarray, k: int, *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95, name: str = ""
) -> KappaResult:
    """Fleiss' kappa of (subjects, raters) category indices in 0..k-1, with a percentile bootstrap
    CI over subjects (`n_bootstrap` resamples drawn with `seed`; resamples where kappa is undefined
    are left out)."""
    codes = np.asarray(codes, int)
    kappa = fleiss_kappa(_counts(codes, k))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        b = rng.integers(0, len(codes), len(codes))
        v = fleiss_kappa(_counts(codes[b], k))
        if np.isfinite(v):
            boot.append(v)
    alpha = (1 - level) / 2
    lo, hi = (np.quantile(boot, [alpha, 1 - alpha]) if boot else (np.nan, np.nan))
    return KappaResult(
        statistic=name or "Fleiss' kappa", value=float(kappa), ci_low=float(lo), ci_high=float(hi), n=int(len(codes)),
        ci_method=f"percentile bootstrap over patients ({len(boot)} resamples)",
    )  # fmt: skip


def cohen_kappa(
    a: Sequence[int], b: Sequence[int], k: int, *, weights: str = "none", level: float = 0.95, name: str = ""
) -> KappaResult:
    """Cohen's kappa of two raters' category indices (0..k-1), unweighted or linear-weighted
    (agreement weights 1 - |i - j| / (k - 1)), with the large-sample variance of Fleiss, Cohen &
    Everitt (1969) and a normal CI, as R's vcd::Kappa gives them (psych::cohen.kappa: the same
    kappas and unweighted CI)."""
    a, b = np.asarray(a, int), np.asarray(b, int)  # type: ignore[assignment]
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("Cohen's kappa needs two equally long, non-empty lists of ratings")
    if weights == "none":
        w = np.eye(k)
    elif weights == "linear":
        i, j = np.indices((k, k))
        w = 1 - np.abs(i - j) / (k - 1)
    else:
        raise ValueError(f"weights must be 'none' or 'linear', not {weights!r}")
    n = len(a)
    p = np.zeros((k, k))
    np.add.at(p, (a, b), 1.0)
    p /= n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po = float(np.sum(w * p))
    pe = float(np.sum(w * np.outer(rows, cols)))
    if pe >= 1:
        nan = float("nan")
        return KappaResult(statistic=name or "Cohen's kappa", value=nan, ci_low=nan, ci_high=nan, n=n,
                           ci_method="undefined: both readers used one category only")  # fmt: skip
    kappa = (po - pe) / (1 - pe)
    # Fleiss, Cohen & Everitt (1969), eq. 14: the variance of kappa-hat with the observed cells.
    w_row = w @ cols  # w̄_i. = sum_j p.j w_ij
    w_col = rows @ w  # w̄_.j = sum_i pi. w_ij
    term = (w - (w_row[:, None] + w_col[None, :]) * (1 - kappa)) ** 2
    var = (np.sum(p * term) - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2)
    z = float(sps.norm.ppf(0.5 + level / 2))
    se = float(np.sqrt(max(var, 0.0)))
    return KappaResult(
        statistic=name or ("linear-weighted Cohen's kappa" if weights == "linear" else "Cohen's kappa"),
        value=float(kappa), ci_low=float(kappa - z * se), ci_high=float(kappa + z * se), n=n,
        ci_method="large-sample variance (Fleiss, Cohen & Everitt 1969)",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The readers of a cohort


def reader_agreement(
    reads: pd.DataFrame, *, seed: int = 0, n_bootstrap: int = 1000, label_rule: str = "", ties: str = ""
) -> ReaderAgreement:
    """Agreement of the readers whose reads are the columns of `reads` (index patient_id; cells
    parsed by `parse_read`, None = not read).

    Fleiss' kappa uses the patients every reader read; each pair uses the patients both read. The
    four-category statistics need category reads (a reader who gave only 1/0 calls has none)."""
    readers = [str(c) for c in reads.columns]
    complete = reads.dropna(how="any")
    cat_complete = complete[complete.map(lambda v: isinstance(v, str)).all(axis=1)]
    fleiss_cat = fleiss_resp = None
    if len(readers) >= 2 and len(cat_complete) >= 2:
        codes = cat_complete.map(CATEGORIES.index).to_numpy(int)
        fleiss_cat = fleiss_kappa_ci(codes, len(CATEGORIES), n_bootstrap=n_bootstrap, seed=seed,
                                     name="Fleiss' kappa, mRECIST categories")  # fmt: skip
    if len(readers) >= 2 and len(complete) >= 2:
        calls = complete.map(responder_call).to_numpy(int)
        fleiss_resp = fleiss_kappa_ci(calls, 2, n_bootstrap=n_bootstrap, seed=seed + 1,
                                      name="Fleiss' kappa, responder calls")  # fmt: skip
    pairs = []
    for i, ra in enumerate(readers):
        for rb in readers[i + 1 :]:
            both = reads[[ra, rb]].dropna(how="any")
            if len(both) < 2:
                continue
            ca, cb = both[ra].map(responder_call).to_numpy(int), both[rb].map(responder_call).to_numpy(int)
            agree = int(np.sum(ca == cb))
            lo, hi = wilson_ci(agree, len(both))
            cats = both[both.map(lambda v: isinstance(v, str)).all(axis=1)]
            weighted = (
                cohen_kappa(cats[ra].map(CATEGORIES.index), cats[rb].map(CATEGORIES.index), len(CATEGORIES),
                            weights="linear")
                if len(cats) >= 2 else None
            )  # fmt: skip
            pairs.append(PairAgreement(
                reader_a=ra, reader_b=rb, n=len(both), weighted_kappa=weighted,
                kappa_responder=cohen_kappa(ca, cb, 2, name="Cohen's kappa, responder calls"),
                agreement=agree / len(both), agreement_ci=(lo, hi),
            ))  # fmt: skip
    counts = {r: int(reads[r].notna().sum()) for r in readers}
    return ReaderAgreement(
        readers=tuple(readers), reads_per_reader=counts, n_patients=int(len(reads)),
        n_read_by_all=int(len(complete)), fleiss_categories=fleiss_cat, fleiss_responder=fleiss_resp,
        pairs=tuple(pairs), label_rule=label_rule, ties=ties,
    )  # fmt: skip
