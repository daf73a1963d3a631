"""Genre from texture: a multi-label model over every artist, and its two honest evaluations.

Labels: each painting inherits its artist's ``genre`` from artists.csv, which may hold several
values (``"Symbolism,Post-Impressionism"``), so this is a multi-label problem: one sigmoid
output per genre, trained with binary cross-entropy. Genres with fewer than ``min_artists``
artists or ``min_paintings`` paintings are left out (and listed): a genre seen in one artist
is that artist, not a genre.

Model: the ``style_stats`` trunk (frozen VGG16, channel mean/std per tap; the statistics come
from :mod:`artist_id.style_features`) and a linear multi-label head: ``Normalization`` then
``Dense(sigmoid)``. With a frozen trunk the head's objective, per genre an L2-regularised
binary cross-entropy of a linear function of the standardised statistics, is exactly a
logistic regression, so scikit-learn's deterministic L-BFGS solver fits it (in a fraction of
a second, where a Keras loop takes seconds) and the coefficients are written into the Keras
head; the saved ``.keras`` file is the whole image-to-genres model, as the service needs.
By default each *artist* weighs the same in training (``weighting: artist``), positives and
negatives balanced per genre: a genre is then learnt from its artists, not from its most
prolific one.

Evaluations (both reported):

* **held-out paintings**: a split by near-duplicate group, stratified by artist (the select
  stage's :func:`~artist_id.splits.group_split`); thresholds per genre are chosen on the
  validation paintings, metrics reported on test. Artists are seen in training, so this
  measures recognising the *artist's* manner as much as the genre.
* **held-out artists**: artists (joined when a near-duplicate group links them) are dealt into
  folds; each fold is predicted by a head trained without it. Thresholds for a fold are
  chosen on held-out-*artist* predictions of the other folds (nested: heads trained without
  both folds), never on the fold itself. Only genres with at least two artists are scored.
  This is the honest number: what a user with a painting by an unknown painter gets.

Per genre and macro-averaged: average precision (AP), F1 at the chosen threshold, and the
baselines of a model that knows only the genre's frequency (AP = prevalence; F1 of calling
every painting that genre = 2p / (1 + p)); bootstrap 95 % intervals of the macro scores
resample paintings (held-out paintings) or artists (held-out artists).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from artist_id import figures
from artist_id.artists import ArtistMeta
from artist_id.splits import group_split, near_duplicate_groups

log = logging.getLogger(__name__)

Weighting = Literal["artist", "painting"]
DECIMALS = 4
DEFAULT_THRESHOLD = 0.5  # a genre without a positive validation painting keeps this


class GenreError(ValueError):
    """The data cannot support a genre model (too few genres or artists); says what to change."""


# ------------------------------------------------------------------------------------ labels


@dataclass(frozen=True)
class GenreData:
    """The labelled paintings: one row per painting, one column of ``y`` per kept genre."""

    frame: pd.DataFrame  # image_id, artist, group (near-duplicate group)
    rows: np.ndarray  # row of each painting in the index it was labelled from
    genres: list[str]
    y: np.ndarray  # (n, g) int8 0/1
    excluded: dict[str, dict[str, Any]]  # genre -> artists, paintings, reason
    unlabelled_artists: list[str]  # artists without any genre in artists.csv (left out)

    def artists_per_genre(self) -> dict[str, int]:
        """How many artists each kept genre has among the labelled paintings."""
        frame = pd.DataFrame(self.y, columns=self.genres)
        frame["artist"] = list(self.frame["artist"])
        per_artist = frame.groupby("artist")[self.genres].max()
        return {g: int(per_artist[g].sum()) for g in self.genres}


def genre_census(
    artists: Sequence[str], meta: Mapping[str, ArtistMeta]
) -> tuple[Counter[str], Counter[str]]:
    """Artists and paintings per genre value, for the painting list ``artists``."""
    paintings: Counter[str] = Counter()
    painters: dict[str, set[str]] = {}
    for artist in artists:
        for genre in meta[artist].genres if artist in meta else ():
            paintings[genre] += 1
            painters.setdefault(genre, set()).add(artist)
    return Counter({g: len(a) for g, a in painters.items()}), paintings


def label_paintings(
    index: pd.DataFrame,
    meta: Mapping[str, ArtistMeta],
    *,
    min_artists: int,
    min_paintings: int,
    sha256: Sequence[str],
    phash: Sequence[str],
    dedupe_hamming: int,
) -> GenreData:
    """Multi-hot genre labels of every painting in ``index`` (image_id, artist, ...).

    ``sha256``/``phash`` (aligned with ``index``) define near-duplicate groups, which the
    splits below never cut. Paintings of an artist with no genre at all are left out (their
    labels are unknown); an artist whose genres are all left out stays, as a negative for
    every kept genre (artists.csv lists each artist's genres in full).
    """
    artists = list(index["artist"])
    labelled = np.array([a in meta and bool(meta[a].genres) for a in artists], dtype=bool)
    unlabelled = sorted({a for a, ok in zip(artists, labelled, strict=True) if not ok})
    painters, paintings = genre_census(
        [a for a, ok in zip(artists, labelled, strict=True) if ok], meta
    )
    kept: list[str] = []
    excluded: dict[str, dict[str, Any]] = {}
    for genre in sorted(painters):
        reasons = []
        if painters[genre] < min_artists:
            reasons.append(f"{painters[genre]} artist(s) < genre.min_artists={min_artists}")
        if paintings[genre] < min_paintings:
            reasons.append(f"{paintings[genre]} paintings < genre.min_paintings={min_paintings}")
        if reasons:
            excluded[genre] = {
                "artists": painters[genre],
                "paintings": paintings[genre],
                "reason": "; ".join(reasons),
            }
        else:
            kept.append(genre)
    if len(kept) < 2:
        raise GenreError(
            f"only {len(kept)} genre(s) ({', '.join(kept) or 'none'}) have at least "
            f"{min_artists} artists and {min_paintings} paintings; lower genre.min_artists or "
            "genre.min_paintings, or add artists"
        )
    rows = np.flatnonzero(labelled)
    frame = index.loc[labelled, ["image_id", "artist"]].reset_index(drop=True)
    groups = near_duplicate_groups(
        list(frame["image_id"]),
        [s for s, ok in zip(sha256, labelled, strict=True) if ok],
        [p for p, ok in zip(phash, labelled, strict=True) if ok],
        dedupe_hamming,
    )
    frame["group"] = groups
    y = np.array(
        [[genre in meta[a].genres for genre in kept] for a in frame["artist"]], dtype=np.int8
    )
    return GenreData(frame, rows, kept, y, excluded, unlabelled)


# ------------------------------------------------------------------------------------ splits


def painting_split(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """train/val/test per painting: near-duplicate groups whole, stratified by artist."""
    return group_split(frame, val_fraction, test_fraction, seed).to_numpy(dtype=object)


def artist_units(frame: pd.DataFrame) -> dict[str, str]:
    """Artist -> unit: artists joined by a near-duplicate group form one unit.

    A group holding paintings of two artists (a copy filed under the wrong name) would
    otherwise put the same painting on both sides of a held-out-artist split.
    """
    parent = {a: a for a in sorted(set(frame["artist"]))}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for _group, members in frame.groupby("group")["artist"]:
        names = sorted(set(members))
        for other in names[1:]:
            ra, rb = find(names[0]), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {a: find(a) for a in parent}


def artist_folds(frame: pd.DataFrame, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k'-1) of each painting; every artist (unit) in exactly one fold.

    ``k' = min(k, units)``. Units are ordered by their genre set, then size, and dealt round-
    robin over a seeded permutation of the folds, so the artists of one genre spread over
    different folds (a genre then always keeps artists in training).
    """
    if k < 2:
        raise GenreError(f"genre.artist_folds must be at least 2, got {k}")
    units = artist_units(frame)
    unit_of_row = np.array([units[a] for a in frame["artist"]], dtype=object)
    names = sorted(set(unit_of_row))
    if len(names) < 2:
        raise GenreError("held-out-artist evaluation needs at least two artists")
    k = min(k, len(names))
    signature = {}
    for u in names:
        rows = unit_of_row == u
        signature[u] = (tuple(y[rows].max(axis=0).tolist()), -int(rows.sum()), u)
    ordered = sorted(names, key=lambda u: signature[u])
    rng = np.random.default_rng(seed)
    deal = rng.permutation(k)
    fold_of_unit = {u: int(deal[i % k]) for i, u in enumerate(ordered)}
    return np.array([fold_of_unit[u] for u in unit_of_row], dtype=np.int64)


# -------------------------------------------------------------------------------------- head


@dataclass(frozen=True)
class LinearHead:
    """``sigmoid(((x - mean) / scale) @ coef + intercept)``: the Keras head's weights."""

    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,) > 0
    coef: np.ndarray  # (d, g)
    intercept: np.ndarray  # (g,)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        logits = z @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))


def sample_weights(artists: Sequence[str], y: np.ndarray, weighting: Weighting) -> np.ndarray:
    """Per painting and genre ``(n, g)``: positives and negatives each weigh n/2 in total.

    ``artist``: within each side, every artist weighs the same (its paintings share it);
    ``painting``: every painting weighs the same (sklearn's ``class_weight="balanced"``).
    """
    n, g = y.shape
    if weighting == "artist":
        counts = Counter(artists)
        base = np.array([1.0 / counts[a] for a in artists])
    else:
        base = np.ones(n)
    out = np.zeros((n, g))
    for j in range(g):
        pos = y[:, j] == 1
        for side in (pos, ~pos):
            total = base[side].sum()
            if total > 0:
                out[side, j] = base[side] * (n / 2) / total
    return out


def fit_head(
    x: np.ndarray, y: np.ndarray, artists: Sequence[str], *, c: float, weighting: Weighting
) -> LinearHead:
    """One L2-regularised logistic regression per genre on the standardised statistics.

    A genre with no positive (or no negative) training painting gets zero weights and the
    smoothed log-odds of its frequency as bias, rather than an error.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from artist_id.models import CONSTANT_STD

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # constant statistics (dead ReLU channels) stay centred at 0: the artist heads' rule
    scale[scale < CONSTANT_STD] = 1.0
    z = (x - mean) / scale
    weights = sample_weights(artists, y, weighting)
    coef = np.zeros((x.shape[1], y.shape[1]))
    intercept = np.zeros(y.shape[1])
    # One BLAS thread: these problems are small, and threads fighting over two cores
    # made each fit some 30x slower.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for j in range(y.shape[1]):
            col = y[:, j]
            positives = int(col.sum())
            if positives in (0, len(col)):
                intercept[j] = math.log((positives + 0.5) / (len(col) - positives + 0.5))
                continue
            model = LogisticRegression(C=c, max_iter=2000, tol=1e-6)
            try:
                model.fit(z, col, sample_weight=weights[:, j])
            except ConvergenceWarning as exc:
                raise GenreError(f"the head did not converge ({exc}); lower genre.c") from exc
            coef[:, j] = model.coef_[0]
            intercept[j] = model.intercept_[0]
    return LinearHead(mean, scale, coef, intercept)


# -------------------------------------------------------------------------------- thresholds


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold (predict positive when ``p >= t``) with the highest F1, and that F1.

    Candidates are the observed probabilities; ties go to the higher threshold (fewer false
    positives for the same F1). No positive in ``y``: ``(DEFAULT_THRESHOLD, nan)``.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    if not y.any():
        return DEFAULT_THRESHOLD, math.nan
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    # Answer everything down to the LAST occurrence of each distinct probability.
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    answered = last + 1
    f1 = 2 * tp[last] / (answered + y.sum())
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[0])  # the first = the highest threshold
    return float(ps[last[best]]), float(f1[best])


def choose_thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per genre (column), :func:`best_f1_threshold` on validation labels and probabilities."""
    return np.array([best_f1_threshold(y[:, j], p[:, j])[0] for j in range(y.shape[1])])


# ----------------------------------------------------------------------------------- metrics


def _r(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), DECIMALS)


def genre_metrics(
    y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, genres: Sequence[str]
) -> dict[str, Any]:
    """Per genre and macro: AP, F1/precision/recall at the thresholds, prior baselines.

    ``thresholds`` is ``(g,)`` or ``(n, g)`` (a threshold per painting, as the nested
    held-out-artist evaluation has). Genres without a positive are listed with ``ap: null``
    and left out of the macro averages (AP is undefined for them).
    """
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), p.shape)
    pred = (p >= t).astype(int)
    per_genre: dict[str, dict[str, Any]] = {}
    scored: list[dict[str, Any]] = []
    for j, genre in enumerate(genres):
        col, support = y[:, j], int(y[:, j].sum())
        prior = support / len(col)
        entry: dict[str, Any] = {
            "support": support,
            "n": len(col),
            "ap": None,
            "f1": None,
            "precision": None,
            "recall": None,
            "prior_ap": _r(prior),
            "all_positive_f1": _r(2 * prior / (1 + prior)),
        }
        if support:
            entry.update(
                ap=_r(average_precision_score(col, p[:, j])),
                f1=_r(f1_score(col, pred[:, j], zero_division=0)),
                precision=_r(precision_score(col, pred[:, j], zero_division=0)),
                recall=_r(recall_score(col, pred[:, j], zero_division=0)),
            )
            scored.append(entry)
        per_genre[genre] = entry

    def mean(key: str) -> float | None:
        values = [e[key] for e in scored if e[key] is not None]
        return _r(float(np.mean(values))) if values else None

    return {
        "macro": {
            "ap": mean("ap"),
            "f1": mean("f1"),
            "prior_ap": mean("prior_ap"),
            "all_positive_f1": mean("all_positive_f1"),
            "genres_scored": len(scored),
        },
        "per_genre": per_genre,
        "n": len(y),
    }


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """sklearn's ``average_precision_score`` in plain NumPy (the bootstrap calls it often).

    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct probabilities in decreasing order; nan
    without a positive.
    """
    y = np.asarray(y).astype(bool)
    if not y.any():
        return math.nan
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    scores, hits = np.asarray(p, dtype=np.float64)[order], y[order]
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of binary predictions (0 when nothing is predicted and nothing is positive)."""
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    denominator = int(y.sum() + pred.sum())
    return 2 * int((y & pred).sum()) / denominator if denominator else 0.0


def macro_ap(y: np.ndarray, p: np.ndarray) -> float:
    """Mean AP over the genres that have a positive (nan if none has)."""
    values = [average_precision(y[:, j], p[:, j]) for j in range(y.shape[1]) if y[:, j].any()]
    return float(np.mean(values)) if values else math.nan


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the genres that have a positive."""
    values = [f1(y[:, j], pred[:, j]) for j in range(y.shape[1]) if y[:, j].any()]
    return float(np.mean(values)) if values else math.nan


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    clusters: Sequence[str],
    *,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> list[float | None] | None:
    """Percentile interval of ``statistic(rows)`` over cluster-bootstrap resamples.

    Whole clusters (paintings, or artists) are drawn with replacement; ``statistic`` gets the
    row indices of a resample. None when ``resamples`` is 0.
    """
    if resamples <= 0:
        return None
    labels = np.asarray(clusters, dtype=object)
    names = sorted(set(labels.tolist()))
    rows_of = {c: np.flatnonzero(labels == c) for c in names}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(names), len(names))
        rows = np.concatenate([rows_of[names[i]] for i in drawn])
        value = statistic(rows)
        if math.isfinite(value):
            values.append(value)
    if not values:
        return [None, None]
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return [_r(float(low)), _r(float(high))]


# ------------------------------------------------------------------------------- evaluations


@dataclass(frozen=True)
class FitSettings:
    """How every head of a run is fitted and its metrics' intervals drawn."""

    c: float
    weighting: Weighting
    resamples: int
    seed: int


@dataclass(frozen=True)
class Evaluation:
    """Probabilities and thresholds of one evaluation, rows aligned with the scored rows."""

    rows: np.ndarray  # row indices into GenreData.frame
    proba: np.ndarray  # (len(rows), g)
    thresholds: np.ndarray  # (g,) or (len(rows), g)
    metrics: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def held_out_paintings(
    data: GenreData,
    stats: np.ndarray,
    split: np.ndarray,
    fit: FitSettings,
) -> tuple[LinearHead, np.ndarray, Evaluation]:
    """Head on train, thresholds on val, metrics on test. Returns (head, thresholds, eval)."""
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    for name, rows in (("train", train), ("val", val), ("test", test)):
        if not len(rows):
            raise GenreError(f"the held-out-paintings {name} split is empty: add paintings")
    artists = list(data.frame["artist"])
    head = fit_head(
        stats[train], data.y[train], [artists[i] for i in train], c=fit.c, weighting=fit.weighting
    )
    thresholds = choose_thresholds(data.y[val], head.predict(stats[val]))
    p_test = head.predict(stats[test])
    metrics = genre_metrics(data.y[test], p_test, thresholds, data.genres)
    y_test = data.y[test]
    ids = [str(i) for i in range(len(test))]
    metrics["macro"]["ap_interval"] = bootstrap_interval(
        lambda r: macro_ap(y_test[r], p_test[r]), ids, resamples=fit.resamples, seed=fit.seed
    )
    metrics["macro"]["f1_interval"] = bootstrap_interval(
        lambda r: macro_f1(y_test[r], (p_test[r] >= thresholds).astype(int)),
        ids,
        resamples=fit.resamples,
        seed=fit.seed,
    )
    metrics["sizes"] = {"train": len(train), "val": len(val), "test": len(test)}
    return head, thresholds, Evaluation(test, p_test, thresholds, metrics)


def held_out_artists(
    data: GenreData,
    stats: np.ndarray,
    folds: np.ndarray,
    fit: FitSettings,
) -> Evaluation:
    """Each fold of artists predicted by a head trained without it; nested thresholds.

    For outer fold ``i`` the thresholds come from predictions of every other fold ``j`` by a
    head trained without folds ``i`` and ``j``: held-out-artist probabilities, like the test
    ones, but never the test fold's. Scored on genres with at least two artists.
    """
    artists = np.asarray(data.frame["artist"], dtype=object)
    k = int(folds.max()) + 1
    n, g = data.y.shape
    per_genre_artists = data.artists_per_genre()
    scored = [j for j, genre in enumerate(data.genres) if per_genre_artists[genre] >= 2]
    if not scored:
        reason = (
            "no genre has two artists: a held-out artist's genre was never seen in another "
            "painter, so there is nothing to learn it from"
        )
        empty = dict.fromkeys(("ap", "f1", "prior_ap", "all_positive_f1"))
        nothing: dict[str, Any] = {
            "skipped": reason,
            "macro": {**empty, "genres_scored": 0},
            "per_genre": {},
            "folds": k,
            "artists": len(set(artists.tolist())),
            "genres_left_out": list(data.genres),
        }
        return Evaluation(np.arange(n), np.full((n, g), np.nan), np.zeros(g), nothing)

    def fit_without(excluded: set[int]) -> LinearHead:
        rows = np.flatnonzero(~np.isin(folds, sorted(excluded)))
        return fit_head(
            stats[rows], data.y[rows], list(artists[rows]), c=fit.c, weighting=fit.weighting
        )

    outer = np.zeros((n, g))
    for i in range(k):
        rows = folds == i
        outer[rows] = fit_without({i}).predict(stats[rows])
    inner = np.zeros((k, n, g))  # inner[i, rows of fold j]: trained without folds i and j
    for i, j in combinations(range(k), 2):
        head = fit_without({i, j})
        inner[i, folds == j] = head.predict(stats[folds == j])
        inner[j, folds == i] = head.predict(stats[folds == i])
    thresholds = np.zeros((n, g))
    fold_thresholds: dict[int, list[float]] = {}
    for i in range(k):
        others = folds != i
        t = choose_thresholds(data.y[others], inner[i, others])
        thresholds[folds == i] = t
        fold_thresholds[i] = [round(float(v), DECIMALS) for v in t]

    names = [data.genres[j] for j in scored]
    y, p, t = data.y[:, scored], outer[:, scored], thresholds[:, scored]
    metrics = genre_metrics(y, p, t, names)
    artist_ids = list(artists)
    metrics["macro"]["ap_interval"] = bootstrap_interval(
        lambda r: macro_ap(y[r], p[r]), artist_ids, resamples=fit.resamples, seed=fit.seed
    )
    metrics["macro"]["f1_interval"] = bootstrap_interval(
        lambda r: macro_f1(y[r], (p[r] >= t[r]).astype(int)),
        artist_ids,
        resamples=fit.resamples,
        seed=fit.seed,
    )
    metrics["folds"] = k
    metrics["artists"] = len(set(artist_ids))
    metrics["genres_left_out"] = sorted(set(data.genres) - set(names))
    return Evaluation(
        np.arange(n), outer, thresholds, metrics, extra={"fold_thresholds": fold_thresholds}
    )


def artist_genre_table(data: GenreData, proba: np.ndarray) -> pd.DataFrame:
    """Mean held-out probability of each genre per artist (rows sorted by genre set, name)."""
    frame = pd.DataFrame(proba, columns=data.genres)
    frame["artist"] = list(data.frame["artist"])
    table = frame.groupby("artist")[data.genres].mean()
    truth = pd.DataFrame(data.y, columns=data.genres)
    truth["artist"] = list(data.frame["artist"])
    labels = truth.groupby("artist")[data.genres].max()
    order = sorted(table.index, key=lambda a: (tuple(-labels.loc[a].to_numpy()), a))
    return table.loc[order]


# ------------------------------------------------------------------------------------- model


def build_genre_model(
    trunk: Any, head: LinearHead, genres: Sequence[str], name: str = "genre"
) -> Any:
    """The whole image -> genre-probabilities Keras model: ``trunk`` + the fitted head.

    ``Normalization`` holds the training mean and variance, ``Dense(sigmoid)`` the
    coefficients; both are named ``head_*`` like every head of the zoo, so
    :func:`artist_id.models.split_trunk_head` splits it again.
    """
    import keras

    d, g = head.coef.shape
    if g != len(genres) or int(trunk.output_shape[-1]) != d:
        raise GenreError(f"head {head.coef.shape} does not fit trunk {trunk.output_shape}")
    norm = keras.layers.Normalization(name="head_norm")
    dense = keras.layers.Dense(g, activation="sigmoid", name="head_genres")
    outputs = dense(norm(trunk.output))
    model = keras.Model(trunk.input, outputs, name=name)
    norm.set_weights(
        [
            head.mean.astype(np.float32),
            np.square(head.scale).astype(np.float32),
            np.asarray(0, dtype=np.int64),
        ]
    )
    norm.finalize_state()  # Keras caches mean/variance tensors; loading does the same
    dense.set_weights([head.coef.astype(np.float32), head.intercept.astype(np.float32)])
    return model


# ------------------------------------------------------------------------------------- plots


def plot_ap(paintings: Mapping[str, Any], artists: Mapping[str, Any], path: Path) -> None:
    """AP per genre: held-out paintings, held-out artists, and the prior baseline."""
    genres = list(paintings["per_genre"])
    fig = Figure(figsize=(8, 1.9 + 0.55 * len(genres)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(genres))
    # the prior of the held-out-artist evaluation (all paintings), else of the test paintings
    prior = {g: artists["per_genre"].get(g) or paintings["per_genre"][g] for g in genres}
    series = [
        ("held-out paintings (artists seen)", paintings["per_genre"], "ap", "#9ecae1", -0.27),
        ("held-out artists (the honest number)", artists["per_genre"], "ap", "#1f6f8b", 0.0),
        ("prior (genre frequency)", prior, "prior_ap", "#c8c8c8", 0.27),
    ]
    for label, table, key, colour, offset in series:
        values = [(table.get(g) or {}).get(key) for g in genres]
        ax.barh(
            y + offset,
            [v if v is not None else 0 for v in values],
            height=0.26,
            color=colour,
            label=label,
        )
        for yi, v in zip(y + offset, values, strict=True):
            ax.text(
                (v or 0) + 0.01, yi, "n/a" if v is None else f"{v:.2f}", va="center", fontsize=7
            )
    ax.set_yticks(y, genres, fontsize=9)
    ax.set_ylim(len(genres) - 0.5, -0.6)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("average precision (1 = every painting of the genre ranked first)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, fontsize=7.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Genre model: average precision per genre", fontsize=11)
    figures.save(fig, path)


def plot_artist_table(table: pd.DataFrame, truth: pd.DataFrame, path: Path) -> None:
    """Heatmap: mean probability of each genre for each artist while that artist was held out.

    Cells of the artist's true genres are outlined: a dark outlined cell is a genre recognised
    in a painter the model never saw.
    """
    genres = list(table.columns)
    fig = Figure(figsize=(2.2 + 1.1 * len(genres), 1.4 + 0.32 * len(table)), layout="constrained")
    ax = fig.add_subplot()
    if table.isna().all().all():
        ax.text(0.5, 0.5, "no genre has two artists:\nnothing to hold out", ha="center")
        ax.set_axis_off()
        figures.save(fig, path)
        return
    image = ax.imshow(table.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    figures.annotate_cells(ax, table.to_numpy(), light_above=0.6)
    for i, artist in enumerate(table.index):
        for j, genre in enumerate(genres):
            if truth.loc[artist, genre]:
                ax.add_patch(
                    _rectangle((j - 0.47, i - 0.45), 0.94, 0.9, edgecolor="#e8a54b", linewidth=2)
                )
    ax.set_xticks(np.arange(len(genres)), genres, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(table)), list(table.index), fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8, label="mean probability (artist held out)")
    ax.set_title("Held-out artists: genre probabilities (outlined = true genre)", fontsize=10)
    figures.save(fig, path)


def _rectangle(xy: tuple[float, float], w: float, h: float, **style: Any) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, fill=False, **style)


# ------------------------------------------------------------------------------------ report


def dvc_metrics(details: Mapping[str, Any]) -> dict[str, Any]:
    """What a reviewer compares across runs (the stage's DVC metrics file).

    ``{"genre": {<evaluation>: {macro_ap, macro_ap_ci, macro_f1, macro_f1_ci, prior_ap,
    all_positive_f1}}}``: the macro scores of both evaluations with their intervals and
    baselines; per-genre numbers stay in the details. Undefined values are left out.
    """
    out: dict[str, Any] = {}
    for evaluation in ("held_out_artists", "held_out_paintings"):
        macro = details[evaluation]["macro"]
        values = {
            "macro_ap": macro.get("ap"),
            "macro_ap_ci": macro.get("ap_interval"),
            "macro_f1": macro.get("f1"),
            "macro_f1_ci": macro.get("f1_interval"),
            "prior_ap": macro.get("prior_ap"),
            "all_positive_f1": macro.get("all_positive_f1"),
        }
        out[evaluation] = {
            k: v
            for k, v in values.items()
            if v is not None and not (isinstance(v, list) and None in v)
        }
    return {"genre": out}


def report_markdown(metrics: Mapping[str, Any]) -> str:
    """The genre report a reviewer reads: both evaluations, baselines, and what they mean."""
    paintings, artists = metrics["held_out_paintings"], metrics["held_out_artists"]

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def interval(v: Any) -> str:
        return "" if not v or v[0] is None else f" [{v[0]:.2f}, {v[1]:.2f}]"

    lines = [
        "# Genre model",
        "",
        f"Multi-label genre model on texture statistics: {len(metrics['genres'])} genres, "
        f"{metrics['paintings']} paintings of {metrics['artists']} artists.",
        "",
        "**The honest number is the held-out-artist one**: it is what a user gets for a "
        "painting by a painter the model has never seen. Held-out paintings come from artists "
        "the model was trained on, so that score also rewards recognising the artist's hand.",
        "",
        "| evaluation | macro AP [95 % CI] | prior AP | macro F1 [95 % CI] | all-positive F1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, m in (("held-out artists", artists), ("held-out paintings", paintings)):
        macro = m["macro"]
        lines.append(
            f"| {label} | {fmt(macro['ap'])}{interval(macro.get('ap_interval'))} | "
            f"{fmt(macro['prior_ap'])} | {fmt(macro['f1'])}{interval(macro.get('f1_interval'))}"
            f" | {fmt(macro['all_positive_f1'])} |"
        )
    lines += [
        "",
        "AP (average precision) is 1 when every painting of the genre is ranked above every "
        "other; a model that knows only how common the genre is scores its frequency (prior "
        "AP). F1 is at the per-genre threshold chosen on validation (never test); the "
        "all-positive F1 is what calling every painting that genre scores.",
        "",
        "| genre | artists | paintings | AP held-out artists | AP held-out paintings | prior |"
        " threshold |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for genre in metrics["genres"]:
        a = artists["per_genre"].get(genre, {})
        p = paintings["per_genre"][genre]
        lines.append(
            f"| {genre} | {metrics['artists_per_genre'][genre]} | "
            f"{metrics['paintings_per_genre'][genre]} | {fmt(a.get('ap'))} | {fmt(p['ap'])} | "
            f"{fmt(a.get('prior_ap', p['prior_ap']))} | {metrics['thresholds'][genre]:.3f} |"
        )
    if metrics["excluded"]:
        lines += [
            "",
            "Left out (too few artists or paintings to be a genre rather than a painter):",
            "",
        ]
        for genre, info in metrics["excluded"].items():
            lines.append(f"- {genre}: {info['reason']}")
    if artists.get("skipped"):
        lines += ["", f"Held-out artists: not evaluated, {artists['skipped']}."]
    elif artists.get("genres_left_out"):
        lines += [
            "",
            "Not scored on held-out artists (one artist only): "
            + ", ".join(artists["genres_left_out"]),
        ]
    return "\n".join(lines) + "\n"
