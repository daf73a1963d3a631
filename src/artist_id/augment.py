"""Model-ready image sets: resized val/test, resized + augmented (optionally balanced) train.

Augmentation is done with Keras preprocessing layers, seeded, ahead of training and written
to disk: DVC caches the result, every model trains on exactly the same images, and the
preview shows what the models see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from artist_id import figures, images, progress
from artist_id.config import AugmentParams
from artist_id.manifest import slug
from artist_id.splits import SPLITS, oversample_plan

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["path", "image_id", "artist", "label", "copy", "augmented"]
BATCH = 64


def build_augmenter(p: AugmentParams, seed: int) -> keras.Sequential:
    """The augmentation pipeline from params; each layer has its own fixed seed."""
    import keras

    layers: list[keras.Layer] = []
    if p.flip != "none":
        layers.append(keras.layers.RandomFlip(p.flip, seed=seed))
    if p.rotation:
        layers.append(keras.layers.RandomRotation(p.rotation, fill_mode="reflect", seed=seed + 1))
    if p.zoom:
        layers.append(keras.layers.RandomZoom(p.zoom, fill_mode="reflect", seed=seed + 2))
    if p.translation:
        layers.append(
            keras.layers.RandomTranslation(
                p.translation, p.translation, fill_mode="reflect", seed=seed + 3
            )
        )
    if p.contrast:
        layers.append(keras.layers.RandomContrast(p.contrast, seed=seed + 4))
    if p.brightness:
        layers.append(
            keras.layers.RandomBrightness(p.brightness, value_range=(0, 255), seed=seed + 5)
        )
    return keras.Sequential(layers, name="augment")


def augment_batch(augmenter: keras.Sequential, batch: np.ndarray) -> np.ndarray:
    """Apply the augmenter to uint8 images, returning uint8 images of the same shape."""
    if not augmenter.layers:
        return batch.copy()
    out = np.asarray(augmenter(batch.astype("float32"), training=True))
    return np.clip(np.rint(out), 0, 255).astype("uint8")


def load_square(path: str | Path, size: int) -> np.ndarray:
    """A canonical image from data/raw as the model input: centre-cropped square, RGB uint8."""
    with Image.open(path) as img:
        return images.square_array(img, size)


@dataclass(frozen=True)
class Item:
    image_id: str
    artist: str
    label: int
    source: str


def _save(array: np.ndarray, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # PNG: lossless, so augmenting does not stack JPEG artefacts; Pillow's output is stable.
    Image.fromarray(array).save(target, format="PNG", optimize=False, compress_level=6)


def _row(target: Path, item: Item, copy: int) -> dict[str, Any]:
    return {
        "path": target.as_posix(),
        "image_id": item.image_id,
        "artist": item.artist,
        "label": item.label,
        "copy": copy,
        "augmented": copy > 0,
    }


def _chunks(seq: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]


def prepare(
    split: pd.DataFrame,
    manifest: pd.DataFrame,
    classes: Sequence[str],
    balance: str,
    p: AugmentParams,
    image_size: int,
    seed: int,
    out_root: Path,
) -> dict[str, Any]:
    """Write ``out_root/{train,val,test}/<artist>/*.png`` and an ``index.csv`` per split."""
    paths = dict(zip(manifest["image_id"], manifest["path"], strict=True))
    label_of = {a: i for i, a in enumerate(classes)}
    augmenter = build_augmenter(p, seed)
    summary: dict[str, Any] = {"image_size": image_size, "copies": p.copies, "balance": balance}
    for name in SPLITS:
        rows = split[split["split"] == name].sort_values("image_id")
        items = [
            Item(r.image_id, r.artist, label_of[r.artist], paths[r.image_id])
            for r in rows.itertuples()
        ]
        out = out_root / name
        index: list[dict[str, Any]] = []
        originals: dict[str, np.ndarray] = {}
        for item in progress.bar(items, desc=f"augment:{name}"):
            array = load_square(item.source, image_size)
            target = out / slug(item.artist) / f"{item.image_id}.png"
            _save(array, target)
            index.append(_row(target, item, 0))
            originals[item.image_id] = array
        if name == "train":
            index += _augment_train(items, originals, augmenter, p.copies, balance, out)
        frame = pd.DataFrame(index, columns=INDEX_COLUMNS)
        frame = frame.sort_values(["label", "image_id", "copy"]).reset_index(drop=True)
        frame.to_csv(out / "index.csv", index=False)
        summary[name] = {a: int((frame["artist"] == a).sum()) for a in classes}
        log.info("%s: %d images %s", name, len(frame), summary[name])
    return summary


def _augment_train(
    items: list[Item],
    originals: dict[str, np.ndarray],
    augmenter: keras.Sequential,
    copies: int,
    balance: str,
    out: Path,
) -> list[dict[str, Any]]:
    """``copies`` variants of every image, then (oversample) extra variants for minorities."""
    jobs: list[tuple[Item, int]] = [(it, k) for k in range(1, copies + 1) for it in items]
    if balance == "oversample":
        counts: dict[str, int] = {}
        for it in items:
            counts[it.artist] = counts.get(it.artist, 0) + 1
        extra = oversample_plan(counts, copies)
        for artist, n_extra in extra.items():
            pool = [it for it in items if it.artist == artist]
            for j in range(n_extra):
                jobs.append((pool[j % len(pool)], copies + 1 + j // len(pool)))
    rows = []
    with progress.bar(total=len(jobs), desc="augment:variants") as bar:
        for chunk in _chunks(jobs, BATCH):
            batch = np.stack([originals[it.image_id] for it, _ in chunk])
            for (it, k), array in zip(chunk, augment_batch(augmenter, batch), strict=True):
                target = out / slug(it.artist) / f"{it.image_id}_a{k}.png"
                _save(array, target)
                rows.append(_row(target, it, k))
            bar.update(len(chunk))
    return rows


def preview(
    index: pd.DataFrame, p: AugmentParams, seed: int, target: Path, max_rows: int = 3
) -> None:
    """Originals next to ``p.preview`` augmented versions (one row per artist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    originals = index[index["copy"] == 0].drop_duplicates("artist").head(max_rows)
    augmenter = build_augmenter(p, seed)
    cols = 1 + p.preview
    fig, axes = plt.subplots(
        len(originals), cols, figsize=(1.9 * cols, 2.1 * len(originals)), squeeze=False
    )
    for r, row in enumerate(originals.itertuples()):
        with Image.open(row.path) as img:
            base = np.asarray(img.convert("RGB"))
        variants = augment_batch(augmenter, np.repeat(base[None], p.preview, axis=0))
        for c, array in enumerate([base, *variants]):
            ax = axes[r][c]
            ax.imshow(array)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_title("original", fontsize=8)
                ax.set_ylabel(row.artist, fontsize=8)
            else:
                ax.set_title(f"augmented {c}", fontsize=8)
    fig.suptitle("Training augmentation (Keras preprocessing layers, seeded)", fontsize=10)
    fig.tight_layout()
    figures.save(fig, target, dpi=110)
    plt.close(fig)
