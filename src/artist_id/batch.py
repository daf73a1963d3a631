"""Label many paintings at once, without a server: the library behind ``artist-id predict``.

- :func:`load_packaged` loads the packaged model (the ``models/bento/artist-id.tar`` export the
  package stage writes, an entry of the BentoML store, or a bare ``.keras`` file with its
  labels) with the serving metadata: class names, artists.csv facts, the "unknown"
  threshold and the input limits.
- :func:`collect` expands files, folders (recursively) and ``.zip`` archives into
  :class:`Item` s, in a stable order.
- :func:`predict_items` decodes them with the service's safe decoder (:mod:`artist_id.images`)
  on a few threads while the model answers the previous batch, and yields one
  :class:`Result` per item, in input order: probabilities, or the reason the file was refused.
- :class:`CsvWriter` / :class:`JsonlWriter` write the answers.

Nothing here fails on a bad file: each gets a result with its :class:`~artist_id.images.ImageError`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from artist_id import images
from artist_id.packaging import PackagingError, exported_tag
from artist_id.serving_metadata import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    MetadataError,
    ServingMetadata,
)

log = logging.getLogger(__name__)

DEFAULT_EXPORT = Path("models/bento/artist-id.tar")
# Files a folder or an archive contributes: pictures by their extension. Formats outside the
# allowlist (GIF, TIFF...) are still read, so that they are reported, not silently skipped.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"}
)
ZIP_SEPARATOR = "!"  # "archive.zip!folder/painting.jpg"


class BatchError(ValueError):
    """The run cannot start (no model, unreadable labels...): a usage error."""


# ------------------------------------------------------------------------------ the model


@dataclass
class Packaged:
    """A loaded Keras classifier and what the service knows about it."""

    model: Any  # keras.Model
    meta: ServingMetadata | None  # None for a bare .keras file with a class list only
    classes: list[str]
    tag: str  # "artist-id:<version>", or the file name of a bare .keras file
    source: str  # where it was loaded from, for the log

    @property
    def image_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def threshold(self) -> float:
        return self.meta.unknown.threshold if self.meta else 0.0

    @property
    def limits(self) -> images.DecodeLimits:
        if self.meta is None:
            return images.DecodeLimits()
        lim = self.meta.limits
        return images.DecodeLimits(
            max_bytes=lim.max_bytes, max_pixels=lim.max_pixels, formats=lim.formats
        )

    @property
    def default_top_k(self) -> int:
        return self.meta.default_top_k if self.meta else min(3, len(self.classes))

    def predict(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """uint8 model inputs ``(n, size, size, 3)`` -> probabilities ``(n, classes)``."""
        proba = self.model.predict_on_batch(batch.astype(np.float32))
        return np.asarray(proba, dtype=np.float32)


def _load_keras(path: Path) -> Any:
    from artist_id.models import ModelFileError, load_model

    try:
        return load_model(path)
    except (ModelFileError, OSError) as exc:
        raise BatchError(str(exc)) from exc


def _check(model: Any, classes: Sequence[str], where: str) -> None:
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
        raise BatchError(f"{where}: expected square RGB input, the model takes {shape}")
    if tuple(model.output_shape[1:]) != (len(classes),):
        raise BatchError(
            f"{where}: the model has {model.output_shape[-1]} outputs for {len(classes)} classes"
        )


def _meta_from_json(text: str, where: str) -> ServingMetadata:
    try:
        return ServingMetadata.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, MetadataError) as exc:
        raise BatchError(f"{where} is not a valid {METADATA_FILE}: {exc}") from exc


def load_export(path: Path) -> Packaged:
    """The model and metadata inside an exported BentoML model (``artist-id.tar``)."""
    try:
        tag = exported_tag(path)
        with tarfile.open(path) as tar, tempfile.TemporaryDirectory() as tmp:
            members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in (MODEL_FILE, METADATA_FILE) if n not in members]
            if missing:
                raise BatchError(f"{path} lacks {missing}: not an artist-id model export")
            meta_handle = tar.extractfile(members[METADATA_FILE])
            model_handle = tar.extractfile(members[MODEL_FILE])
            assert meta_handle is not None and model_handle is not None  # regular files
            meta = _meta_from_json(meta_handle.read().decode("utf-8"), f"{path}:{METADATA_FILE}")
            # Copied by content to a file of our own: nothing of the archive's paths is used.
            local = Path(tmp) / MODEL_FILE
            with local.open("wb") as out:
                while chunk := model_handle.read(1 << 20):
                    out.write(chunk)
            model = _load_keras(local)
    except (OSError, tarfile.TarError, PackagingError) as exc:
        raise BatchError(f"cannot read the model export {path}: {exc}") from exc
    _check(model, meta.class_names, str(path))
    return Packaged(model, meta, meta.class_names, tag, str(path))


def load_store(tag: str) -> Packaged:
    """A model of the local BentoML store (``make bento`` imports the export there)."""
    import bentoml

    try:
        ref = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise BatchError(
            f"no model {tag!r} in the BentoML store: run `make bento` (or pass --model)"
        ) from exc
    meta_path = Path(ref.path_of(METADATA_FILE))
    meta = _meta_from_json(meta_path.read_text(encoding="utf-8"), str(meta_path))
    model = _load_keras(Path(ref.path_of(MODEL_FILE)))
    _check(model, meta.class_names, str(ref.tag))
    return Packaged(model, meta, meta.class_names, str(ref.tag), f"BentoML store ({ref.path})")


def load_keras_file(path: Path, labels: Path | None) -> Packaged:
    """A bare ``.keras`` file; class names from ``labels`` (classes.json or artist_id.json)."""
    candidates = [labels] if labels else [path.with_name(METADATA_FILE)]
    label_file = next((p for p in candidates if p is not None and p.is_file()), None)
    if label_file is None:
        raise BatchError(
            f"{path} holds no class names: pass --labels (data/processed/classes.json or the "
            f"package's {METADATA_FILE})"
        )
    try:
        data = json.loads(label_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchError(f"cannot read the labels {label_file}: {exc}") from exc
    meta = None
    if isinstance(data, dict) and "format" in data:
        meta = _meta_from_json(json.dumps(data), str(label_file))
        classes = meta.class_names
    elif isinstance(data, dict) and isinstance(data.get("classes"), list):
        classes = [str(c) for c in data["classes"]]
    else:
        raise BatchError(f"{label_file} lists no classes (expected {{'classes': [...]}})")
    model = _load_keras(path)
    _check(model, classes, str(path))
    return Packaged(model, meta, classes, path.name, str(path))


def load_packaged(model: str | None = None, labels: Path | None = None) -> Packaged:
    """The model to answer with: ``model`` is a ``.tar`` export, a ``.keras`` file or a
    BentoML tag; None picks ``models/bento/artist-id.tar`` if present, else the store's
    ``artist-id:latest``."""
    if model is None:
        if DEFAULT_EXPORT.is_file():
            return load_export(DEFAULT_EXPORT)
        try:
            return load_store(f"{MODEL_NAME}:latest")
        except BatchError as exc:
            raise BatchError(
                f"no packaged model: {DEFAULT_EXPORT} is missing (run `make repro`, or "
                f"`dvc pull`) and {exc}"
            ) from None
    path = Path(model)
    if path.suffix == ".tar":
        if not path.is_file():
            raise BatchError(f"model file {path} not found")
        return load_export(path)
    if path.suffix == ".keras":
        if not path.is_file():
            raise BatchError(f"model file {path} not found")
        return load_keras_file(path, labels)
    if path.exists():
        raise BatchError(f"{path}: expected a .tar model export or a .keras file")
    return load_store(model)


# ------------------------------------------------------------------------------ the inputs


@dataclass(frozen=True)
class Item:
    """One picture to label: a file, or a member of a zip archive."""

    name: str  # shown in reports and outputs: the path, or "archive.zip!member"
    path: Path
    member: str | None = None  # inside the zip archive ``path``

    def decode(self, limits: images.DecodeLimits, min_side: int | None = None) -> images.Decoded:
        """Decode with the safe decoder; raises only :class:`~artist_id.images.ImageError`.

        ``min_side``: decode at a reduced scale keeping the shorter side at least this long
        (see :func:`artist_id.images.open_bytes`).
        """
        if self.member is None:
            return images.decode_file(self.path, limits, min_side=min_side)
        try:
            with zipfile.ZipFile(self.path) as archive:
                info = archive.getinfo(self.member)
                if info.file_size > limits.max_bytes:  # declared size: checked before reading
                    raise images.ImageError(
                        "too_many_bytes",
                        f"{info.file_size:,} bytes; the limit is {limits.max_bytes:,}",
                    )
                with archive.open(info) as fh:
                    data = fh.read(limits.max_bytes + 1)  # a lying header cannot exceed it
        except images.ImageError:
            raise
        except (OSError, zipfile.BadZipFile, KeyError, RuntimeError, EOFError) as exc:
            raise images.ImageError("decode_error", f"cannot read from the archive: {exc}") from exc
        return images.decode_bytes(data, limits, min_side=min_side)


@dataclass(frozen=True)
class Result:
    item: Item
    proba: npt.NDArray[np.float32] | None  # (classes,) when answered
    error: images.ImageError | None  # why it was not


def _is_picture(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _zip_items(path: Path, shown: str) -> tuple[list[Item], list[Result]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                info.filename
                for info in archive.infolist()
                if not info.is_dir()
                and _is_picture(info.filename)
                and not info.filename.startswith("__MACOSX/")
            )
    except (OSError, zipfile.BadZipFile) as exc:
        bad = Item(shown, path)
        error = images.ImageError("decode_error", f"not a readable zip archive: {exc}")
        return [], [Result(bad, None, error)]
    return [Item(f"{shown}{ZIP_SEPARATOR}{n}", path, n) for n in names], []


def collect(paths: Sequence[Path]) -> tuple[list[Item], list[Result]]:
    """Items to label, and the results of inputs refused before decoding (broken archives).

    A named file is always tried; folders (walked recursively, symlinked folders not followed)
    and archives contribute the files whose extension names a picture format. Order: the
    arguments' order, then sorted paths inside each folder or archive.
    """
    items: list[Item] = []
    refused: list[Result] = []

    def add_file(path: Path, shown: str, named: bool) -> None:
        if path.suffix.lower() == ".zip":
            found, bad = _zip_items(path, shown)
            items.extend(found)
            refused.extend(bad)
        elif named or _is_picture(path.name):
            items.append(Item(shown, path))

    for root in paths:
        if root.is_dir():
            files: list[Path] = []
            for folder, dirs, names in os.walk(root):
                dirs.sort()
                files.extend(Path(folder) / n for n in names)
            for file in sorted(files):
                add_file(file, str(file), named=False)
        else:
            add_file(root, str(root), named=True)
    return items, refused


# ------------------------------------------------------------------------------- inference


DECODE_MARGIN = 2
"""Decode at a reduced scale (JPEG draft mode) whose shorter side is at least this many times
the model's input, as the service does (:data:`artist_id.predictor.DECODE_MARGIN`)."""


def _prepare(item: Item, limits: images.DecodeLimits, size: int) -> npt.NDArray[np.uint8]:
    decoded = item.decode(limits, min_side=DECODE_MARGIN * size)
    return np.asarray(images.fit_square(decoded.image, size), dtype=np.uint8)


def predict_items(
    items: Sequence[Item],
    packaged: Packaged,
    batch_size: int = 32,
    workers: int = 2,
) -> Iterator[Result]:
    """One :class:`Result` per item, in order; decoding overlaps the previous batch's model call.

    ``workers`` threads decode (Pillow releases the GIL while decoding); at most two batches
    of decoded pixels are held at once.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")
    limits = packaged.limits
    size = packaged.image_size

    def safe_prepare(item: Item) -> npt.NDArray[np.uint8] | images.ImageError:
        try:
            return _prepare(item, limits, size)
        except images.ImageError as exc:
            return exc

    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:

        def submit(chunk: Sequence[Item]) -> list[Future[Any]]:
            return [pool.submit(safe_prepare, item) for item in chunk]

        pending = submit(chunks[0]) if chunks else []
        for k, chunk in enumerate(chunks):
            prepared = [f.result() for f in pending]
            pending = submit(chunks[k + 1]) if k + 1 < len(chunks) else []
            good = [i for i, p in enumerate(prepared) if isinstance(p, np.ndarray)]
            proba = packaged.predict(np.stack([prepared[i] for i in good])) if good else None
            row = dict(zip(good, range(len(good)), strict=True))
            for i, item in enumerate(chunk):
                p = prepared[i]
                if isinstance(p, images.ImageError):
                    yield Result(item, None, p)
                else:
                    assert proba is not None
                    yield Result(item, proba[row[i]], None)


# -------------------------------------------------------------------------------- answers


def answer(proba: npt.NDArray[np.float32], packaged: Packaged, k: int) -> dict[str, Any]:
    """The service's answer for one image: top-1 (or unknown), top-k with artist facts."""
    order = np.argsort(-proba, kind="stable")
    best = int(order[0])
    p_best = float(proba[best])
    unknown = p_best < packaged.threshold
    infos = {c.artist: c for c in packaged.meta.classes} if packaged.meta else {}
    top = []
    for i in order[:k]:
        name = packaged.classes[int(i)]
        entry: dict[str, Any] = {"artist": name, "probability": round(float(proba[int(i)]), 6)}
        info = infos.get(name)
        if info is not None:
            entry.update(genre=info.genre, nationality=info.nationality, years=info.years)
        top.append(entry)
    return {
        "artist": None if unknown else packaged.classes[best],
        "probability": round(p_best, 6),
        "unknown": bool(unknown),
        "top_k": top,
    }


class CsvWriter:
    """``path,artist,probability,unknown,artist_1,probability_1,...,error,detail``."""

    def __init__(self, stream: IO[str], k: int) -> None:
        self.k = k
        self.writer = csv.writer(stream, lineterminator="\n")
        ranks = [f"{field}_{r}" for r in range(1, k + 1) for field in ("artist", "probability")]
        self.writer.writerow(
            ["path", "artist", "probability", "unknown", *ranks, "error", "detail"]
        )

    def write(self, result: Result, packaged: Packaged) -> None:
        if result.error is not None:
            blanks = [""] * (3 + 2 * self.k)
            self.writer.writerow(
                [result.item.name, *blanks, result.error.reason, str(result.error)]
            )
            return
        assert result.proba is not None
        a = answer(result.proba, packaged, self.k)
        ranks = [v for t in a["top_k"] for v in (t["artist"], f"{t['probability']:.6f}")]
        self.writer.writerow(
            [
                result.item.name,
                a["artist"] or "",
                f"{a['probability']:.6f}",
                str(a["unknown"]).lower(),
                *ranks,
                "",
                "",
            ]
        )


class JsonlWriter:
    """One JSON object per line: the service's answer plus ``path``, or ``error``/``detail``."""

    def __init__(self, stream: IO[str], k: int) -> None:
        self.stream = stream
        self.k = k

    def write(self, result: Result, packaged: Packaged) -> None:
        record: dict[str, Any] = {"path": result.item.name}
        if result.error is not None:
            record.update(error=result.error.reason, detail=str(result.error))
        else:
            assert result.proba is not None
            record.update(answer(result.proba, packaged, self.k))
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")


WRITERS: dict[str, Callable[[IO[str], int], CsvWriter | JsonlWriter]] = {
    ".csv": CsvWriter,
    ".jsonl": JsonlWriter,
}


@contextlib.contextmanager
def open_output(path: Path | None, stdout: IO[str]) -> Iterator[IO[str]]:
    """The output file (written whole, UTF-8), or ``stdout`` when ``path`` is None."""
    if path is None:
        yield stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        yield fh


def count_reasons(results: Iterable[Result]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        if r.error is not None:
            counts[r.error.reason] = counts.get(r.error.reason, 0) + 1
    return dict(sorted(counts.items()))
