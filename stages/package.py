"""package: the best model + labels + artist metadata -> models/bento/ (a BentoML model file).

Reads models/best.json, the model it names, data/processed/classes.json, data/raw/artists.csv,
reports/evaluate/<best>/predictions.csv (validation rows, for the "unknown" threshold),
models/genre/{model.keras,genres.json} and params.yaml. Writes:

- models/bento/artist-id.tar          the exported BentoML model (``make bento`` imports it)
- models/bento/artist_id.json         the serving metadata inside it, readable without BentoML
- models/bento/artist-id-genre.tar    the genre model (models/genre/), same version
- models/bento/genres.json            its genres, thresholds and metrics
- reports/package/summary.json        tag, threshold, validation precision/coverage (metrics)

BentoML's store is a temporary directory for the duration of the stage: a DVC stage writes
only its declared outputs, never ``~/bentoml``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path

from artist_id import stage
from artist_id.config import PackageParams, load_params
from artist_id.genre_serving import GENRE_METADATA_FILE, GenreMetadata, GenreMetadataError

BEST = Path("models/best.json")
CLASSES = Path("data/processed/classes.json")
ARTISTS = Path("data/raw/artists.csv")
OUT = Path("models/bento")
REPORT = Path("reports/package/summary.json")
EXPORT_NAME = "artist-id.tar"
GENRE_DIR = Path("models/genre")

log = logging.getLogger("artist_id.stages.package")


def main() -> None:
    params = load_params()
    pp = params.package
    # Before bentoml is imported: its store lives here for the stage's lifetime only.
    with tempfile.TemporaryDirectory(prefix="artist-id-bentoml-") as home:
        os.environ["BENTOML_HOME"] = home
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        run(pp, params.base.image_size)


def run(pp: PackageParams, image_size: int) -> None:
    from artist_id import packaging as pk
    from artist_id import serving_metadata as sm

    stage.expect(sm.MetadataError, GenreMetadataError)  # PackagingError included
    best = stage.read_json(BEST)
    name = best["model"]
    model_path = Path(best["path"])
    classes = stage.read_json(CLASSES)["classes"]
    predictions = Path("reports/evaluate") / name / "predictions.csv"
    if not model_path.is_file():
        raise stage.StageError(f"{model_path} (named by {BEST}) not found: run `dvc repro`")

    top1, correct = pk.validation_confidence(predictions, classes)
    threshold = pk.unknown_threshold(top1, correct, pp.unknown_precision)
    weights_sha256 = pk.check_model(model_path, image_size, len(classes))
    meta = sm.ServingMetadata(
        model=name,
        image_size=image_size,
        classes=pk.artist_infos(ARTISTS, classes),
        unknown=threshold,
        metrics={"chosen_by": best["chosen_by"], "val": best["val"], "test": best["test"]},
        limits=sm.Limits(
            max_bytes=pp.max_bytes,
            max_pixels=pp.max_pixels,
            formats=tuple(f.upper() for f in pp.formats),
            max_request_bytes=pp.max_request_bytes,
            max_images=pp.max_images,
            read_timeout_s=pp.read_timeout_s,
            pixel_budget=pp.pixel_budget,
        ),
        default_top_k=min(pp.top_k, len(classes)),
        provenance={
            "params_sha256": pk.params_hash(Path("params.yaml")),
            "git": pk.git_revision(),
        },
        model_sha256=pk.sha256_file(model_path),
        weights_sha256=weights_sha256,
    )
    genre = genre_metadata(image_size)
    version = pk.pair_version(meta, genre)
    tag = pk.save_bento_model(model_path, meta, version=version)
    genre_tag = pk.save_genre_bento_model(GENRE_DIR / "model.keras", genre, version)
    out = stage.fresh_dir(OUT)
    pk.export_bento_model(tag, out / EXPORT_NAME)
    pk.export_bento_model(genre_tag, out / pk.GENRE_EXPORT_NAME)
    stage.write_json(out / GENRE_METADATA_FILE, {"tag": genre_tag, **genre.to_json()})
    (out / sm.METADATA_FILE).write_text(
        json.dumps({"tag": tag, **meta.to_json()}, indent=2, sort_keys=True, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    stage.write_json(
        REPORT,
        {
            "tag": tag,
            "genre_tag": genre_tag,
            "genres": len(genre.genres),
            "model": name,
            "unknown_threshold": threshold.threshold,
            "unknown_target_precision": threshold.target_precision,
            "val_precision_at_threshold": threshold.val_precision,
            "val_coverage_at_threshold": threshold.val_coverage,
            "threshold_reached": threshold.reached,
        },
    )
    log.info(
        "packaged %s as %s -> %s (+ %d genres as %s): unknown below p=%.3f (val precision "
        "%.3f on %.0f%% of %d images)",
        name,
        tag,
        out / EXPORT_NAME,
        len(genre.genres),
        genre_tag,
        threshold.threshold,
        threshold.val_precision,
        100 * threshold.val_coverage,
        threshold.val_images,
    )


def genre_metadata(image_size: int) -> GenreMetadata:
    """The genre model's serving metadata, its Keras file checked (safe mode, shapes)."""
    from artist_id import packaging as pk

    path = GENRE_DIR / "model.keras"
    if not path.is_file():
        raise stage.StageError(f"{path} not found: run `dvc repro genre`")
    genre = GenreMetadata.from_genre_stage(stage.read_json(GENRE_DIR / "genres.json"))
    if genre.image_size != image_size:
        raise stage.StageError(
            f"{path} takes {genre.image_size} px images, the artist model {image_size}: "
            "run `dvc repro genre`"
        )
    digest = pk.check_model(path, image_size, len(genre.genres))
    return dataclasses.replace(genre, weights_sha256=digest, model_sha256=pk.sha256_file(path))


if __name__ == "__main__":
    stage.run("package", main)
