"""The base of the study's typed results: frozen dataclasses that become JSON-ready dicts with
`to_dict()` and come back with `from_dict()`, driven by their type annotations.

`srgan3d.study.stats` (AUC, DeLong, calibration, operating point) and `srgan3d.study.results` (the
result tree of `srgan3d evaluate`) both build on it. Imports numpy and pandas only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, TypeAlias, TypeVar

import numpy as np
import pandas as pd

R = TypeVar("R", bound="Result")

#: A JSON value: the one type for metadata that is free-form by nature (a cohort's card, a
#: classifier's hyperparameters), whose keys the study does not interpret.
JsonValue: TypeAlias = "str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]"


def plain(v: Any) -> Any:
    """A value as JSON-ready Python: results by `to_dict`, data frames as column lists, numpy
    scalars and arrays as numbers and lists, tuples as lists."""
    if isinstance(v, Result):
        return v.to_dict()
    if isinstance(v, pd.DataFrame):
        return {str(k): plain(v[k].to_numpy()) for k in v.columns}
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def build(tp: Any, v: Any) -> Any:
    """`v` (from JSON) as the annotated type `tp`: results rebuilt, tuples made tuples, column
    dicts made data frames."""
    if v is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return build(inner[0], v) if len(inner) == 1 else v
    if isinstance(tp, type) and issubclass(tp, Result):
        return tp.from_dict(v)
    if tp is pd.DataFrame:
        return pd.DataFrame(v)
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(build(item, x) for x in v)
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: build(item, x) for k, x in v.items()}
    return v


class Result:
    """Base of the result objects (frozen dataclasses): generic `to_dict` / `from_dict`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        # JsonValue is free-form: kept as read (`build` of `object` returns the value itself)
        hints = typing.get_type_hints(cls, localns={"pd": pd, "JsonValue": object})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: build(hints[k], v) for k, v in d.items()})


def rows_of(cls: type[R], table: pd.DataFrame) -> tuple[R, ...]:
    """A table's rows as results of type `cls` (its columns must be the type's fields)."""
    return tuple(cls.from_dict({str(k): plain(v) for k, v in rec.items()}) for rec in table.to_dict(orient="records"))
