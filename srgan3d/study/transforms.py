"""Continuous clinical predictors as a study should model them: heavily skewed positive values
(a lab value such as AFP spans 1 to 100,000 ng/mL) on log10, by a documented rule or as the user
says (`evaluate --transform afp_ng_ml=log10|none`).

The rule (`SKEW_LIMIT`): a clinical variable whose values are all positive, with more than two
distinct values, and whose sample skewness (adjusted Fisher-Pearson, as pandas and R's
e1071::skewness type 2) exceeds 2 is modelled as log10(variable). The rule looks at the study's
patients' values only, never their outcomes. A transformed variable keeps its meaning in its
name: the models, tables and report call it ``log10(name)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from srgan3d.study.config import TRANSFORMS, parse_transforms
from srgan3d.study.results import TransformRecord

__all__ = ["SKEW_LIMIT", "TRANSFORMS", "apply_transforms", "choose_transforms", "parse_transforms", "transformed_name"]

#: Skewness above which a positive clinical variable is modelled on log10.
SKEW_LIMIT = 2.0


def transformed_name(column: str) -> str:
    return f"log10({column})"


def choose_transforms(clin: pd.DataFrame, asked: Mapping[str, str]) -> tuple[TransformRecord, ...]:
    """One record per clinical column: how it is modelled and why (the rule, or the user's
    choice). Asking log10 of a column with a value <= 0, or a transform of a column that is not a
    clinical variable, is an error naming the column."""
    unknown = [c for c in asked if c not in clin.columns]
    if unknown:
        raise ValueError(f"--transform names {', '.join(unknown)}, which is not among the clinical variables "
                         f"({', '.join(clin.columns)})")  # fmt: skip
    records = []
    for col in clin.columns:
        x = pd.to_numeric(clin[col], errors="coerce").to_numpy(float)
        positive, distinct = bool(np.all(x > 0)), int(len(np.unique(x[np.isfinite(x)])))
        skew = float(pd.Series(x).skew()) if distinct > 2 else float("nan")
        if col in asked:
            how = asked[col]
            if how == "log10" and not positive:
                raise ValueError(f"--transform {col}=log10: {col} has values <= 0 (smallest {np.nanmin(x):g}); "
                                 "log10 needs positive values")  # fmt: skip
            why = f"as asked (--transform {col}={how})"
        elif positive and distinct > 2 and skew > SKEW_LIMIT:
            how, why = "log10", f"skewness {skew:.2f} > {SKEW_LIMIT:g}, all values positive"
        else:
            how = "none"
            why = ("two values or fewer" if distinct <= 2 else
                   f"skewness {skew:.2f}" + ("" if positive else ", not all values positive"))  # fmt: skip
        records.append(TransformRecord(variable=col, transform=how, reason=why,
                                       skewness=None if np.isnan(skew) else round(skew, 4),
                                       modelled_as=transformed_name(col) if how == "log10" else col))  # fmt: skip
    return tuple(records)


def apply_transforms(df: pd.DataFrame, records: Sequence[TransformRecord]) -> pd.DataFrame:
    """`df` with a ``log10(name)`` column beside each column modelled on log10; the original stays
    (the cohort summary shows the variable in the units it was measured in)."""
    out = df.copy()
    for r in records:
        if r.transform == "log10" and r.variable in out.columns:
            out[r.modelled_as] = np.log10(pd.to_numeric(out[r.variable], errors="coerce").astype(float))
    return out
