"""The package stage's work: labels, artist metadata, the "unknown" threshold, BentoML export.

The package stage turns the pipeline's outputs into one BentoML model holding ``model.keras``
(copied byte for byte from the chosen model) and ``artist_id.json``, the
:class:`~artist_id.serving_metadata.ServingMetadata` the service reads: class names in label
order with each artist's genre / nationality / years, the input size, the validation and test
metrics, the "unknown" threshold, the request limits and the provenance (params hash, git
revision). Those types and their reader live in :mod:`artist_id.serving_metadata`, all the
service needs; this module is the stage's side and is not part of the Bento. The BentoML
model is then exported to a single file that DVC tracks, so a clone with the DVC cache can
rebuild the service (``make bento``) without re-training.

Nothing here is pickled: BentoML's ``custom_objects`` (cloudpickle) are not used, and the
Keras file is loaded only with ``safe_mode=True``.

The genre model (``models/genre/``) is packaged beside it as a second BentoML model,
``artist-id-genre``, with its ``genres.json`` (:mod:`artist_id.genre_serving`). Both models
get one version, :func:`pair_version`, computed from the content of both: the Bento serves
them as a pair, and the service refuses to start on two models of different versions.

Run as ``python -m artist_id.packaging import models/bento/artist-id.tar
models/bento/artist-id-genre.tar`` to import the exported models into the local BentoML store
(idempotent; used by ``make bento``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from artist_id.genre_serving import GENRE_METADATA_FILE, GENRE_MODEL_NAME, GenreMetadata
from artist_id.serving_metadata import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    ArtistInfo,
    MetadataError,
    ServingMetadata,
    UnknownThreshold,
)

log = logging.getLogger(__name__)


class PackagingError(MetadataError):
    """The pipeline outputs cannot be packaged; the message says what to fix."""


# ------------------------------------------------------------------------------ artists.csv


def _key(name: str) -> str:
    """Comparison key for artist names: NFC, collapsed whitespace, case-folded."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def artist_infos(artists_csv: Path, classes: Sequence[str]) -> tuple[ArtistInfo, ...]:
    """Genre, nationality and years of each class, in label order, from artists.csv."""
    import pandas as pd  # not at module level: the service imports this module

    frame = pd.read_csv(artists_csv, dtype=str, keep_default_na=False)
    missing_cols = {"name", "genre", "nationality", "years"} - set(frame.columns)
    if missing_cols:
        raise PackagingError(f"{artists_csv} lacks column(s) {sorted(missing_cols)}")
    by_key: dict[str, dict[str, str]] = {}
    for row in frame.to_dict(orient="records"):
        by_key.setdefault(_key(row["name"]), row)
    infos = []
    for name in classes:
        row = by_key.get(_key(name))
        if row is None:
            raise PackagingError(f"class {name!r} is not an artist of {artists_csv}")
        infos.append(
            ArtistInfo(
                artist=name,
                genre=row["genre"].strip(),
                nationality=row["nationality"].strip(),
                # The real csv mixes "1884 - 1920" and "1853 – 1890" (en dash).
                years=row["years"].strip().replace("\u2013", "-"),
            )
        )
    return tuple(infos)


# --------------------------------------------------------------------------- the threshold


def validation_confidence(
    predictions_csv: Path, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 probability and correctness of each validation prediction of the evaluate stage."""
    from artist_id import predictions

    try:
        frame = predictions.read(predictions_csv)
    except predictions.PredictionsError as exc:
        raise PackagingError(str(exc)) from None
    val = frame[frame["split"] == "val"]
    if val.empty:
        raise PackagingError(f"{predictions_csv} has no validation rows (split == 'val')")
    unknown = sorted(set(val["label"]) - set(classes))
    if unknown:
        raise PackagingError(
            f"{predictions_csv}: labels {unknown} are not among the classes {list(classes)}"
        )
    top1 = val["p_predicted"].to_numpy(dtype=np.float64)
    correct = (val["predicted"] == val["label"]).to_numpy(dtype=bool)
    return top1, correct


def unknown_threshold(
    top1: np.ndarray, correct: np.ndarray, target_precision: float
) -> UnknownThreshold:
    """The lowest top-1 probability at which validation precision reaches the target.

    Candidates are the observed top-1 probabilities; at candidate ``t`` the model answers the
    images whose top-1 probability is >= ``t`` and its precision is their accuracy.
    """
    if not 0.0 < target_precision <= 1.0:
        raise PackagingError(f"unknown_precision must be in (0, 1], got {target_precision}")
    top1 = np.asarray(top1, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if top1.ndim != 1 or top1.shape != correct.shape or top1.size == 0:
        raise PackagingError("need one top-1 probability and one correctness flag per image")
    n = top1.size
    order = np.argsort(-top1, kind="stable")
    p_sorted = top1[order]
    hits = np.cumsum(correct[order])
    # For a candidate t, the answered set is every image with p >= t: the prefix of the
    # descending order up to the LAST occurrence of t (ties are answered together).
    last = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    answered = last + 1
    precision = hits[last] / answered
    ok = np.flatnonzero(precision >= target_precision - 1e-12)
    if ok.size == 0:
        log.warning(
            "no threshold reaches a validation precision of %.2f (best %.3f): every "
            "prediction below probability 1.0 will be 'unknown'",
            target_precision,
            float(precision.max()),
        )
        return UnknownThreshold(1.0, target_precision, 0.0, 0.0, n, reached=False)
    i = ok[-1]  # the lowest threshold (descending order) that reaches the target
    return UnknownThreshold(
        threshold=round(float(p_sorted[last[i]]), 6),
        target_precision=float(target_precision),
        val_precision=round(float(precision[i]), 6),
        val_coverage=round(float(answered[i] / n), 6),
        val_images=int(n),
        reached=True,
    )


# ------------------------------------------------------------------------------ provenance


def params_hash(params_yaml: Path) -> str:
    """SHA-256 of the parsed params (canonical JSON): comments and key order do not count."""
    import yaml

    raw = yaml.safe_load(params_yaml.read_text(encoding="utf-8"))
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def git_revision(cwd: Path | None = None) -> dict[str, Any]:
    """``{"rev": <HEAD sha or "unknown">, "dirty": bool | None}`` of the repository."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"rev": "unknown", "dirty": None}
    return {"rev": rev, "dirty": bool(status.strip())}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_version(meta: ServingMetadata) -> str:
    """Model version from the content, not the time or the file container.

    The weights (their digest, see :func:`artist_id.models.weights_digest`), the labels with
    their artist information, the threshold, limits and metrics: the same weights and labels
    give the same version whenever and wherever they are packaged. The provenance (commit,
    params hash) and the ``.keras`` file's own hash are left out. Lowercase hex, a valid
    BentoML tag version.
    """
    data = meta.to_json()
    data.pop("provenance", None)
    data.pop("model_sha256", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def pair_version(meta: ServingMetadata, genre: GenreMetadata) -> str:
    """One version for the artist model and the genre model served beside it.

    The content of both (as :func:`content_version`: weights digests, labels, thresholds,
    metrics; not the provenance nor the files' own hashes), so changing either gives the pair
    a new version, and both BentoML models carry it: ``artist-id:<v>``, ``artist-id-genre:<v>``.
    """
    artist = meta.to_json()
    artist.pop("provenance", None)
    artist.pop("model_sha256", None)
    genres = genre.to_json()
    genres.pop("model_sha256", None)
    canonical = json.dumps(
        {"artist": artist, "genre": genres},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------- check the model


def check_model(model_path: Path, image_size: int, num_classes: int) -> str:
    """Load the Keras file (safe mode), check its shapes; return its weights' digest."""
    from artist_id.models import ModelFileError, load_model, weights_digest

    try:
        model = load_model(model_path, image_size=image_size, num_classes=num_classes)
    except ModelFileError as exc:
        raise PackagingError(str(exc)) from exc
    return weights_digest(model)


# ------------------------------------------------------------------------ BentoML plumbing


def save_bento_model(
    model_path: Path, meta: ServingMetadata, name: str = MODEL_NAME, version: str | None = None
) -> str:
    """Create ``<name>:<version>`` in the current BentoML store; return the tag.

    ``version`` defaults to :func:`content_version` (the package stage passes the
    :func:`pair_version` it shares with the genre model). ``model.keras`` is copied byte for
    byte (no re-save). An existing tag is replaced.
    """
    import bentoml

    version = version or content_version(meta)
    tag = f"{name}:{version}"
    with contextlib.suppress(bentoml.exceptions.NotFound):
        bentoml.models.delete(tag)
    summary = {
        "model": meta.model,
        "image_size": meta.image_size,
        "classes": meta.class_names,
        "unknown_threshold": meta.unknown.threshold,
        "val_macro_f1": float(meta.metrics.get("val", {}).get("macro_f1", math.nan)),
        "test_macro_f1": float(meta.metrics.get("test", {}).get("macro_f1", math.nan)),
        "params_sha256": str(meta.provenance.get("params_sha256", "")),
        "git_rev": str(meta.provenance.get("git", {}).get("rev", "")),
    }
    labels = {"project": "artist-id", "architecture": meta.model, "framework": "keras"}
    with bentoml.models.create(tag, labels=labels, metadata=summary) as ref:
        shutil.copyfile(model_path, ref.path_of(MODEL_FILE))
        Path(ref.path_of(METADATA_FILE)).write_text(
            json.dumps(meta.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    return tag


def save_genre_bento_model(model_path: Path, genre: GenreMetadata, version: str) -> str:
    """Create ``artist-id-genre:<version>`` (the artist model's version); return the tag."""
    import bentoml

    tag = f"{GENRE_MODEL_NAME}:{version}"
    with contextlib.suppress(bentoml.exceptions.NotFound):
        bentoml.models.delete(tag)
    summary = {
        "genres": genre.names,
        "image_size": genre.image_size,
        "held_out_artists_macro_ap": _number(genre.metrics, "held_out_artists", "ap"),
        "held_out_paintings_macro_ap": _number(genre.metrics, "held_out_paintings", "ap"),
    }
    labels = {"project": "artist-id", "task": "painting-to-genres", "framework": "keras"}
    with bentoml.models.create(tag, labels=labels, metadata=summary) as ref:
        shutil.copyfile(model_path, ref.path_of(MODEL_FILE))
        Path(ref.path_of(GENRE_METADATA_FILE)).write_text(
            json.dumps(genre.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    return tag


def _number(metrics: dict[str, Any], *keys: str) -> float:
    value: Any = metrics
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def export_bento_model(tag: str, path: Path) -> Path:
    """Export a model of the current store to one uncompressed tar file.

    BentoML's default ``.bentomodel`` is an xz tar: compressing the already zipped
    ``model.keras`` again saves under 10 % and takes about a minute for VGG16 on 2 cores.
    """
    import bentoml

    if path.suffix != ".tar":
        raise PackagingError(f"export to a .tar file, not {path.name}")
    path = path.resolve()  # BentoML resolves relative paths against "/", not the cwd
    path.parent.mkdir(parents=True, exist_ok=True)
    written = bentoml.models.export_model(tag, str(path), "tar")
    return Path(written)


def exported_tag(path: Path) -> str:
    """The ``name:version`` of an exported model, read from its ``model.yaml``."""
    import tarfile

    import yaml

    try:
        with tarfile.open(path) as tar:
            member = next(
                (m for m in tar.getmembers() if m.name.lstrip("./") == "model.yaml"), None
            )
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise PackagingError(f"{path} holds no model.yaml: not a BentoML model export")
            info = yaml.safe_load(handle.read().decode("utf-8"))
    except (OSError, tarfile.TarError) as exc:
        raise PackagingError(f"cannot read {path}: {exc}") from exc
    return f"{info['name']}:{info['version']}"


def import_bento_model(path: Path) -> str:
    """Import an exported model into the current BentoML store unless its tag is there.

    Returns the tag. The version is a content hash (:func:`content_version`), so an existing
    tag holds the same weights and labels.
    """
    import bentoml

    if not path.is_file():
        raise PackagingError(f"{path} not found: run `dvc repro package` (or `dvc pull`)")
    tag = exported_tag(path)
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        log.info("%s is already in the BentoML store (%s)", tag, existing.path)
        return tag
    model = bentoml.models.import_model(str(path.resolve()), "tar")
    log.info("imported %s into the BentoML store (%s)", model.tag, model.path)
    return str(model.tag)


GENRE_EXPORT_NAME = "artist-id-genre.tar"
"""The genre model's export, beside the artist model's (``models/bento/``)."""


def import_with_genre(path: Path) -> str:
    """Import an exported artist model and the genre model exported beside it; return the
    artist model's tag. The service needs both (they share one version)."""
    tag = import_bento_model(path)
    import_bento_model(path.with_name(GENRE_EXPORT_NAME))
    return tag


def _main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(argv) < 2 or argv[0] != "import":
        print(
            "usage: python -m artist_id.packaging import <exported model .tar> [...]",
            file=sys.stderr,
        )
        return 2
    try:
        for path in argv[1:]:
            print(import_bento_model(Path(path)))
    except PackagingError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
