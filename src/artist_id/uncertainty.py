"""How sure a metric is: bootstrap intervals, and paired comparisons of two prediction sets.

With 38 test images one image moves macro-F1 by several points, and models trained from
scratch are not bit-reproducible across CPUs, so a point value or a raw delta alone misleads.

* :func:`bootstrap_intervals`: a seeded percentile bootstrap over the evaluated images
  (``scipy.stats.bootstrap``, images resampled with their labels and predictions together),
  the metric computed by scikit-learn inside each resample.
* :func:`paired_comparison`: the same over two prediction sets for the *same* images (the
  base and the new run): the interval of the *difference*, and a verdict, "better", "worse"
  or "within noise" (the interval contains 0).

Why the percentile method rather than BCa (scipy's default): BCa is undefined when every
resample gives the same value (a perfect validation score, two identical prediction sets),
which happens here all the time; the percentile interval is then simply ``[v, v]``. A perfect
score's interval of ``[1, 1]`` says that no resample saw an error, not that errors cannot
happen (with n images and no error, the error rate can still be up to ~3/n at 95 %).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import bootstrap
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

DECIMALS = 6
# Metrics that get an interval: the ones the leaderboard ranks by and the PR report compares.
HEADLINE: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")
# A difference interval must clear 0 by more than float noise to count as a change.
EPSILON = 1e-9

Verdict = Literal["better", "worse", "within noise"]


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda t, p: float(accuracy_score(t, p)),
    "balanced_accuracy": lambda t, p: float(balanced_accuracy_score(t, p)),
    "macro_f1": _macro_f1,
}


class UncertaintyError(ValueError):
    """The inputs of a bootstrap do not fit together (lengths, empty sets, unknown metric)."""


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UncertaintyError(
            f"metrics must be among {', '.join(METRICS)}, got {list(metrics) or 'none'}"
        )
    return tuple(metrics)


def _encode(*label_sets: Any) -> list[npt.NDArray[np.int64]]:
    """The label arrays as integer codes of one shared vocabulary (names or indices alike)."""
    arrays = [np.asarray(a) for a in label_sets]
    n = arrays[0].shape
    for a in arrays:
        if a.ndim != 1:
            raise UncertaintyError(f"labels must be 1-D, got shape {a.shape}")
        if a.shape != n:
            raise UncertaintyError(f"label arrays differ in length: {[x.size for x in arrays]}")
    if arrays[0].size == 0:
        raise UncertaintyError("no images to bootstrap over")
    _, codes = np.unique(np.concatenate([a.astype(str) for a in arrays]), return_inverse=True)
    return [c.astype(np.int64) for c in np.split(codes, len(arrays))]


def metric_values(y_true: Any, y_pred: Any, metrics: Sequence[str] = HEADLINE) -> np.ndarray:
    """The named metrics of one prediction set, in order (scikit-learn's definitions).

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (sklearn's
    default, as in :func:`artist_id.evaluation.classification_metrics`).
    """
    names = _check_metrics(metrics)
    with warnings.catch_warnings():
        # a resample may hold a class only among the predictions: sklearn warns, we know
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        return np.array([METRICS[m](y_true, y_pred) for m in names], dtype=np.float64)


def batch_metric_values(
    y_true: np.ndarray, y_pred: np.ndarray, metrics: Sequence[str], axis: int = -1
) -> np.ndarray:
    """:func:`metric_values` for a batch of resamples at once: ``(len(metrics), *batch)``.

    ``y_true`` and ``y_pred`` hold integer codes with the images along ``axis`` (the shape
    ``scipy.stats.bootstrap`` hands a vectorized statistic). The metrics follow scikit-learn's
    definitions exactly (a test compares them on random resamples): accuracy; balanced
    accuracy = mean recall over the classes present in ``y_true``; macro-F1 = mean of
    ``2TP / (2TP + FP + FN)`` over the classes present in ``y_true`` or ``y_pred``. One
    confusion matrix per resample, counted with ``bincount``: a thousand resamples cost
    milliseconds instead of a thousand trips through scikit-learn's input checks.
    """
    t = np.moveaxis(np.asarray(y_true, dtype=np.int64), axis, -1)
    p = np.moveaxis(np.asarray(y_pred, dtype=np.int64), axis, -1)
    batch, n = t.shape[:-1], t.shape[-1]
    k = int(max(t.max(initial=0), p.max(initial=0))) + 1
    rows = int(np.prod(batch, dtype=np.int64))
    flat = np.arange(rows)[:, None] * k * k + t.reshape(rows, n) * k + p.reshape(rows, n)
    cm = np.bincount(flat.ravel(), minlength=rows * k * k).reshape(rows, k, k).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    out = []
    for name in _check_metrics(metrics):
        if name == "accuracy":
            value = tp.sum(axis=1) / n
        elif name == "balanced_accuracy":
            present = support > 0
            recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
            value = recall.sum(axis=1) / present.sum(axis=1)
        else:  # macro_f1
            present = (support + predicted) > 0
            denominator = support + predicted  # 2TP + FP + FN
            f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=present)
            value = f1.sum(axis=1) / present.sum(axis=1)
        out.append(value.reshape(batch))
    return np.stack(out)


def _round(x: float) -> float:
    return round(float(x), DECIMALS)


def _interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    if n_resamples < 1:
        raise UncertaintyError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise UncertaintyError(f"confidence must be in (0, 1), got {confidence}")
    point = statistic(*data, axis=-1)
    if data[0].size < 2:  # a single image: every resample is that image
        return point, point
    result = bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low = np.atleast_1d(np.asarray(result.confidence_interval.low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(result.confidence_interval.high, dtype=np.float64))
    return low, high


def bootstrap_intervals(
    y_true: Any,
    y_pred: Any,
    *,
    metrics: Sequence[str] = HEADLINE,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """``{metric: (low, high)}``: percentile bootstrap intervals over the images.

    Images are resampled with replacement, each with its label and prediction; the same
    ``seed`` gives the same intervals.
    """
    names = _check_metrics(metrics)
    t, p = _encode(y_true, y_pred)

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return batch_metric_values(a, b, names, axis)

    low, high = _interval(
        (t, p), statistic, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return {m: (_round(lo), _round(hi)) for m, lo, hi in zip(names, low, high, strict=True)}


@dataclass(frozen=True)
class Comparison:
    """One metric of two prediction sets on the same images."""

    metric: str
    old: float
    new: float
    delta: float  # new - old
    low: float  # interval of the delta
    high: float
    verdict: Verdict


def verdict(low: float, high: float) -> Verdict:
    """ "better" if the delta's interval lies above 0, "worse" if below, else "within noise"."""
    if low > EPSILON:
        return "better"
    if high < -EPSILON:
        return "worse"
    return "within noise"


def paired_comparison(
    y_true: Any,
    old_pred: Any,
    new_pred: Any,
    *,
    metrics: Sequence[str] = HEADLINE,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Compare two prediction sets on the same images with a paired bootstrap.

    Each resample draws images with replacement and scores *both* prediction sets on the
    same draw, so what the images have in common (easy or hard ones) cancels out and the
    interval is that of ``metric(new) - metric(old)``.
    """
    names = _check_metrics(metrics)
    t, a, b = _encode(y_true, old_pred, new_pred)

    def statistic(t_: np.ndarray, a_: np.ndarray, b_: np.ndarray, axis: int = -1) -> np.ndarray:
        return batch_metric_values(t_, b_, names, axis) - batch_metric_values(t_, a_, names, axis)

    old = metric_values(t, a, names)
    new = metric_values(t, b, names)
    low, high = _interval(
        (t, a, b), statistic, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    out = {}
    for i, m in enumerate(names):
        lo, hi = _round(low[i]), _round(high[i])
        out[m] = Comparison(
            metric=m,
            old=_round(old[i]),
            new=_round(new[i]),
            delta=_round(new[i] - old[i]),
            low=lo,
            high=hi,
            verdict=verdict(lo, hi),
        )
    return out


def overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two closed intervals ``[lo, hi]`` share at least one point."""
    return max(a[0], b[0]) <= min(a[1], b[1])
