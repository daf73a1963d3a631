"""Style by period: what the paintings of one period have in common, in pictures.

A painting's period is its artist's: the ``width``-year bucket of the life span's midpoint
(birth or death year with ``anchor``; see :func:`artist_id.artists.period`). The texture
statistics of every painting (:mod:`artist_id.style_features`) give

* a 2-D **map**: standardise, PCA, then t-SNE (seeded, scikit-learn), coloured by period and
  by genre, with a few thumbnails placed where they fall;
* each period's **palette**: k-means on pixels sampled evenly from its paintings;
* the statistics that **separate** each period from the others: standardised mean
  differences (Cohen's d) of every channel mean/std, averaged per VGG block so they can be
  named (block 1 means are mostly colour, block 1 stds fine contrast, deeper blocks stroke
  and pattern texture at larger scales), plus the strongest single channels;
* how well a **linear model** on the statistics predicts the period, cross-validated with
  artists grouped (a painter's period cannot be learnt from the painter's other paintings).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from artist_id import figures
from artist_id.artists import UNKNOWN_PERIOD, Anchor, ArtistMeta

log = logging.getLogger(__name__)

DECIMALS = 4
THUMB_PX = 40  # thumbnails on the map
PIXELS_SIDE = 48  # paintings are shrunk to this side before their pixels are sampled
OTHER = "other"
MAX_COLOURS = 10  # legend entries per map panel; rarer values are drawn as "other"


class PeriodsError(ValueError):
    """Too few dated paintings or periods for the analysis; says what to change."""


# ----------------------------------------------------------------------------------- labels


def painting_periods(
    artists: Sequence[str], meta: Mapping[str, ArtistMeta], width: int, anchor: Anchor
) -> list[str]:
    """The period of each painting (its artist's), ``"unknown"`` without parsable years."""
    return [meta[a].period(width, anchor) if a in meta else UNKNOWN_PERIOD for a in artists]


def first_genres(artists: Sequence[str], meta: Mapping[str, ArtistMeta]) -> list[str]:
    """The first genre artists.csv lists for each painting's artist (the map's colour)."""
    return [meta[a].genres[0] if a in meta and meta[a].genres else "unknown" for a in artists]


# -------------------------------------------------------------------------------------- map


def style_map(
    stats: np.ndarray, *, pca_components: int, perplexity: float, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D coordinates of every painting: standardise, PCA, t-SNE (seeded).

    PCA keeps at most ``n - 1`` components; the perplexity is capped at ``(n - 1) / 3`` so
    that t-SNE accepts small sets. Returns the coordinates and what was used.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n = len(stats)
    if n < 5:
        raise PeriodsError(f"a style map needs at least 5 paintings, got {n}")
    used = min(perplexity, (n - 1) / 3)
    # One OpenMP/BLAS thread: on a shared 2-core machine, t-SNE's threads fighting other
    # processes made it 5x slower, and one thread keeps the result independent of the cores.
    with threadpool_limits(limits=1):
        z = StandardScaler().fit_transform(np.asarray(stats, dtype=np.float64))
        k = max(2, min(pca_components, n - 1, z.shape[1]))
        reduced = PCA(n_components=k, random_state=seed).fit_transform(z)
        tsne = TSNE(n_components=2, perplexity=used, init="pca", random_state=seed)
        coords = tsne.fit_transform(reduced)
    info = {
        "pca_components": k,
        "perplexity": round(float(used), 3),
        "kl_divergence": round(float(tsne.kl_divergence_), 3),
    }
    return coords, info


def spread_picks(coords: np.ndarray, k: int, seed: int) -> list[int]:
    """``k`` paintings spread over the map: the one nearest each k-means centre (sorted)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    k = min(k, len(coords))
    if k <= 0:
        return []
    with threadpool_limits(limits=1):
        centres = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(coords).cluster_centers_
    picks: list[int] = []
    for centre in centres:
        order = np.argsort(np.linalg.norm(coords - centre, axis=1), kind="stable")
        picks.append(next(int(i) for i in order if int(i) not in picks))
    return sorted(picks)


def _legend_values(values: Sequence[str]) -> list[str]:
    """The most frequent values (at most MAX_COLOURS - 1 when some must become "other")."""
    counts = Counter(values)
    ranked = sorted(counts, key=lambda v: (-counts[v], v))
    if len(ranked) <= MAX_COLOURS:
        return sorted(ranked)
    return sorted(ranked[: MAX_COLOURS - 1])


def _colours(values: Sequence[str], ordered: bool) -> dict[str, Any]:
    from matplotlib import colormaps

    if ordered:  # periods: a sequential map, early = dark
        cmap = colormaps["viridis"]
        return {v: cmap(i / max(1, len(values) - 1)) for i, v in enumerate(values)}
    cmap = colormaps["tab10"]
    return {v: cmap(i % 10) for i, v in enumerate(values)}


def plot_map(
    coords: np.ndarray,
    periods: Sequence[str],
    genres: Sequence[str],
    thumbs: Mapping[int, np.ndarray],
    path: Path,
) -> None:
    """Two panels of the same map: coloured by period (with thumbnails) and by genre."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig = Figure(figsize=(13, 6.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for ax, values, title, ordered in (
        (left, periods, "coloured by period (artist's life-span midpoint)", True),
        (right, genres, "coloured by genre (artist's first listed genre)", False),
    ):
        shown = _legend_values(values)
        colour = _colours(shown, ordered)
        labels = np.array([v if v in colour else OTHER for v in values], dtype=object)
        for value in [*shown, OTHER]:
            rows = labels == value
            if rows.any():
                ax.scatter(
                    coords[rows, 0],
                    coords[rows, 1],
                    s=14,
                    color=colour.get(value, (0.7, 0.7, 0.7, 1.0)),
                    label=f"{value} ({int(rows.sum())})",
                    alpha=0.85,
                    linewidths=0,
                )
        ax.legend(fontsize=7, loc="best", markerscale=1.5, framealpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    period_colour = _colours(_legend_values(periods), True)
    for i, thumb in sorted(thumbs.items()):
        frame = period_colour.get(periods[i], (0.5, 0.5, 0.5, 1.0))
        box = AnnotationBbox(
            OffsetImage(thumb, zoom=1.0),
            (coords[i, 0], coords[i, 1]),
            frameon=True,
            pad=0.15,
            bboxprops={"edgecolor": frame, "linewidth": 2},
        )
        left.add_artist(box)
    fig.suptitle(
        "Paintings by texture statistics (PCA, then t-SNE): near = similar style", fontsize=12
    )
    figures.save(fig, path)


# ---------------------------------------------------------------------------------- palettes


def _pixels(path: str, count: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB")
        small.thumbnail((PIXELS_SIDE, PIXELS_SIDE))
        pixels = np.asarray(small, dtype=np.float64).reshape(-1, 3)
    return pixels[rng.integers(0, len(pixels), count)]


def palette(paths: Sequence[str], colours: int, pixels: int, seed: int) -> list[dict[str, Any]]:
    """Dominant colours of a set of paintings: ``[{"hex", "rgb", "share"}]``, largest first.

    Every painting gives the same number of pixels (so large canvases do not dominate); the
    colours are k-means centres in RGB, the share the fraction of sampled pixels nearest each.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    if not paths:
        return []
    rng = np.random.default_rng(seed)
    per_painting = max(1, pixels // len(paths))
    sample = np.concatenate([_pixels(p, per_painting, rng) for p in paths])
    k = min(colours, len(np.unique(sample, axis=0)))
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)
    shares = np.bincount(km.labels_, minlength=k) / len(sample)
    out = []
    for centre, share in sorted(
        zip(km.cluster_centers_, shares, strict=True), key=lambda cs: (-cs[1], tuple(cs[0]))
    ):
        rgb = [round(float(c)) for c in np.clip(centre, 0, 255)]
        out.append(
            {"hex": "#{:02x}{:02x}{:02x}".format(*rgb), "rgb": rgb, "share": round(float(share), 4)}
        )
    return out


def plot_palettes(palettes: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
    """One strip per period: its dominant colours, widths proportional to their share."""
    from matplotlib.patches import Rectangle

    names = list(palettes)
    fig = Figure(figsize=(9, 0.9 + 0.62 * max(1, len(names))), layout="constrained")
    ax = fig.add_subplot()
    for row, name in enumerate(names):
        x = 0.0
        for colour in palettes[name]:
            width = float(colour["share"])
            ax.add_patch(Rectangle((x, row - 0.4), width, 0.8, color=colour["hex"]))
            if width > 0.06:
                light = sum(colour["rgb"]) / 3 > 140
                ax.text(
                    x + width / 2,
                    row,
                    colour["hex"],
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="black" if light else "white",
                )
            x += width
    ax.set_xlim(0, 1)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(np.arange(len(names)), names, fontsize=9)
    ax.set_xlabel("share of sampled pixels (every painting of the period sampled equally)")
    ax.set_title("Characteristic palette per period (k-means in RGB)", fontsize=11)
    figures.save(fig, path)


# -------------------------------------------------------------------------------- separation


def standardised_differences(stats: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Cohen's d of every statistic: (mean inside - mean outside) / pooled std."""
    x = np.asarray(stats, dtype=np.float64)
    a, b = x[inside], x[~inside]
    if len(a) < 2 or len(b) < 2:
        raise PeriodsError("need at least two paintings on each side to compare")
    pooled = np.sqrt(
        ((len(a) - 1) * a.var(axis=0, ddof=1) + (len(b) - 1) * b.var(axis=0, ddof=1))
        / (len(a) + len(b) - 2)
    )
    d = (a.mean(axis=0) - b.mean(axis=0)) / np.where(pooled > 1e-12, pooled, np.inf)
    return d


def block_of(name: str) -> tuple[str, str]:
    """``block3_conv3/std/17`` -> ``("block3_conv3", "std")``."""
    layer, stat, _channel = name.split("/")
    return layer, stat


@dataclass(frozen=True)
class Separation:
    """Per period: mean |d| per (layer, stat) and the strongest single statistics."""

    blocks: pd.DataFrame  # index: period, columns "<layer> <stat>", values mean |d|
    top: dict[str, list[dict[str, Any]]]


def separation(
    stats: np.ndarray, periods: Sequence[str], names: Sequence[str], top: int
) -> Separation:
    """What separates each period from all other paintings, by block and by statistic."""
    labels = np.asarray(periods, dtype=object)
    keys = [block_of(n) for n in names]
    columns = list(dict.fromkeys(f"{layer} {stat}" for layer, stat in keys))
    column_of = np.array([columns.index(f"{layer} {stat}") for layer, stat in keys])
    rows: dict[str, list[float]] = {}
    strongest: dict[str, list[dict[str, Any]]] = {}
    for period in sorted(set(labels.tolist())):
        d = standardised_differences(stats, labels == period)
        magnitude = np.abs(d)
        rows[period] = [float(magnitude[column_of == c].mean()) for c in range(len(columns))]
        order = np.argsort(-magnitude, kind="stable")[:top]
        strongest[period] = [
            {
                "statistic": names[i],
                "block": block_of(names[i])[0],
                "d": round(float(d[i]), 3),
                "direction": "higher" if d[i] > 0 else "lower",
            }
            for i in order
        ]
    blocks = pd.DataFrame.from_dict(rows, orient="index", columns=columns).round(DECIMALS)
    return Separation(blocks, strongest)


def plot_separation(sep: Separation, path: Path) -> None:
    """Heatmap: mean |Cohen's d| of each block's channel means/stds, per period vs the rest."""
    table = sep.blocks
    if table.empty:
        fig = Figure(figsize=(6, 2), layout="constrained")
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "fewer than two periods with enough paintings", ha="center")
        ax.set_axis_off()
        figures.save(fig, path)
        return
    fig = Figure(
        figsize=(2.6 + 0.75 * table.shape[1], 1.8 + 0.45 * table.shape[0]), layout="constrained"
    )
    ax = fig.add_subplot()
    image = ax.imshow(table.to_numpy(), cmap="magma_r", vmin=0, aspect="auto")
    high = float(table.to_numpy().max()) if table.size else 1.0
    figures.annotate_cells(ax, table.to_numpy(), light_above=0.6 * high)
    ax.set_xticks(
        np.arange(table.shape[1]), list(table.columns), rotation=35, ha="right", fontsize=8
    )
    ax.set_yticks(np.arange(table.shape[0]), list(table.index), fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="mean |Cohen's d| per channel")
    ax.set_title(
        "What sets each period apart: channel means/stds per VGG block vs all other periods",
        fontsize=9.5,
    )
    figures.save(fig, path)


# -------------------------------------------------------------------------------- classifier


def period_classifier(
    stats: np.ndarray,
    periods: Sequence[str],
    artists: Sequence[str],
    *,
    folds: int,
    c: float,
    seed: int,
) -> dict[str, Any]:
    """Cross-validated (artists grouped) accuracy of a linear model predicting the period.

    Standardise + multinomial logistic regression, fitted per fold on the other artists'
    paintings. The baseline predicts each fold's training majority period (with few artists it
    is worse than chance: holding an artist out makes its period the minority), so chance
    balanced accuracy is reported too. A period painted by one artist only cannot be
    predicted for that artist: such periods are listed.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    y = np.asarray(periods, dtype=object)
    groups = np.asarray(artists, dtype=object)
    n_artists = len(set(groups.tolist()))
    classes = sorted(set(y.tolist()))
    artists_per_period = {p: len(set(groups[y == p].tolist())) for p in classes}
    if len(classes) < 2 or n_artists < 2:
        return {
            "skipped": f"{len(classes)} period(s) and {n_artists} artist(s): nothing to predict"
        }
    k = min(folds, n_artists)
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    pred = np.empty(len(y), dtype=object)
    baseline = np.empty(len(y), dtype=object)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny folds
        for train, test in splitter.split(stats, y, groups):
            counts = Counter(y[train].tolist())
            majority = sorted(counts, key=lambda p: (-counts[p], p))[0]
            baseline[test] = majority
            if len(counts) < 2:
                pred[test] = majority
                continue
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
            model.fit(stats[train], y[train])
            pred[test] = model.predict(stats[test])

    def scores(guess: np.ndarray) -> dict[str, float]:
        return {
            "accuracy": round(float(accuracy_score(y, guess)), DECIMALS),
            "balanced_accuracy": round(float(balanced_accuracy_score(y, guess)), DECIMALS),
            "macro_f1": round(float(f1_score(y, guess, average="macro", zero_division=0)), 4),
        }

    return {
        "grouped_by": "artist",
        # Chance for balanced accuracy. The training-majority baseline is no fair chance
        # level here: a held-out artist's period is the rarer one in its own training folds.
        "chance_balanced_accuracy": round(1 / len(classes), DECIMALS),
        "folds": k,
        "paintings": len(y),
        "artists": n_artists,
        **scores(pred),
        "majority_baseline": scores(baseline),
        "periods_with_one_artist": sorted(p for p, n in artists_per_period.items() if n == 1),
    }


def dvc_metrics(classifier: Mapping[str, Any], dated: int) -> dict[str, Any]:
    """The stage's DVC metrics: the artist-grouped period classifier against chance."""
    if "skipped" in classifier:
        return {"periods": {"dated_paintings": dated}}
    scores = {
        "balanced_accuracy": classifier["balanced_accuracy"],
        "accuracy": classifier["accuracy"],
        "macro_f1": classifier["macro_f1"],
        "chance_balanced_accuracy": classifier["chance_balanced_accuracy"],
    }
    return {"periods": {"held_out_artists": scores, "dated_paintings": dated}}


# ------------------------------------------------------------------------------------ helpers


def thumbnail(path: str, side: int = THUMB_PX) -> np.ndarray:
    """A small centre-cropped square of an image file, as uint8 RGB."""
    from artist_id.style_features import load_square

    return load_square(path, side)
