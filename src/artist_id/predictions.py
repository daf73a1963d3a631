"""The per-image predictions file: small, deterministic, committed to git.

``reports/evaluate/<model>/predictions.csv`` has one row per evaluated image::

    split,image_id,label,predicted,p_predicted,p_label
    test,Maren_Holloway_1,Maren Holloway,Maren Holloway,0.998906,0.998906

Labels are artist *names* and images are keyed by ``image_id`` (the manifest's id, the
same in every run), so two revisions can be compared image by image even when their class
lists or splits differ. ``p_predicted`` (the top-1 probability) is what the "unknown"
threshold needs, ``p_label`` the probability given to the true artist. Rows are sorted by
split and image id, floats have 6 decimals: the same predictions give the same bytes, and
a CI runner without the DVC cache still has the base revision's predictions in git.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = ("split", "image_id", "label", "predicted", "p_predicted", "p_label")
DECIMALS = 6


class PredictionsError(ValueError):
    """A predictions file or table that does not have the expected shape."""


def table(
    split: str,
    image_ids: Sequence[str],
    labels: Any,
    proba: Any,
    classes: Sequence[str],
) -> pd.DataFrame:
    """Rows of one split from integer ``labels`` (n,) and softmax ``proba`` (n, k)."""
    names = [str(c) for c in classes]
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    ids = [str(i) for i in image_ids]
    if p.shape != (y.size, len(names)) or len(ids) != y.size:
        raise PredictionsError(
            f"{split}: {len(ids)} image ids, {y.size} labels and probabilities of shape "
            f"{p.shape} for {len(names)} classes do not fit together"
        )
    if len(set(ids)) != len(ids):
        raise PredictionsError(f"{split}: image ids are not unique")
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise PredictionsError(f"{split}: labels outside 0..{len(names) - 1}")
    predicted = p.argmax(axis=1) if y.size else np.zeros(0, dtype=np.int64)
    rows = np.arange(y.size)
    return pd.DataFrame(
        {
            "split": split,
            "image_id": ids,
            "label": [names[i] for i in y],
            "predicted": [names[i] for i in predicted],
            "p_predicted": p[rows, predicted].round(DECIMALS),
            "p_label": p[rows, y].round(DECIMALS),
        },
        columns=list(COLUMNS),
    )


def to_csv(frames: Sequence[pd.DataFrame], path: Path) -> None:
    """Write the splits' rows sorted by split and image id (byte-identical for equal input)."""
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    frame = frame.sort_values(["split", "image_id"], kind="stable")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n", float_format=f"%.{DECIMALS}f")


def read(source: Path | str | bytes) -> pd.DataFrame:
    """Read a predictions file (a path, or the file's bytes as ``git show`` prints them)."""
    where = "predictions" if isinstance(source, bytes) else str(source)
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        frame = pd.read_csv(
            handle,
            dtype={"split": str, "image_id": str, "label": str, "predicted": str},
            keep_default_na=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"{where}: not a predictions CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionsError(
            f"{where} lacks column(s) {missing}: written by an older evaluate stage? "
            "Re-run `dvc repro evaluate`"
        )
    if frame.duplicated(["split", "image_id"]).any():
        raise PredictionsError(f"{where}: an image appears twice in one split")
    return frame[list(COLUMNS)]
