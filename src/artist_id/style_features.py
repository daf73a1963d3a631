"""The genre and periods stages' view of the feature store: style statistics of every painting.

The ``features`` stage (:mod:`artist_id.features`) runs the frozen VGG16 once per image and
keeps, for every usable painting of ``data/raw`` (its ``paintings`` consumer, all artists), the
per-channel means and standard deviations of the ``style_stats`` taps: the texture statistics
the ``style_stats`` artist model classifies from (:class:`artist_id.models.ChannelStats`).
:func:`paintings_statistics` reads those rows for the genre and periods stages, after checking
that they come from the trunk the genre model is built on (:class:`TrunkSpec`: the
``train.style_stats`` weights, taps and working size, at ``base.image_size``), and names each
statistic. :func:`build_trunk` builds that trunk for the saved genre model.

The store squares each painting as the service squares an upload (centre crop and resize with
:func:`artist_id.images.fit_square` to the model input size), so a genre model trained on the
stored statistics sees what the service computes for an upload.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artist_id.config import Params

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["image_id", "artist", "path"]

# Channels of each VGG16 block (the layers of one block share them).
VGG16_CHANNELS = {"block1": 64, "block2": 128, "block3": 256, "block4": 512, "block5": 512}


class FeaturesError(ValueError):
    """The stored statistics are missing or come from another trunk; says what to re-run."""


@dataclass(frozen=True)
class TrunkSpec:
    """The ``style_stats`` trunk: weights, tapped layers, model input and working size.

    ``image_size`` is the model input (the service's input size); ``stats_image_size`` the size
    the trunk works at inside the model (``None``: the same).
    """

    weights: str
    layers: tuple[str, ...]
    image_size: int
    stats_image_size: int | None = None

    @classmethod
    def from_params(cls, params: Params) -> TrunkSpec:
        """The ``style_stats`` trunk of ``params`` (what the feature store's paintings use)."""
        ss = params.train.style_stats
        return cls(ss.weights, ss.layers, params.base.image_size, ss.image_size)

    def model_spec(self, num_classes: int = 2) -> Any:
        """The :class:`artist_id.models.ModelSpec` of a ``style_stats`` model on this trunk."""
        from artist_id.models import ModelSpec

        return ModelSpec(
            name="style_stats",
            image_size=self.image_size,
            num_classes=num_classes,
            weights=self.weights,
            layers=self.layers,
            stats_image_size=self.stats_image_size,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = list(self.layers)
        return data


def tapped_layers(spec: TrunkSpec) -> tuple[str, ...]:
    """The VGG16 layers the trunk taps, in network order (the statistics' order)."""
    return tuple(spec.model_spec().style_layers)


def feature_names(layers: Sequence[str]) -> list[str]:
    """One name per statistic, in the trunk's output order: ``block3_conv3/std/17``.

    :class:`~artist_id.models.ChannelStats` emits a tap's channel means, then its stds; taps
    are concatenated in network order.
    """
    names: list[str] = []
    for layer in layers:
        channels = VGG16_CHANNELS[layer.split("_")[0]]
        for stat in ("mean", "std"):
            names.extend(f"{layer}/{stat}/{c}" for c in range(channels))
    return names


def build_trunk(spec: TrunkSpec) -> Any:
    """The frozen trunk (image -> statistics) of a ``style_stats`` model on ``spec``."""
    from artist_id.models import build_model, split_trunk_head

    trunk, _head = split_trunk_head(build_model(spec.model_spec()))
    return trunk


def load_square(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """One image file as the model's uint8 input: safe decode, centre crop, resize."""
    from artist_id import images

    return np.asarray(images.fit_square(images.decode_file(path).image, size), dtype=np.uint8)


# ------------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class StyleFeatures:
    """Statistics of every usable painting with the rows they belong to."""

    index: pd.DataFrame  # image_id, artist, path (sorted by artist, image_id)
    stats: np.ndarray  # (n, n_features) float32, aligned with index
    spec: TrunkSpec
    taps: tuple[str, ...]  # the tapped layers in network order: the statistics' order

    @property
    def names(self) -> list[str]:
        return feature_names(self.taps)


def usable_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest's ok rows (``image_id``, ``artist``, ``path``), sorted by artist and id."""
    ok = manifest[manifest["status"] == "ok"]
    if ok.empty:
        raise FeaturesError("the manifest lists no usable image")
    frame = ok[INDEX_COLUMNS].sort_values(["artist", "image_id"], kind="stable")
    return frame.reset_index(drop=True)


def paintings_statistics(
    manifest: pd.DataFrame, spec: TrunkSpec, root: Path | None = None
) -> StyleFeatures:
    """The stored statistics of every usable painting of ``manifest`` (the store's
    ``paintings``), checked to come from ``spec``'s trunk and taps.

    Raises :class:`FeaturesError` naming what to re-run when the store is missing, holds
    another trunk (weights file, sizes) or other taps, or lacks a painting.
    """
    from artist_id import features

    root = features.ROOT if root is None else root
    try:
        stored = features.open_features(features.PAINTINGS, root)
        expected = features.trunk_spec(spec.weights, spec.image_size, spec.stats_image_size)
    except features.FeatureStoreError as exc:
        raise FeaturesError(str(exc)) from exc
    if expected is None:
        raise FeaturesError(
            "train.style_stats.weights is none: the feature store keeps no random trunk, and "
            "genre and periods read their statistics from it; use hed-bsds500 or imagenet"
        )
    layers = tapped_layers(spec)
    taps = tuple(f"stats:{layer}" for layer in layers)
    if stored.trunk.get("key") != expected.key or tuple(stored.style_taps) != taps:
        raise FeaturesError(
            f"{root / features.PAINTINGS} holds statistics of another trunk or other taps "
            f"(stored {dict(stored.trunk)} {list(stored.style_taps)}, wanted {expected.describe()} "
            f"{list(taps)}): run `dvc repro features`"
        )
    index = usable_images(manifest)
    try:
        stats = stored.rows(list(index["path"]), taps=taps)
    except features.FeatureStoreError as exc:
        raise FeaturesError(str(exc)) from exc
    return StyleFeatures(index=index, stats=stats, spec=spec, taps=layers)
