"""The one serialiser (`srgan3d.serialisation`): records to JSON-ready dicts and back by their
annotations, and the one unknown-key check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from srgan3d.serialisation import JsonValue, Record, check_keys, plain, rows_of


@dataclass(frozen=True)
class Leaf(Record):
    name: str
    value: float | None = None


@dataclass(frozen=True)
class Tree(Record):
    shape: tuple[int, int, int]
    leaves: tuple[Leaf, ...]
    by_set: dict[str, Leaf]
    best: Leaf | None
    table: pd.DataFrame
    card: dict[str, JsonValue] = field(default_factory=dict)
    nested: tuple[tuple[int, ...], ...] = ()


def _tree() -> Tree:
    return Tree(shape=(2, 2, 1), leaves=(Leaf("a", 0.5), Leaf("b")), by_set={"train": Leaf("t", np.float64(1.25))},
                best=None, table=pd.DataFrame({"auc": [0.7, 0.8], "n": [3, 4]}), card={"k": [1, {"x": None}]},
                nested=((1, 2), (3,)))  # fmt: skip


def test_a_record_goes_to_json_and_comes_back_equal():
    t = _tree()
    d = t.to_dict()
    text = json.dumps(d)  # JSON-ready: numpy numbers, tuples and frames made plain
    assert d["shape"] == [2, 2, 1] and d["by_set"]["train"]["value"] == 1.25 and type(d["by_set"]["train"]["value"]) is float
    assert d["table"] == {"auc": [0.7, 0.8], "n": [3, 4]} and list(d) == [f for f in Tree.__dataclass_fields__]
    back = Tree.from_dict(json.loads(text))
    assert back.shape == (2, 2, 1) and back.leaves == t.leaves and back.by_set == t.by_set and back.best is None
    assert back.nested == ((1, 2), (3,)) and back.card == t.card
    pd.testing.assert_frame_equal(back.table, t.table)
    assert back.to_dict() == d


def test_an_unknown_key_is_refused_naming_it_and_the_keys_there_are():
    with pytest.raises(ValueError, match=r"^Leaf: unknown key\(s\) colour, size; its keys are name, value$"):
        Leaf.from_dict({"name": "a", "size": 1, "colour": "red"})
    check_keys(Leaf, {"name": "a"})  # a missing key with a default is fine


def test_plain_values_and_table_rows():
    assert plain({1: (np.int64(2), np.arange(2))}) == {"1": [2, [0, 1]]}
    rows = rows_of(Leaf, pd.DataFrame({"name": ["a", "b"], "value": [1.0, 2.0]}))
    assert rows == (Leaf("a", 1.0), Leaf("b", 2.0))
