"""Compare two results.json files number by number (for refactors that must not move a number).

    python tools/compare_results.py BEFORE.json AFTER.json [--tol 1e-12]

Prints every path whose value differs (numbers beyond the tolerance, anything else when unequal),
ignoring the creation time; exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any


def differences(a: Any, b: Any, tol: float, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'before' if k in a else 'after'}" for k in set(a) ^ set(b)]
        for k in sorted(set(a) & set(b)):
            if k != "created":
                out += differences(a[k], b[k], tol, f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items before, {len(b)} after"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, tol, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol:
            return []
        return [f"{path}: {a!r} -> {b!r}"]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--tol", type=float, default=1e-12)
    args = ap.parse_args()
    diffs = differences(json.load(open(args.before)), json.load(open(args.after)), args.tol)
    for d in diffs[:200]:
        print(d)
    print(f"{len(diffs)} difference(s) beyond {args.tol:g}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
