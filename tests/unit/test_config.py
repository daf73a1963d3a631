"""params.yaml -> dataclasses: typos and wrong types are errors that name the key."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from artist_id.config import ConfigError, parse_params
from tests.conftest import REPO

RAW: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())


def with_change(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    node = raw
    *parents, key = path.split(".")
    for part in parents:
        node = node[part]
    node[key] = value
    return raw


def test_defaults_parse_into_frozen_dataclasses() -> None:
    params = parse_params(copy.deepcopy(RAW))
    assert params.select.balance in {"class_weight", "oversample", "undersample", "none"}
    assert params.sample.paintings == tuple(RAW["sample"]["paintings"])
    assert params.train.model("vgg16").weights == RAW["train"]["vgg16"]["weights"]
    with pytest.raises(AttributeError):
        params.base.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("select.min_paintngs", 3, r"params\.select: unknown key\(s\) min_paintngs"),
        ("select.balance", "smote", r"params\.select\.balance: 'smote' is not one of"),
        ("base.seed", "42", r"params\.base\.seed: expected an integer"),
        ("base.image_size", True, r"params\.base\.image_size: expected an integer"),
        ("augment.zoom", "a lot", r"params\.augment\.zoom: expected a number"),
        ("sample.paintings", 5, r"params\.sample\.paintings: expected a list"),
        ("select.val_fraction", 0.9, r"val_fraction and test_fraction"),
        ("train.vgg16.optimiser", "adam", r"params\.train\.vgg16: unknown key\(s\) optimiser"),
        ("train.models", ["cnn_small", "alexnet"], r"train\.models: unknown model 'alexnet'"),
    ],
)
def test_mistakes_name_the_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params(with_change(path, value))


def test_missing_key_is_an_error() -> None:
    raw = copy.deepcopy(RAW)
    del raw["ingest"]["max_side"]
    with pytest.raises(ConfigError, match=r"params\.ingest: missing key 'max_side'"):
        parse_params(raw)


def test_int_is_accepted_where_a_number_is_expected() -> None:
    params = parse_params(with_change("augment.zoom", 0))
    assert params.augment.zoom == 0.0 and isinstance(params.augment.zoom, float)
