"""The feature store: frozen-trunk features computed once per image, shared by every model,
experiment and analysis that needs them.

``vgg16`` and ``style_stats`` run the same frozen VGG16 (HED weights by default); ``vgg16``
reads the average of its ``block5_pool`` map, ``style_stats`` the channel means and standard
deviations of five conv layers. The ``features`` stage runs the trunk **once per image** with
every *tap* its consumers need and writes one folder per consumer under ``data/features/``:

``<consumer>/features.npy``
    ``(n, d)`` float32, row ``i`` for the ``i``-th image of ``index.csv``.
``<consumer>/index.csv``
    ``path,image_id,pixels_sha256``, sorted by path: the image file, its id in the manifest, and
    the SHA-256 of the exact pixels the trunk saw (model input size, RGB uint8).
``<consumer>/store.json``
    The trunk (backbone, weights and the SHA-256 of the weights file, input and working size),
    its key, and where each tap's columns are (``columns: {tap: [start, stop]}``).

Consumers: each frozen-trunk model of ``train.models`` whose weights are a file (``vgg16``,
``style_stats``; every image of ``data/processed/{train,val,test}``), and ``paintings``: the
``style_stats`` taps plus the ``block5_pool`` average of *every usable painting in data/raw*
(all artists, not only the selected classes; centre square at ``base.image_size``, as the
models see it), for analyses beyond the classifier. Models that cannot use the store (the CNNs,
random trunks) get a folder holding only ``store.json`` saying so, so that every ``train@<m>``
stage can depend on ``data/features/<m>`` and re-run only when *its* features change.

What determines a feature row is its key: trunk key (backbone, weights file hash, input and
working size, format version) + tap + pixel hash. The stage keeps its output between runs
(``persist: true``) and reuses every row whose key it already holds, so a new select threshold
or augmentation computes only the images it has not seen; rows no consumer needs any more are
dropped. Rows are streamed to memory-mapped ``.npy`` files batch by batch: memory stays at one
batch of images whatever the dataset size.

Reading (one function, for models, notebooks and other stages)::

    from artist_id.features import open_features
    fs = open_features("paintings")          # memory-mapped, nothing loaded yet
    x = fs.rows(paths, taps=fs.style_taps)    # (len(paths), d) float32 in RAM
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from artist_id import images, progress
from artist_id.config import Params, TrainParams

log = logging.getLogger(__name__)

ROOT = Path("data/features")
PAINTINGS = "paintings"
FORMAT = 1  # bump when the way a row is computed changes: every key changes with it
STORE_FILE = "store.json"
INDEX_FILE = "index.csv"
ARRAY_FILE = "features.npy"
INDEX_COLUMNS = ["path", "image_id", "pixels_sha256"]

# The taps a stored model reads, in the order its trunk concatenates them.
GAP_TAP = "gap:block5_pool"
TAP_KINDS = ("stats", "cov", "gap")
VGG16_CHANNELS = {"block1": 64, "block2": 128, "block3": 256, "block4": 512, "block5": 512}
# Largest probability difference between the whole model and head(stored features): float32
# rounding of a different batch composition stays orders of magnitude below it.
CHECK_TOLERANCE = 1e-3
CHUNK_BYTES = 2 << 20  # rows copied at a time when a consumer's file is written


class FeatureStoreError(RuntimeError):
    """The store is missing, stale or does not match the model that reads it."""


# ------------------------------------------------------------------------------ keys


def tap_width(tap: str) -> int:
    """Columns of one tap: ``stats:<layer>`` gives 2 x channels, ``cov:<layer>`` the
    covariance's upper triangle (c (c + 1) / 2), ``gap:<layer>`` channels."""
    from artist_id.models import covariance_width

    kind, _, layer = tap.partition(":")
    if kind not in TAP_KINDS or not layer.startswith("block"):
        raise ValueError(f"unknown tap {tap!r}: expected stats:, cov: or gap:<vgg16 layer>")
    channels = VGG16_CHANNELS[layer.split("_")[0]]
    return {"stats": 2 * channels, "cov": covariance_width(channels), "gap": channels}[kind]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def pixels_sha256(array: np.ndarray) -> str:
    """SHA-256 of an image's pixels and shape: the same pixels give the same key, whatever file
    (PNG in data/processed, JPEG in data/raw) they were decoded from."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrunkSpec:
    """What determines a trunk's features: backbone, weights (file hash), input/working size."""

    weights: str
    weights_sha256: str
    input_size: int
    working_size: int
    backbone: str = "vgg16"

    @property
    def key(self) -> str:
        fields = {
            "backbone": self.backbone,
            "weights_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "working_size": self.working_size,
            "format": FORMAT,
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "working_size": self.working_size,
            "format": FORMAT,
            "key": self.key,
        }


def weights_file(weights: str) -> Path | None:
    """The file a trunk's weights come from, or None when they are random (``none``).

    ``imagenet`` is the Keras cache file: when it is not there yet, the ImageNet trunk is built
    once, which downloads it online or raises :class:`~artist_id.models.WeightsError` naming the
    file to fetch and where to put it offline.
    """
    from artist_id import models

    if weights == "none":
        return None
    if weights == "hed-bsds500":
        return models.hed_weights_path()
    if weights == "imagenet":
        cached = models.keras_cache_dir() / models.IMAGENET_FILES["vgg16"]
        if not cached.is_file():
            models.imagenet_trunk("vgg16", (None, None, 3))  # downloads, or says what to fetch
        return cached
    return Path(weights)


def trunk_spec(weights: str, input_size: int, working_size: int | None) -> TrunkSpec | None:
    """The spec of a VGG16 trunk with these settings, None if it cannot be stored (random)."""
    path = weights_file(weights)
    if path is None:
        return None
    if not path.is_file():
        raise FeatureStoreError(f"weights file {path} not found (wanted for the feature store)")
    return TrunkSpec(weights, sha256_file(path), input_size, working_size or input_size)


def model_taps(
    name: str, layers: Sequence[str], covariance: Sequence[str] = ()
) -> tuple[str, ...] | None:
    """The taps model ``name`` reads (its trunk's output, in order), None if it has none here.

    ``style_stats``: the statistics of ``layers``, then the covariance of ``covariance``, each
    in network order, as :func:`artist_id.models.build_model` concatenates them.
    """
    from artist_id.models import STYLE_LAYERS, in_network_order

    if name == "vgg16":
        return (GAP_TAP,)
    if name == "style_stats":
        return tuple(f"stats:{n}" for n in in_network_order(layers or STYLE_LAYERS)) + tuple(
            f"cov:{n}" for n in in_network_order(covariance)
        )
    return None


def network_order(taps: Sequence[str]) -> tuple[str, ...]:
    """Taps sorted by where they are in VGG16 (stats before gap at the same layer)."""
    from artist_id.models import VGG16_LAYER_NAMES

    order = {n: i for i, n in enumerate(VGG16_LAYER_NAMES)}

    def where(tap: str) -> tuple[int, int]:
        kind, _, layer = tap.partition(":")
        return order[layer], TAP_KINDS.index(kind)

    return tuple(sorted(set(taps), key=where))


# ------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class ImageRef:
    path: str  # relative to the repository root, posix
    image_id: str
    square: bool  # True: centre-crop + resize a data/raw painting to the input size


@dataclass(frozen=True)
class Consumer:
    """One folder of the store: who reads it, from which trunk, which taps, which images."""

    name: str
    trunk: TrunkSpec | None
    taps: tuple[str, ...] = ()
    images: tuple[ImageRef, ...] = ()
    reason: str = ""  # why it is not stored (trunk is None)

    @property
    def columns(self) -> dict[str, tuple[int, int]]:
        out, start = {}, 0
        for tap in self.taps:
            out[tap] = (start, start + tap_width(tap))
            start += tap_width(tap)
        return out

    @property
    def dim(self) -> int:
        return sum(tap_width(t) for t in self.taps)


def processed_images(processed: Path) -> tuple[ImageRef, ...]:
    """Every image of data/processed/{train,val,test} (augmented copies included)."""
    refs = []
    for split in ("train", "val", "test"):
        index = pd.read_csv(processed / split / "index.csv", dtype=str, keep_default_na=False)
        refs += [
            ImageRef(p, i, False) for p, i in zip(index["path"], index["image_id"], strict=True)
        ]
    return tuple(sorted(refs, key=lambda r: r.path))


def painting_images(manifest_csv: Path) -> tuple[ImageRef, ...]:
    """Every usable painting of data/raw (status ok), all artists."""
    manifest = pd.read_csv(manifest_csv, dtype=str, keep_default_na=False)
    usable = manifest[manifest["status"] == "ok"]
    refs = [ImageRef(p, i, True) for p, i in zip(usable["path"], usable["image_id"], strict=True)]
    return tuple(sorted(refs, key=lambda r: r.path))


def read_pixels(ref: ImageRef, size: int) -> np.ndarray:
    """The model input for ``ref``: the processed square as it is, or a raw painting squared."""
    with Image.open(ref.path) as img:
        if ref.square:
            return images.square_array(img, size)
        array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if array.shape != (size, size, 3):
        raise FeatureStoreError(
            f"{ref.path} is {array.shape[1]}x{array.shape[0]}, the trunk takes {size}x{size}: "
            "re-run the augment stage (dvc repro augment)"
        )
    return array


# ------------------------------------------------------------------------------ build


@dataclass
class _OldRows:
    """Rows of the store's previous contents that a new run may reuse, by trunk key and tap."""

    by_key: dict[str, list[tuple[dict[str, int], dict[str, tuple[int, int]], np.ndarray]]] = field(
        default_factory=dict
    )

    @classmethod
    def scan(cls, root: Path) -> _OldRows:
        old = cls()
        if not root.is_dir():
            return old
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            meta_file = folder / STORE_FILE
            if not (meta_file.is_file() and (folder / ARRAY_FILE).is_file()):
                continue
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
                index = pd.read_csv(folder / INDEX_FILE, dtype=str, keep_default_na=False)
                values = np.load(folder / ARRAY_FILE, mmap_mode="r")
            except (OSError, ValueError, KeyError) as exc:
                log.warning("feature store: ignoring unreadable %s (%s)", folder, exc)
                continue
            if meta.get("trunk", {}).get("format") != FORMAT or len(values) != len(index):
                continue
            rows = {h: i for i, h in enumerate(index["pixels_sha256"])}
            columns = {t: (int(a), int(b)) for t, (a, b) in meta["columns"].items()}
            old.by_key.setdefault(meta["trunk"]["key"], []).append((rows, columns, values))
        return old

    def row(self, key: str, digest: str, taps: Sequence[str], widths: int) -> np.ndarray | None:
        """The union row of ``taps`` for an image, assembled from old folders, or None."""
        parts: list[np.ndarray] = []
        for tap in taps:
            for rows, columns, values in self.by_key.get(key, []):
                if tap in columns and digest in rows:
                    a, b = columns[tap]
                    parts.append(np.asarray(values[rows[digest], a:b]))
                    break
            else:
                return None
        row = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return row if row.size == widths else None


@dataclass(frozen=True)
class BuildReport:
    images: int  # distinct images (pixel hashes) the store holds
    computed: int  # trunk passes this run
    reused: int  # rows taken from the previous store


def _groups(consumers: Sequence[Consumer]) -> dict[str, list[Consumer]]:
    groups: dict[str, list[Consumer]] = {}
    for c in consumers:
        if c.trunk is not None:
            groups.setdefault(c.trunk.key, []).append(c)
    return groups


def build_store(
    consumers: Sequence[Consumer],
    root: Path = ROOT,
    batch_size: int = 16,
    extractor_factory: Any = None,
) -> BuildReport:
    """Write one folder per consumer under ``root``, computing each image's taps at most once.

    ``extractor_factory(trunk, taps) -> callable(uint8 batch) -> (n, d) float32`` defaults to a
    Keras VGG16 with those taps (:func:`artist_id.models.build_tap_extractor`); tests pass a
    cheap one. Folders of consumers no longer planned are removed.
    """
    root.mkdir(parents=True, exist_ok=True)
    old = _OldRows.scan(root)
    factory = extractor_factory or _keras_extractor
    scratch_dir = root / ".build"
    if scratch_dir.exists():
        shutil.rmtree(scratch_dir)
    scratch_dir.mkdir()
    total = BuildReport(0, 0, 0)
    try:
        for key, members in sorted(_groups(consumers).items()):
            report = _build_group(key, members, scratch_dir, old, factory, batch_size)
            total = BuildReport(
                total.images + report.images,
                total.computed + report.computed,
                total.reused + report.reused,
            )
        del old  # release the memory maps of the previous contents before replacing them
        for c in consumers:
            if c.trunk is None:
                folder = scratch_dir / c.name
                folder.mkdir()
                _write_json(
                    folder / STORE_FILE, {"consumer": c.name, "stored": False, "reason": c.reason}
                )
        planned = {c.name for c in consumers}
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p != scratch_dir):
            if folder.name in planned or (folder / STORE_FILE).is_file():
                shutil.rmtree(folder)
        for name in sorted(planned):
            (scratch_dir / name).rename(root / name)
    finally:
        if scratch_dir.exists():
            shutil.rmtree(scratch_dir)
    return total


def _keras_extractor(trunk: TrunkSpec, taps: Sequence[str]) -> Any:
    from artist_id.models import build_tap_extractor

    model = build_tap_extractor(trunk.weights, trunk.input_size, trunk.working_size, taps)

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch.astype("float32"), training=False), dtype=np.float32)

    return run


def _build_group(
    key: str,
    members: Sequence[Consumer],
    scratch_dir: Path,
    old: _OldRows,
    factory: Any,
    batch_size: int,
) -> BuildReport:
    trunk = members[0].trunk
    assert trunk is not None
    taps = network_order([t for c in members for t in c.taps])
    width = sum(tap_width(t) for t in taps)
    where = {t: s for t, s in Consumer("union", trunk, taps).columns.items()}
    refs = sorted({r.path: r for c in members for r in c.images}.values(), key=lambda r: r.path)
    # One row per distinct image (pixel hash) in a scratch array on disk.
    scratch = np.lib.format.open_memmap(
        scratch_dir / f"{key}.npy", mode="w+", dtype=np.float32, shape=(max(1, len(refs)), width)
    )
    row_of_hash: dict[str, int] = {}
    hash_of_path: dict[str, str] = {}
    pending: list[tuple[int, np.ndarray]] = []
    extractor = None
    computed = reused = 0

    def flush() -> None:
        nonlocal extractor, computed
        if not pending:
            return
        if extractor is None:
            extractor = factory(trunk, taps)
        out = extractor(np.stack([a for _, a in pending]))
        if out.shape != (len(pending), width):
            raise FeatureStoreError(
                f"extractor returned {out.shape}, expected ({len(pending)}, {width})"
            )
        for (row, _), values in zip(pending, out, strict=True):
            scratch[row] = values
        computed += len(pending)
        pending.clear()

    desc = f"features:{'+'.join(c.name for c in members)}"
    for ref in progress.bar(refs, desc=desc):
        pixels = read_pixels(ref, trunk.input_size)
        digest = pixels_sha256(pixels)
        hash_of_path[ref.path] = digest
        if digest in row_of_hash:
            continue
        row = row_of_hash[digest] = len(row_of_hash)
        previous = old.row(key, digest, taps, width)
        if previous is not None:
            scratch[row] = previous
            reused += 1
            continue
        pending.append((row, pixels))
        if len(pending) >= batch_size:
            flush()
    flush()
    scratch.flush()
    for c in members:
        _write_consumer(c, scratch_dir / c.name, scratch, row_of_hash, hash_of_path, where)
    log.info(
        "feature store %s (%s, %s, %d px -> %d px): %d images, %d computed, %d reused",
        key,
        trunk.backbone,
        trunk.weights,
        trunk.input_size,
        trunk.working_size,
        len(row_of_hash),
        computed,
        reused,
    )
    return BuildReport(len(row_of_hash), computed, reused)


def _write_consumer(
    c: Consumer,
    folder: Path,
    scratch: np.ndarray,
    row_of_hash: Mapping[str, int],
    hash_of_path: Mapping[str, str],
    where: Mapping[str, tuple[int, int]],
) -> None:
    assert c.trunk is not None
    folder.mkdir()
    refs = sorted(c.images, key=lambda r: r.path)
    out = np.lib.format.open_memmap(
        folder / ARRAY_FILE, mode="w+", dtype=np.float32, shape=(len(refs), c.dim)
    )
    cols = np.concatenate([np.arange(*where[t]) for t in c.taps])
    chunk = max(1, CHUNK_BYTES // (4 * c.dim))
    for start in range(0, len(refs), chunk):
        part = refs[start : start + chunk]
        rows = np.array([row_of_hash[hash_of_path[r.path]] for r in part], dtype=np.int64)
        out[start : start + len(part)] = scratch[np.ix_(rows, cols)]
    out.flush()
    del out
    index = pd.DataFrame(
        [(r.path, r.image_id, hash_of_path[r.path]) for r in refs], columns=INDEX_COLUMNS
    )
    index.to_csv(folder / INDEX_FILE, index=False)
    _write_json(
        folder / STORE_FILE,
        {
            "consumer": c.name,
            "stored": True,
            "trunk": c.trunk.describe(),
            "taps": list(c.taps),
            "columns": {t: list(span) for t, span in c.columns.items()},
            "images": len(refs),
            "dim": c.dim,
        },
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ read


@dataclass(frozen=True)
class FeatureSet:
    """One consumer's stored features: memory-mapped, rows looked up by image path."""

    name: str
    paths: tuple[str, ...]
    image_ids: tuple[str, ...]
    values: np.ndarray  # (n, d) float32, memory-mapped read-only
    columns: Mapping[str, tuple[int, int]]
    trunk: Mapping[str, Any]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @property
    def style_taps(self) -> tuple[str, ...]:
        """The channel mean/std taps (what ``style_stats`` reads), in network order."""
        return tuple(t for t in self.columns if t.startswith("stats:"))

    def _cols(self, taps: Sequence[str] | None) -> np.ndarray:
        if taps is None:
            return np.arange(self.values.shape[1])
        missing = [t for t in taps if t not in self.columns]
        if missing:
            raise FeatureStoreError(
                f"{self.name}: no tap(s) {missing}; stored: {list(self.columns)}"
            )
        return np.concatenate([np.arange(*self.columns[t]) for t in taps])

    def rows(
        self, paths: Sequence[str] | None = None, taps: Sequence[str] | None = None
    ) -> np.ndarray:
        """Features of ``paths`` (all images if None) restricted to ``taps``, in RAM."""
        cols = self._cols(taps)
        if paths is None:
            return np.asarray(self.values[:, cols], dtype=np.float32)
        position = {p: i for i, p in enumerate(self.paths)}
        missing = [p for p in paths if Path(p).as_posix() not in position]
        if missing:
            raise FeatureStoreError(
                f"{self.name}: {len(missing)} image(s) are not in the feature store, e.g. "
                f"{missing[0]}: run `dvc repro features`"
            )
        index = np.array([position[Path(p).as_posix()] for p in paths], dtype=np.int64)
        out = np.empty((len(index), len(cols)), np.float32)
        for start in range(0, len(index), 4096):  # a chunk at a time from the memory map
            part = index[start : start + 4096]
            out[start : start + len(part)] = self.values[part][:, cols]
        return out


def open_features(name: str = PAINTINGS, root: Path | str = ROOT) -> FeatureSet:
    """Open consumer ``name``'s stored features (``paintings``, ``style_stats``, ``vgg16``).

    Nothing is read into memory until :meth:`FeatureSet.rows`. Raises
    :class:`FeatureStoreError` when the folder is missing or the consumer is not stored.
    """
    folder = Path(root) / name
    meta_file = folder / STORE_FILE
    if not meta_file.is_file():
        raise FeatureStoreError(f"no feature store at {folder}: run `dvc repro features`")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if not meta.get("stored"):
        raise FeatureStoreError(f"{name} has no stored features: {meta.get('reason', '')}")
    index = pd.read_csv(folder / INDEX_FILE, dtype=str, keep_default_na=False)
    values = np.load(folder / ARRAY_FILE, mmap_mode="r")
    if len(values) != len(index):
        raise FeatureStoreError(f"{folder}: {len(values)} rows for {len(index)} images (corrupt)")
    # In the array's order (store.json lists them sorted by name): the taps a model reads
    # are compared in its order.
    spans = sorted(meta["columns"].items(), key=lambda item: int(item[1][0]))
    columns = {t: (int(a), int(b)) for t, (a, b) in spans}
    return FeatureSet(
        name=name,
        paths=tuple(index["path"]),
        image_ids=tuple(index["image_id"]),
        values=values,
        columns=columns,
        trunk=meta["trunk"],
    )


def stored_for_model(
    name: str,
    weights: str,
    layers: Sequence[str],
    image_size: int,
    working_size: int | None,
    root: Path = ROOT,
    covariance: Sequence[str] = (),
) -> FeatureSet | None:
    """The stored features of a frozen-trunk model, checked against its settings.

    None when the model does not use the store (its folder says why); raises
    :class:`FeatureStoreError` when the stored trunk or taps differ from the model's.
    """
    meta_file = root / name / STORE_FILE
    if not meta_file.is_file():
        raise FeatureStoreError(f"no feature store at {root / name}: run `dvc repro features`")
    if not json.loads(meta_file.read_text(encoding="utf-8")).get("stored"):
        return None
    fs = open_features(name, root)
    spec = trunk_spec(weights, image_size, working_size)
    taps = model_taps(name, layers, covariance)
    if spec is None or fs.trunk.get("key") != spec.key or fs.taps != taps:
        raise FeatureStoreError(
            f"{root / name} holds features of another trunk or taps than {name} uses "
            f"(stored {dict(fs.trunk)} {list(fs.taps)}): run `dvc repro features`"
        )
    return fs


# ------------------------------------------------------------------------------ plan


def plan(params: Params, processed: Path, manifest_csv: Path) -> list[Consumer]:
    """What the ``features`` stage stores for these params: one :class:`Consumer` per model of
    ``train.models`` (stored or with the reason it is not), plus ``paintings``."""
    tp = params.train
    size = params.base.image_size
    consumers: list[Consumer] = []
    refs: tuple[ImageRef, ...] | None = None
    for name in sorted(tp.models):
        mp = tp.model(name)
        taps = model_taps(name, mp.layers, mp.covariance)
        working = mp.image_size if name == "style_stats" else None
        reason = _not_stored_reason(name, taps, mp.weights, mp.trainable_trunk_layers, tp)
        spec = None if reason else trunk_spec(mp.weights, size, working)
        if spec is None or taps is None:
            consumers.append(Consumer(name, None, reason=reason or "random trunk weights"))
            continue
        if refs is None:
            refs = processed_images(processed)
        consumers.append(Consumer(name, spec, taps, refs))
    if not params.features.paintings:
        # the folder still exists, so a stage that reads it fails with this reason
        reason = "features.paintings is false: set it to true to store every painting"
        consumers.append(Consumer(PAINTINGS, None, reason=reason))
    else:
        ss = tp.style_stats
        spec = trunk_spec(ss.weights, size, ss.image_size)
        taps = model_taps("style_stats", ss.layers)
        assert taps is not None
        if spec is None:
            consumers.append(Consumer(PAINTINGS, None, reason="train.style_stats.weights is none"))
        else:
            all_taps = network_order((*taps, GAP_TAP))
            consumers.append(Consumer(PAINTINGS, spec, all_taps, painting_images(manifest_csv)))
    return consumers


def _not_stored_reason(
    name: str, taps: tuple[str, ...] | None, weights: str, trainable: int, tp: TrainParams
) -> str:
    if taps is None:
        return (
            f"{name} is not a frozen VGG16: it trains from images"
            if name != "resnet50"
            else "only VGG16 trunks are stored; resnet50 uses the in-memory cache of training"
        )
    if trainable != 0:
        return f"train.{name}.trainable_trunk_layers is {trainable}: the trunk trains"
    if not tp.cache_features:
        return "train.cache_features is false"
    if weights == "none":
        return f"train.{name}.weights is none: a random trunk is drawn when the model is built"
    return ""


# ------------------------------------------------------------------------------ models


def for_model(tp: TrainParams, name: str, image_size: int, root: Path = ROOT) -> FeatureSet | None:
    """The stored trunk features model ``name`` trains on, or None if it trains without them.

    Checked against the model's settings: a store written for another trunk or other taps
    raises :class:`FeatureStoreError` rather than training a head on the wrong numbers.
    """
    mp = tp.model(name)
    taps = model_taps(name, mp.layers, mp.covariance)
    if _not_stored_reason(name, taps, mp.weights, mp.trainable_trunk_layers, tp):
        return None
    working = mp.image_size if name == "style_stats" else None
    return stored_for_model(
        name, mp.weights, mp.layers, image_size, working, root, covariance=mp.covariance
    )
