"""What the service needs of the genre model: its packaged metadata and the ``genres`` answer.

The package stage stores the genre model as a second BentoML model (``artist-id-genre``) next to
the artist model, with the same version: the two are built, exported and served as one pair.
Its ``genres.json`` (:class:`GenreMetadata`) holds the genre names in output order, the
threshold of each (chosen on validation by the genre stage), both evaluations' metrics and how
many genres to list when none passes its threshold.

Shipped in the Bento with :mod:`artist_id.serving_metadata` (no package-stage code in it);
kept apart from the service so that the service only adds one field to its answers and one
section to ``/metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GENRE_MODEL_NAME = "artist-id-genre"
"""Name of the genre model in the BentoML store; its version is the artist model's."""
GENRE_METADATA_FILE = "genres.json"
GENRE_FORMAT = 1


class GenreMetadataError(ValueError):
    """The packaged genre metadata is missing, malformed or does not fit the model."""


@dataclass(frozen=True)
class GenreInfo:
    """One output of the genre model: its name, threshold and evaluation per genre."""

    genre: str
    threshold: float
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation -> ap, f1, prior_ap


@dataclass(frozen=True)
class GenreMetadata:
    """Everything the service needs besides the genre model's Keras file."""

    genres: tuple[GenreInfo, ...]
    image_size: int
    fallback_top_k: int
    metrics: dict[str, Any]  # evaluation -> macro metrics
    excluded: tuple[str, ...] = ()  # genres the model leaves out (too few artists/paintings)
    weights_sha256: str = ""
    model_sha256: str = ""
    format: int = GENRE_FORMAT

    def __post_init__(self) -> None:
        if not self.genres:
            raise GenreMetadataError("the genre model has no genre")
        if self.fallback_top_k < 1:
            raise GenreMetadataError("fallback_top_k must be at least 1")
        if not all(0.0 <= g.threshold <= 1.0 for g in self.genres):
            raise GenreMetadataError("genre thresholds must be probabilities")

    @property
    def names(self) -> list[str]:
        return [g.genre for g in self.genres]

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([g.threshold for g in self.genres], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["excluded"] = list(self.excluded)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenreMetadata:
        if data.get("format") != GENRE_FORMAT:
            raise GenreMetadataError(
                f"{GENRE_METADATA_FILE} has format {data.get('format')!r}, this code reads "
                f"{GENRE_FORMAT}: re-run the package stage"
            )
        return cls(
            genres=tuple(GenreInfo(**g) for g in data["genres"]),
            image_size=int(data["image_size"]),
            fallback_top_k=int(data["fallback_top_k"]),
            metrics=dict(data["metrics"]),
            excluded=tuple(data.get("excluded", ())),
            weights_sha256=str(data.get("weights_sha256", "")),
            model_sha256=str(data.get("model_sha256", "")),
            format=int(data["format"]),
        )

    @classmethod
    def from_genre_stage(cls, genres_json: Mapping[str, Any]) -> GenreMetadata:
        """From ``models/genre/genres.json`` (what the genre stage writes)."""
        names = list(genres_json["genres"])
        per_genre = {
            evaluation: genres_json["metrics"][evaluation]["per_genre"]
            for evaluation in genres_json["metrics"]
        }
        return cls(
            genres=tuple(
                GenreInfo(
                    genre=name,
                    threshold=float(genres_json["thresholds"][name]),
                    metrics={
                        evaluation: table[name]
                        for evaluation, table in per_genre.items()
                        if name in table
                    },
                )
                for name in names
            ),
            image_size=int(genres_json["image_size"]),
            fallback_top_k=int(genres_json["fallback_top_k"]),
            metrics={
                evaluation: dict(values["macro"])
                for evaluation, values in genres_json["metrics"].items()
            },
            excluded=tuple(genres_json.get("excluded", ())),
        )


def load_genre_metadata(path: str | Path) -> GenreMetadata:
    """Read ``genres.json`` from a BentoML model directory (or anywhere)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenreMetadataError(f"cannot read {path}: {exc}") from exc
    return GenreMetadata.from_json(data)


# ----------------------------------------------------------------------------------- answer


def genres_answer(proba: Sequence[float] | np.ndarray, meta: GenreMetadata) -> list[dict[str, Any]]:
    """The ``genres`` field of one answer: every genre at or above its threshold, most
    probable first; when none is, the ``fallback_top_k`` most probable, flagged as below.

    Each entry is ``{"genre", "probability", "above_threshold"}``. Independent of the artist
    answer, so a painting whose artist is "unknown" still gets its genres.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (len(meta.genres),):
        raise GenreMetadataError(f"{p.shape} genre probabilities for {len(meta.genres)} genres")
    above = p >= meta.thresholds
    order = np.argsort(-p, kind="stable")
    chosen = [int(i) for i in order if above[i]] or [int(i) for i in order[: meta.fallback_top_k]]
    return [
        {
            "genre": meta.genres[i].genre,
            "probability": round(float(p[i]), 6),
            "above_threshold": bool(above[i]),
        }
        for i in chosen
    ]


def genres_metadata(meta: GenreMetadata, tag: str) -> dict[str, Any]:
    """The ``genres`` section of ``GET /metadata``."""
    return {
        "model": {
            "tag": tag,
            "version": tag.partition(":")[2],
            "sha256": meta.model_sha256,
            "weights_sha256": meta.weights_sha256,
        },
        "genres": [
            {"genre": g.genre, "threshold": g.threshold, "metrics": g.metrics} for g in meta.genres
        ],
        "fallback_top_k": meta.fallback_top_k,
        "metrics": meta.metrics,
        "excluded": list(meta.excluded),
        "note": (
            "held_out_artists is what to expect for a painter the model never saw; "
            "held_out_paintings is for painters it was trained on"
        ),
    }
