"""What the service reads at run time: the packaged metadata next to the Keras file.

The package stage (:mod:`artist_id.packaging`) writes ``artist_id.json`` into the BentoML model;
the service reads it back with :func:`load_metadata`. This module is all the two share, so the
Bento ships it without the package stage's code (pandas, threshold search, BentoML export).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "artist-id"
"""Name of the BentoML model (the tag is ``artist-id:<content hash>``)."""
MODEL_FILE = "model.keras"
METADATA_FILE = "artist_id.json"
METADATA_FORMAT = 2
"""Bumped whenever a field is added or changes meaning (2: read timeout and pixel budget)."""


class MetadataError(ValueError):
    """The packaged metadata is inconsistent or from another version; the message says why."""


@dataclass(frozen=True)
class ArtistInfo:
    """One class of the model, with what artists.csv says about the artist."""

    artist: str
    genre: str
    nationality: str
    years: str


@dataclass(frozen=True)
class UnknownThreshold:
    """The top-1 probability below which the service answers ``unknown: true``.

    Chosen on the validation set: the lowest top-1 probability ``t`` such that the
    predictions with top-1 probability >= ``t`` are right at least ``target_precision`` of
    the time. ``val_precision`` and ``val_coverage`` are that precision and the share of
    validation images answered (not "unknown") at ``t``; ``reached`` is False when no
    threshold reaches the target (then ``t`` is 1.0 and almost everything is "unknown").
    """

    threshold: float
    target_precision: float
    val_precision: float
    val_coverage: float
    val_images: int
    reached: bool


@dataclass(frozen=True)
class Limits:
    """What the service accepts, and how much work it takes on at once.

    Per image: ``max_bytes`` and ``max_pixels`` (from the header, before decoding) and the
    ``formats`` allowlist. Per request: ``max_request_bytes`` (the whole body),
    ``max_images`` (per ``/predict_batch``) and ``read_timeout_s`` (the whole body must arrive
    within it, or 408). Server-wide: ``pixel_budget``, the pixels being decoded at once across
    all requests (an image waits until its pixels fit).
    """

    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...]
    max_request_bytes: int
    max_images: int
    read_timeout_s: float
    pixel_budget: int

    def __post_init__(self) -> None:
        sizes = (self.max_bytes, self.max_pixels, self.max_request_bytes, self.max_images)
        if min(sizes) < 1 or self.read_timeout_s <= 0 or self.pixel_budget < 1:
            raise MetadataError(f"limits must be positive: {self}")
        if self.max_request_bytes < self.max_bytes:
            raise MetadataError(
                f"max_request_bytes ({self.max_request_bytes:,}) must be at least max_bytes "
                f"({self.max_bytes:,}), or no image of the allowed size could be sent"
            )
        if self.pixel_budget < self.max_pixels:
            raise MetadataError(
                f"pixel_budget ({self.pixel_budget:,}) must be at least max_pixels "
                f"({self.max_pixels:,}), or an image of the allowed size could never be decoded"
            )


@dataclass(frozen=True)
class ServingMetadata:
    """Everything the service needs besides the Keras file (``artist_id.json``)."""

    model: str  # architecture, e.g. "vgg16"
    image_size: int
    classes: tuple[ArtistInfo, ...]
    unknown: UnknownThreshold
    metrics: dict[str, Any]  # {"chosen_by": ..., "val": {...}, "test": {...}}
    limits: Limits
    default_top_k: int
    provenance: dict[str, Any] = field(default_factory=dict)  # params hash, git revision
    model_sha256: str = ""  # of the .keras file (integrity)
    weights_sha256: str = ""  # of the weights themselves (the content address)
    format: int = METADATA_FORMAT

    @property
    def class_names(self) -> list[str]:
        return [c.artist for c in self.classes]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["limits"]["formats"] = list(self.limits.formats)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServingMetadata:
        if data.get("format") != METADATA_FORMAT:
            raise MetadataError(
                f"{METADATA_FILE} has format {data.get('format')!r}, this code reads "
                f"{METADATA_FORMAT}: re-run the package stage"
            )
        limits = dict(data["limits"])
        limits["formats"] = tuple(limits["formats"])
        return cls(
            model=str(data["model"]),
            image_size=int(data["image_size"]),
            classes=tuple(ArtistInfo(**c) for c in data["classes"]),
            unknown=UnknownThreshold(**data["unknown"]),
            metrics=dict(data["metrics"]),
            limits=Limits(**limits),
            default_top_k=int(data["default_top_k"]),
            provenance=dict(data.get("provenance", {})),
            model_sha256=str(data.get("model_sha256", "")),
            weights_sha256=str(data.get("weights_sha256", "")),
            format=int(data["format"]),
        )


def load_metadata(path: str | os.PathLike[str]) -> ServingMetadata:
    """Read ``artist_id.json`` (from a BentoML model directory or anywhere)."""
    return ServingMetadata.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
