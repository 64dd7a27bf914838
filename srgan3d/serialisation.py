"""The one JSON serialiser of the project: typed records (dataclasses) that become JSON-ready
dicts with `to_dict()` and come back with `from_dict()`, driven by their type annotations, with
one check that refuses unknown keys.

The SR wing's configs (`GeneratorConfig`, `TrainConfig`, `ThroughPlaneConfig`), the benchmark's
and the demo's results, the study's configs and its whole result tree all build on it. Imports
numpy only; a pandas data frame (a study table) is handled when pandas is already loaded.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

R = TypeVar("R", bound="Record")

#: A JSON value: the one type for metadata that is free-form by nature (a cohort's card, a
#: classifier's hyperparameters), whose keys the project does not interpret.
JsonValue: TypeAlias = "str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]"


def plain(v: Any) -> Any:
    """A value as JSON-ready Python: records by `to_dict`, data frames as column lists, numpy
    scalars and arrays as numbers and lists, tuples as lists."""
    if isinstance(v, Record):
        return v.to_dict()
    pd = sys.modules.get("pandas")  # nothing is a data frame unless pandas is loaded
    if pd is not None and isinstance(v, pd.DataFrame):
        return {str(k): plain(v[k].to_numpy()) for k in v.columns}
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def build(tp: Any, v: Any) -> Any:
    """`v` (from JSON) as the annotated type `tp`: records rebuilt, tuples made tuples, column
    dicts made data frames."""
    if v is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return build(inner[0], v) if len(inner) == 1 else v
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(v)
    if isinstance(tp, type) and tp.__name__ == "DataFrame" and tp.__module__.startswith("pandas"):
        return tp(v)
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(build(item, x) for x in v)
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: build(item, x) for k, x in v.items()}
    return v


class Record:
    """Base of the typed records (dataclasses): `to_dict` / `from_dict` by their annotations."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any]) -> R:
        """The record from its dict; a key it has no field for raises ValueError naming the key
        and the fields there are (the one unknown-key check)."""
        check_keys(cls, d)
        # JsonValue is free-form: kept as read (`build` of `object` returns the value itself)
        hints = typing.get_type_hints(cls, localns={"JsonValue": object})
        return cls(**{k: build(hints[k], v) for k, v in d.items()})


def check_keys(cls: type, d: Mapping[str, Any]) -> None:
    """Raise ValueError when `d` has keys that are not fields of the dataclass `cls`."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)}; its keys are {', '.join(names)}")


def rows_of(cls: type[R], table: pd.DataFrame) -> tuple[R, ...]:
    """A data frame's rows as records of type `cls` (its columns must be the type's fields)."""
    return tuple(cls.from_dict({str(k): plain(v) for k, v in rec.items()}) for rec in table.to_dict(orient="records"))
