"""Metrics and plots behind the ``evaluate`` stage.

* :func:`classification_metrics`: accuracy, balanced accuracy, macro/weighted F1, top-2
  accuracy, log loss, a per-class report and the majority-class baseline, all from sklearn.
* :func:`headline`: the few of them that are DVC *metrics* (what a reviewer compares across
  runs); the rest is a plain report. :func:`log_metrics`: numbers into a dvclive ``Live`` as
  nested ``metrics.json`` keys.
* :func:`confusion_records` (DVC ``confusion`` template data), :func:`plot_confusion`,
  :func:`plot_misclassified`, :func:`plot_learning_curves`: the plots.
* :func:`read_dvclive_history`: the per-epoch TSVs dvclive wrote during training, back into a
  Keras-style ``{"loss": [...], "val_loss": [...]}`` history.

Deterministic: floats rounded to 6 decimals, fixed key order, PNGs saved without the matplotlib
version in their metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageOps
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from artist_id import figures, images

if TYPE_CHECKING:
    from dvclive import Live

log = logging.getLogger(__name__)

DECIMALS = 6
# Softmax rows in float32 drift from 1 by ~1e-7; anything further off is not a probability row
# (logits, or a wrong axis) and would make every metric silently wrong.
ROW_SUM_TOLERANCE = 1e-3
MISCLASSIFIED_THUMB_PX = 224
MISCLASSIFIED_COLUMNS = 4

IntArray = npt.NDArray[np.int64]


# ------------------------------------------------------------------ validation


def _labels(y: Any, k: int, name: str) -> IntArray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= k):
        raise ValueError(f"{name} holds class indices outside 0..{k - 1} ({k} classes)")
    return out


def _classes(classes: Sequence[str]) -> list[str]:
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {names}")
    return names


def _pair(y_true: Any, y_pred: Any, classes: Sequence[str]) -> tuple[IntArray, IntArray, list[str]]:
    names = _classes(classes)
    t = _labels(y_true, len(names), "y_true")
    p = _labels(y_pred, len(names), "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    return t, p, names


def _probabilities(proba: Any, n: int, k: int) -> npt.NDArray[np.float64]:
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (n, k):
        raise ValueError(f"proba must have shape (n, k) = ({n}, {k}), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ValueError("proba must hold finite, non-negative probabilities")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > ROW_SUM_TOLERANCE:
        raise ValueError(
            f"proba rows must sum to 1 (softmax output), row {worst} sums to {sums[worst]:.4f}"
        )
    # float64 and exact row sums: log loss then does not depend on the model's dtype.
    return p / sums[:, None]


def _r(x: Any) -> float:
    return round(float(x), DECIMALS)


# ------------------------------------------------------------------ metrics


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Metrics of softmax outputs ``proba`` (n, k) against integer labels ``y_true`` (n,).

    Macro and weighted F1 average over the classes that occur in ``y_true`` or in the
    predictions (sklearn's default), so a class absent from the split does not count as a zero;
    ``per_class`` lists every class (support 0 when absent). Log loss is computed in float64,
    where sklearn clips a zero probability of the true class to machine epsilon (cost ~36).
    """
    names = _classes(classes)
    k = len(names)
    if k < 2:
        raise ValueError(f"need at least 2 classes, got {k}")
    t = _labels(y_true, k, "y_true")
    if t.size == 0:
        raise ValueError("y_true is empty: nothing to evaluate")
    p = _probabilities(proba, t.size, k)
    pred = np.argmax(p, axis=1)
    labels = list(range(k))

    missing = [names[i] for i in labels if not np.any(t == i)]
    if missing:
        log.warning("classes with no example in y_true (support 0): %s", ", ".join(missing))

    # top-2 among 2 classes is always right; sklearn warns that it is meaningless, we know.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        top2 = top_k_accuracy_score(t, p[:, 1] if k == 2 else p, k=2, labels=labels)

    precision, recall, f1, support = precision_recall_fscore_support(
        t, pred, labels=labels, zero_division=0
    )
    per_class = {
        names[i]: {
            "precision": _r(precision[i]),
            "recall": _r(recall[i]),
            "f1": _r(f1[i]),
            "support": int(support[i]),
        }
        for i in labels
    }

    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((t.size, 1)), t)
    constant = dummy.predict(np.zeros((t.size, 1)))
    majority = int(constant[0])

    return {
        "accuracy": _r(accuracy_score(t, pred)),
        "balanced_accuracy": _r(balanced_accuracy_score(t, pred)),
        "macro_f1": _r(f1_score(t, pred, average="macro", zero_division=0)),
        "weighted_f1": _r(f1_score(t, pred, average="weighted", zero_division=0)),
        "top2_accuracy": _r(top2),
        "log_loss": _r(log_loss(t, p, labels=labels)),
        "n": int(t.size),
        "per_class": per_class,
        "majority_baseline": {
            "class": names[majority],
            "accuracy": _r(accuracy_score(t, constant)),
            "balanced_accuracy": _r(balanced_accuracy_score(t, constant)),
            "macro_f1": _r(f1_score(t, constant, average="macro", zero_division=0)),
        },
    }


# What `dvc metrics diff` / `dvc exp show` compare per model and split. Everything else
# classification_metrics returns (per-class report, weighted F1, top-2, n, the majority
# baseline) goes to the plain details.json report, so the tables stay readable.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`HEADLINE` numbers of :func:`classification_metrics` output, in that order."""
    missing = [k for k in HEADLINE if k not in metrics]
    if missing:
        raise KeyError(f"metrics lack {missing} (have {sorted(metrics)})")
    return {k: metrics[k] for k in HEADLINE}


def _metric_part(name: str) -> str:
    # dvclive nests metrics.json on "/" (after os.path.normpath): keep a class name one level.
    cleaned = str(name).replace("/", "_").replace("\\", "_")
    return "_" if cleaned in {"", ".", ".."} else cleaned


def _flatten(prefix: str, value: Any) -> list[tuple[str, float | int]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, float | int]] = []
        for key in sorted(value, key=str):
            part = _metric_part(key)
            out.extend(_flatten(f"{prefix}/{part}", value[key]))
        return out
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return []  # labels such as the baseline's class name are not metrics
    return [(prefix, value.item() if isinstance(value, np.generic) else value)]


def log_metrics(live: Live, metrics: dict[str, Any], prefix: str, *, plot: bool = False) -> None:
    """Log :func:`classification_metrics` output into ``live`` under ``<prefix>/...``.

    Scalars become ``<prefix>/<name>``, the per-class report ``<prefix>/per_class/<class>/<m>``
    and the baseline ``<prefix>/majority_baseline/<m>``; string values (the baseline class)
    are skipped.
    Keys are logged in sorted order so ``metrics.json`` is the same for the same numbers.
    ``plot=False`` keeps these one-off values out of ``plots/metrics/*.tsv``.
    """
    root = "/".join(_metric_part(p) for p in prefix.strip("/").split("/") if p)
    if not root:
        raise ValueError("prefix must be a non-empty name such as 'test'")
    for name, value in _flatten(root, metrics):
        live.log_metric(name, value, plot=plot)


def log_intervals(live: Live, intervals: Mapping[str, Sequence[float]], prefix: str) -> None:
    """Put ``<prefix>/<metric>_ci: [lo, hi]`` next to the point values in ``metrics.json``.

    dvclive's ``log_metric`` takes scalars only; its ``summary`` is documented as editable
    and is what ``live.end()`` writes. DVC's ``metrics show`` / ``exp show`` skip lists, so
    the intervals do not widen the experiment table.
    """
    node = live.summary
    for part in (_metric_part(p) for p in prefix.strip("/").split("/") if p):
        node = node.setdefault(part, {})
    for metric in sorted(intervals):
        low, high = intervals[metric]
        node[f"{_metric_part(metric)}_ci"] = [_r(low), _r(high)]


def confusion_records(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> list[dict[str, str]]:
    """``[{"actual": name, "predicted": name}, ...]`` in input order: DVC's confusion format."""
    t, p, names = _pair(y_true, y_pred, classes)
    return [{"actual": names[a], "predicted": names[b]} for a, b in zip(t, p, strict=True)]


# ------------------------------------------------------------------ plots


def _cell_fontsize(k: int) -> float:
    if k <= 8:
        return 9.0
    if k <= 15:
        return 7.0
    return 5.5 if k <= 25 else 4.5


def plot_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], path: Path, title: str
) -> None:
    """Row-normalised confusion matrix: colour = share of the true class, text = count + %."""
    t, p, names = _pair(y_true, y_pred, classes)
    k = len(names)
    labels = list(range(k))
    counts = confusion_matrix(t, p, labels=labels)
    share = confusion_matrix(t, p, labels=labels, normalize="true")  # empty rows -> 0

    side = max(4.5, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.6, side), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    size = _cell_fontsize(k)
    for i in range(k):
        for j in range(k):
            if counts[i, j] == 0:
                ax.text(j, i, "0", ha="center", va="center", fontsize=size, color="#b0b0b0")
                continue
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=size,
                color=colour,
            )
    support = counts.sum(axis=1)
    ax.set_xticks(labels, labels=names)
    ax.set_yticks(labels, labels=[f"{n} (n={s})" for n, s in zip(names, support, strict=True)])
    if k > 4 or max(len(n) for n in names) > 8:
        ax.tick_params(axis="x", labelrotation=45)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
            lab.set_rotation_mode("anchor")
    ax.set_xlabel("predicted artist")
    ax.set_ylabel("true artist")
    total = int(counts.sum())
    right = int(np.trace(counts))
    ax.set_title(
        f"{title}\n{right}/{total} correct; colour = share of the true artist's images", fontsize=10
    )
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("share of row (true artist)")
    figures.save(fig, path)


def _thumbnail(path: str, size: int) -> npt.NDArray[np.uint8]:
    """The image fitted into a square cell (so the grid lines up); grey if unreadable."""
    cell = Image.new("RGB", (size, size), (236, 236, 236))
    try:
        img = images.decode_file(path).image
    except images.ImageError as exc:
        log.warning("misclassified sheet: cannot read %s: %s", path, exc)
        return np.asarray(cell, dtype=np.uint8)
    # model inputs are small (64 px by default): scale up as well as down to fill the cell
    img = ImageOps.contain(img, (size, size), Image.Resampling.LANCZOS)
    cell.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return np.asarray(cell, dtype=np.uint8)


def misclassified_order(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, max_images: int
) -> IntArray:
    """Indices of misclassified samples, most confident mistake first, at most ``max_images``.

    Confidence is the probability given to the (wrong) predicted class; ties keep input order.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    prob = np.asarray(proba, dtype=np.float64)
    wrong = np.flatnonzero(t != p)
    confidence = prob[wrong, p[wrong]]
    order: IntArray = wrong[np.argsort(-confidence, kind="stable")][: max(max_images, 0)]
    return order


def plot_misclassified(
    paths: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    path: Path,
    max_images: int = 16,
) -> int:
    """A grid of misclassified images, most confident mistakes first; returns how many.

    Each cell is titled ``true: X`` / ``pred: Y (confidence)``; ``paths`` are opened as given
    (absolute or relative to the working directory). Unreadable files show as grey cells.
    """
    t, p, names = _pair(y_true, y_pred, classes)
    if len(paths) != t.size:
        raise ValueError(f"{len(paths)} paths for {t.size} labels")
    prob = np.asarray(proba, dtype=np.float64)
    if prob.shape != (t.size, len(names)):
        raise ValueError(f"proba must have shape ({t.size}, {len(names)}), got {prob.shape}")
    if max_images < 0:
        raise ValueError(f"max_images must be >= 0, got {max_images}")

    wrong = np.flatnonzero(t != p)
    order = misclassified_order(t, p, prob, max_images)

    if order.size == 0:
        fig = Figure(figsize=(5, 2), layout="constrained")
        message = "no misclassified images" if wrong.size == 0 else "max_images is 0"
        figures.empty(fig.add_subplot(), message)
        figures.save(fig, path)
        return 0

    cols = min(MISCLASSIFIED_COLUMNS, order.size)
    rows = math.ceil(order.size / cols)
    fig = Figure(figsize=(2.9 * cols, 3.1 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, i in zip(axes, order, strict=False):
        ax.imshow(_thumbnail(str(paths[i]), MISCLASSIFIED_THUMB_PX), interpolation="none")
        ax.set_title(f"true: {names[t[i]]}\npred: {names[p[i]]} ({prob[i, p[i]]:.2f})", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(
        f"Most confident mistakes: {order.size} of {wrong.size} misclassified (of {t.size})",
        fontsize=11,
    )
    figures.save(fig, path)
    return int(order.size)


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation), best ``val_loss`` epoch marked.

    A head fitted by scikit-learn (``optimizer: lbfgs``) logs one step per C instead of
    epochs (``c`` in ``history``): the curves are then drawn against C on a log axis (a
    regularisation path) and the kept C (best validation macro-F1, ties by log loss) is marked.
    """
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    c_path = np.asarray(history.get("c", []), dtype=np.float64)
    val_loss = np.asarray(history.get("val_loss", []), dtype=np.float64)
    mark: tuple[float, str] | None = None
    if c_path.size:
        from artist_id.training import kept_c

        f1 = history.get("val_macro_f1", [0.0] * c_path.size)
        kept = kept_c(f1, history.get("val_loss", [0.0] * c_path.size))
        mark = (float(c_path[kept]), f"kept C = {c_path[kept]:g} (best val macro-F1)")
    elif val_loss.size and not np.all(np.isnan(val_loss)):
        best = int(np.nanargmin(val_loss)) + 1  # epochs are shown 1-based
        mark = (best, f"best val_loss (epoch {best})")
    for ax, key, label in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        series = [(s, history[s]) for s in (key, f"val_{key}") if len(history.get(s, []))]
        if not series:
            figures.empty(ax, f"no {key} logged")
            ax.set_title(label)
            continue
        for name, values in series:
            x = c_path if c_path.size == len(values) else np.arange(1, len(values) + 1)
            ax.plot(
                x,
                np.asarray(values, dtype=np.float64),
                marker="o" if len(values) <= 30 else None,
                markersize=3,
                label="validation" if name.startswith("val_") else "train",
            )
        if mark is not None:
            ax.axvline(mark[0], color="#c0392b", linestyle="--", linewidth=1, label=mark[1])
        ax.set_title(label)
        if c_path.size:
            ax.set_xscale("log")
            ax.set_xlabel("C, inverse L2 strength (scikit-learn L-BFGS fit per value)")
        else:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    figures.save(fig, path)


def read_dvclive_history(dvclive_dir: Path) -> dict[str, list[float]]:
    """Per-step values from ``<dvclive_dir>/plots/metrics/**/*.tsv`` as a Keras-style history.

    dvclive's Keras callback writes ``train/<m>.tsv`` and ``eval/<m>.tsv`` (``val_`` becomes
    ``eval/``); plain ``log_metric`` names map to their own path. ``train/x`` -> ``x``,
    ``eval/x`` or ``val/x`` -> ``val_x``, ``x`` -> ``x``; other folders keep their ``a/b`` name.
    """
    root = Path(dvclive_dir) / "plots" / "metrics"
    if not root.is_dir():
        raise FileNotFoundError(f"no dvclive metrics under {root} (did training log with dvclive?)")
    history: dict[str, list[float]] = {}
    sources: dict[str, str] = {}
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root).with_suffix("").as_posix()
        split, _, rest = rel.partition("/")
        if rest and split == "train":
            key = rest
        elif rest and split in {"eval", "val"}:
            key = f"val_{rest}"
        else:
            key = rel
        if key in history:
            raise ValueError(f"both {sources[key]}.tsv and {rel}.tsv map to history key {key!r}")
        frame = pd.read_csv(tsv, sep="\t")
        column = rel.rsplit("/", 1)[-1]
        if column not in frame.columns or "step" not in frame.columns:
            raise ValueError(f"{tsv} has columns {list(frame.columns)}, expected step and {column}")
        frame = frame.sort_values("step", kind="stable")
        history[key] = [float(v) for v in pd.to_numeric(frame[column], errors="coerce")]
        sources[key] = rel
    return dict(sorted(history.items()))
