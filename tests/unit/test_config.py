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
        ("trian", {"epochs": 3}, r"params: unknown key\(s\) trian"),
        ("base.image_size", 24, r"base\.image_size must be at least 32"),
        ("sample.min_side", 8, r"sample\.min_side"),
        ("train.vgg16.layers", ["block1_conv1"], r"train\.vgg16\.layers is a style_stats setting"),
        ("train.cnn_small.l2", 0.1, r"train\.cnn_small\.l2 is a style_stats setting"),
        (
            "train.vgg16.covariance",
            ["block3_conv3"],
            r"train\.vgg16\.covariance is a style_stats setting",
        ),
        (
            "train.style_stats.covariance",
            ["block3_conv4"],
            r"train\.style_stats\.covariance: \['block3_conv4'\] are not VGG16 layers",
        ),
        (
            "train.style_stats.covariance",
            ["block3_conv3", "block3_conv3"],
            r"train\.style_stats\.covariance repeat a name",
        ),
        ("train.style_stats.layers", ["block9_conv1"], r"train\.style_stats\.layers: \['block9"),
        ("train.resnet50.weights", "hed-bsds500", r"train\.resnet50\.weights: 'hed-bsds500'"),
        ("train.cnn_deep.weights", "imagenet", r"train\.cnn_deep\.weights: the from-scratch"),
        ("train.vgg16.weights", "vgg.bin", r"train\.vgg16\.weights: 'vgg\.bin' is not one"),
        ("train.vgg16.dropout", 1.0, r"train\.vgg16\.dropout must be in \[0, 1\)"),
        ("train.cnn_small.epochs", 0, r"train\.cnn_small\.epochs is 0 and nothing is fine-tuned"),
        ("train.models", ["vgg16", "vgg16"], r"train\.models lists a model twice"),
        ("genre.weighting", "artists", r"params\.genre\.weighting: 'artists' is not one of"),
        ("genre.test_fraction", 0.9, r"genre: val_fraction and test_fraction"),
        ("genre.artist_folds", 1, r"genre\.artist_folds must be at least 2"),
        ("genre.c", 0, r"genre\.c must be positive"),
        ("periods.anchor", "middle", r"params\.periods\.anchor: 'middle' is not one of"),
        ("periods.width", 0, r"periods\.width must be at least 1 year"),
    ],
)
def test_mistakes_name_the_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params(with_change(path, value))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "adam", "c": [0.1, -1]}, r"train\.style_stats\.c: values must be > 0"),
        ({"optimizer": "lbfgs", "c": []}, r"train\.style_stats\.c: optimizer lbfgs needs one"),
        ({"optimizer": "lbfgs", "c": [0.1, 0]}, r"train\.style_stats\.c: values must be > 0"),
        ({"optimizer": "lbfgs", "c": [0.1], "dense": [64]}, r"lbfgs fits a linear head only"),
        (
            {"optimizer": "lbfgs", "c": [0.1], "trainable_trunk_layers": 2},
            r"train\.style_stats\.optimizer: lbfgs needs a frozen trunk",
        ),
    ],
)
def test_lbfgs_head_settings(changes: dict[str, Any], message: str) -> None:
    raw = copy.deepcopy(RAW)
    raw["train"]["style_stats"].update(changes)
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_lbfgs_is_for_style_stats_with_the_feature_cache() -> None:
    raw = copy.deepcopy(RAW)
    raw["train"]["style_stats"].update(optimizer="lbfgs", c=[0.01, 0.1], dense=[])
    assert parse_params(copy.deepcopy(raw)).train.style_stats.c == (0.01, 0.1)
    raw["train"]["cache_features"] = False
    with pytest.raises(ConfigError, match=r"lbfgs fits the head on stored features"):
        parse_params(copy.deepcopy(raw))
    raw["train"]["models"] = ["vgg16"]  # style_stats not trained: nothing to object to
    parse_params(copy.deepcopy(raw))
    raw = copy.deepcopy(RAW)
    raw["train"]["style_stats"].update(optimizer="adam", c=[0.01])  # c unused, as l2 with lbfgs
    assert parse_params(copy.deepcopy(raw)).train.style_stats.optimizer == "adam"
    raw["train"]["vgg16"]["optimizer"] = "lbfgs"
    with pytest.raises(ConfigError, match=r"train\.vgg16\.optimizer: lbfgs is for style_stats"):
        parse_params(raw)


def test_missing_key_is_an_error() -> None:
    raw = copy.deepcopy(RAW)
    del raw["ingest"]["max_side"]
    with pytest.raises(ConfigError, match=r"params\.ingest: missing key 'max_side'"):
        parse_params(raw)


def test_int_is_accepted_where_a_number_is_expected() -> None:
    params = parse_params(with_change("augment.zoom", 0))
    assert params.augment.zoom == 0.0 and isinstance(params.augment.zoom, float)


def test_every_default_section_has_its_dataclass() -> None:
    """No section of params.yaml is parsed loosely: each one is typed (and typo-checked)."""
    import dataclasses

    from artist_id.config import Params

    assert set(RAW) == {f.name for f in dataclasses.fields(Params)}


def test_a_per_model_zero_is_kept_not_replaced_by_the_global_value() -> None:
    from artist_id.training import schedule

    params = parse_params(
        with_change(
            "train.vgg16",
            {
                **RAW["train"]["vgg16"],
                "epochs": 0,
                "patience": 0,
                "fine_tune_layers": 1,
                "fine_tune_epochs": 2,
            },
        )
    )
    assert schedule(params.train, params.train.vgg16) == (0, 0)
    unset = parse_params(with_change("train.cnn_small", {"learning_rate": 0.001}))
    assert schedule(unset.train, unset.train.cnn_small) == (
        RAW["train"]["epochs"],
        RAW["train"]["patience"],
    )
