"""The ``select`` stage's library: artists above the threshold, near-duplicate groups that
never straddle splits, a stratified group split, and balancing (class weights, over- and
undersampling plans).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from artist_id import images
from artist_id.manifest import DatasetError, slug

SPLITS = ("train", "val", "test")
UNUSED = "unused"  # train images dropped by undersampling


def near_duplicate_groups(
    image_ids: Sequence[str], sha256: Sequence[str], phashes: Sequence[str], max_distance: int
) -> list[str]:
    """Group ids (``g0000``...) so that exact or perceptual near-duplicates share a group.

    Two images are linked when their sha256 is equal or their perceptual hashes differ in at
    most ``max_distance`` bits; groups are the connected components. Group names follow the
    sorted image ids, so they do not depend on input order.
    """
    n = len(image_ids)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first: dict[str, int] = {}
    for i, digest in enumerate(sha256):
        if digest in first:
            union(first[digest], i)
        else:
            first[digest] = i
    if n > 1:
        distances = images.phash_matrix_distances(list(phashes))
        rows, cols = (distances <= max_distance).nonzero()
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if i < j:
                union(i, j)
    order = sorted(range(n), key=lambda i: image_ids[i])
    names: dict[int, str] = {}
    out = [""] * n
    for i in order:
        root = find(i)
        if root not in names:
            names[root] = f"g{len(names):05d}"
        out[i] = names[root]
    return out


def group_split(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.Series:
    """Stratified train/val/test assignment in which a group never straddles two splits.

    ``frame`` has ``image_id``, ``artist`` and ``group``. Each group is labelled with its
    most frequent artist; per artist, groups are shuffled (seeded) and dealt to test, then
    val, until each reaches its share of that artist's images; the rest is train. Returns the
    split per row, aligned with ``frame``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    label = frame.groupby("group")["artist"].agg(
        lambda s: sorted(Counter(s).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    )
    sizes = frame.groupby("group").size()
    assignment: dict[str, str] = {}
    for artist in sorted(label.unique()):
        groups = sorted(label.index[label == artist])
        groups = [groups[i] for i in rng.permutation(len(groups))]
        total = int(sizes[groups].sum())
        targets = {"test": round(total * test_fraction), "val": round(total * val_fraction)}
        filled = {"test": 0, "val": 0}
        for g in groups:
            for split in ("test", "val"):
                if filled[split] < targets[split]:
                    assignment[g] = split
                    filled[split] += int(sizes[g])
                    break
            else:
                assignment[g] = "train"
    return frame["group"].map(assignment)


def straddling_groups(split: pd.DataFrame) -> int:
    """Number of groups that appear in more than one split (0 means no leakage)."""
    used = split[split["split"] != UNUSED]
    return int((used.groupby("group")["split"].nunique() > 1).sum())


def class_weights(counts: dict[str, int]) -> dict[str, float]:
    """sklearn's 'balanced' weights, n_samples / (n_classes * n_c), keyed by class."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.array(sorted(counts))
    y = np.concatenate([np.full(counts[c], i) for i, c in enumerate(classes)])
    weights = compute_class_weight("balanced", classes=np.arange(len(classes)), y=y)
    return {str(c): round(float(w), 6) for c, w in zip(classes, weights, strict=True)}


def undersample(split: pd.DataFrame, seed: int) -> pd.Series:
    """Mark train images beyond the smallest class's train count as ``unused`` (seeded).

    Whole near-duplicate groups are kept or dropped together, so dropping never splits one.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = split["split"].copy()
    train = split[split["split"] == "train"]
    target = int(train.groupby("artist").size().min())
    for artist in sorted(train["artist"].unique()):
        rows = train[train["artist"] == artist]
        groups = sorted(rows["group"].unique())
        groups = [groups[i] for i in rng.permutation(len(groups))]
        kept = 0
        for g in groups:
            idx = rows.index[rows["group"] == g]
            if kept + len(idx) <= target or kept == 0:
                kept += len(idx)
            else:
                out.loc[idx] = UNUSED
    return out


def oversample_plan(train_counts: dict[str, int], copies: int) -> dict[str, int]:
    """Extra augmented images per class so every class reaches the majority's total.

    Every training image yields ``1 + copies`` images; the majority class sets the target.
    """
    per_image = 1 + copies
    target = max(train_counts.values()) * per_image
    return {c: target - n * per_image for c, n in sorted(train_counts.items())}


@dataclass(frozen=True)
class Selection:
    split: pd.DataFrame  # image_id, artist, split, group
    classes: dict[str, Any]
    summary: dict[str, Any]


def select(
    manifest: pd.DataFrame,
    *,
    min_paintings: int,
    dedupe_hamming: int,
    val_fraction: float,
    test_fraction: float,
    balance: str,
    seed: int,
) -> Selection:
    """Keep artists with more than ``min_paintings`` usable images, group, split, balance."""
    ok = manifest[manifest["status"] == "ok"]
    counts = ok.groupby("artist").size().sort_index()
    kept = sorted(counts.index[counts > min_paintings])
    if len(kept) < 2:
        raise DatasetError(
            f"only {len(kept)} artist(s) have more than {min_paintings} usable paintings "
            f"(largest: {counts.sort_values(ascending=False).head(3).to_dict()}); "
            "lower select.min_paintings"
        )
    frame = ok[ok["artist"].isin(kept)].sort_values("image_id").reset_index(drop=True)
    frame = frame[["image_id", "artist", "sha256", "phash"]].copy()
    frame["group"] = near_duplicate_groups(
        list(frame["image_id"]), list(frame["sha256"]), list(frame["phash"]), dedupe_hamming
    )
    frame["split"] = group_split(frame, val_fraction, test_fraction, seed)
    if balance == "undersample":
        frame["split"] = undersample(frame, seed)
    leaks = straddling_groups(frame)
    if leaks:  # group_split makes this impossible; the check guards future edits
        raise DatasetError(f"{leaks} near-duplicate group(s) straddle splits")

    def per_split(name: str) -> dict[str, int]:
        sub = frame[frame["split"] == name]
        return {a: int((sub["artist"] == a).sum()) for a in kept}

    split_counts = {name: per_split(name) for name in (*SPLITS, UNUSED)}
    train_counts = split_counts["train"]
    if min(train_counts.values()) == 0:
        raise DatasetError("an artist has no training image: lower the val/test fractions")
    weights = class_weights(train_counts) if balance == "class_weight" else {a: 1.0 for a in kept}
    group_sizes = frame.groupby("group").size()
    classes = {
        "classes": kept,
        "folders": {a: slug(a) for a in kept},
        "counts": {k: v for k, v in split_counts.items() if k != UNUSED},
        "class_weight": weights,
        "balance": balance,
    }
    summary = {
        "min_paintings": min_paintings,
        "artists_kept": {a: int(counts[a]) for a in kept},
        "artists_dropped": {a: int(counts[a]) for a in counts.index if a not in kept},
        "images": len(frame),
        "groups": len(group_sizes),
        "duplicate_groups": int((group_sizes > 1).sum()),
        "images_in_duplicate_groups": int(group_sizes[group_sizes > 1].sum()),
        "straddling_groups": leaks,
        "splits": split_counts,
        "balance": balance,
    }
    split = frame[["image_id", "artist", "split", "group"]]
    return Selection(split, classes, summary)
