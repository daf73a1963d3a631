"""The data profile behind the ``eda`` stage: what the raw data holds before anything is kept.

:func:`profile` reads the two ingest tables (``artists.csv`` and ``manifest.csv``, every column
as text) and writes, into one folder it rewrites whole:

* ``paintings_per_artist.png`` + ``.json``: declared (csv) vs found (ok images) per artist with
  the ``select.min_paintings`` threshold; the JSON is DVC plot data (a list of records).
* ``nationality.png``, ``genre.png``: artists per value, multi-valued cells split on commas.
* ``period.png``: one lifetime segment per artist and artists per half-century.
* ``image_sizes.png``: source width x height of ok images and their aspect ratios.
* ``contact_sheet.png``: a few thumbnails per artist, kept artists first.
* ``summary.json``: the counts behind the plots.

Everything is deterministic: sorted tables, no timestamps, PNG metadata without the
matplotlib version, so the same inputs give the same bytes. Missing or malformed columns give
empty plots and ``null`` counts rather than errors (validate is the stage that rejects data).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from artist_id import figures, stage
from artist_id.artists import half_century, parse_years, split_values

log = logging.getLogger(__name__)

MAX_CONTACT_ARTISTS = 12
THUMB_PX = 128  # side of one contact-sheet cell
GREYSCALE_MODES = frozenset({"1", "L", "LA"})

KEPT_COLOUR = "#1f6f8b"
DROPPED_COLOUR = "#b8c4cc"
DECLARED_COLOUR = "#e8a54b"
THRESHOLD_COLOUR = "#c0392b"


# ------------------------------------------------------------------ parsing


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as stripped text; an empty column when it is missing."""
    if name not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return frame[name].astype(str).str.strip()


def _declared(text: str) -> int | None:
    text = str(text).strip()
    return int(text) if text.isdigit() else None


# ------------------------------------------------------------------ tables


@dataclass(frozen=True)
class ArtistRow:
    name: str
    declared: int | None
    found: int
    kept: bool
    years: tuple[int, int] | None
    genres: tuple[str, ...]
    nationalities: tuple[str, ...]


def artist_table(
    artists: pd.DataFrame, manifest: pd.DataFrame, min_paintings: int
) -> list[ArtistRow]:
    """One row per artist in the csv or the manifest, sorted by declared count, then name.

    ``found`` counts the manifest's ok images; ``kept`` mirrors select: found > min_paintings.
    """
    ok = manifest[_column(manifest, "status") == "ok"]
    found = Counter(_column(ok, "artist"))
    info: dict[str, dict[str, str]] = {}
    for rec in zip(
        _column(artists, "name"),
        _column(artists, "paintings"),
        _column(artists, "years"),
        _column(artists, "genre"),
        _column(artists, "nationality"),
        strict=True,
    ):
        name = rec[0]
        if name and name not in info:
            info[name] = dict(
                zip(("paintings", "years", "genre", "nationality"), rec[1:], strict=True)
            )
    names = set(info) | {a for a in found if a}
    rows = []
    for name in names:
        meta = info.get(name, {})
        rows.append(
            ArtistRow(
                name=name,
                declared=_declared(meta.get("paintings", "")),
                found=found.get(name, 0),
                kept=found.get(name, 0) > min_paintings,
                years=parse_years(meta.get("years", "")),
                genres=tuple(split_values(meta.get("genre", ""))),
                nationalities=tuple(split_values(meta.get("nationality", ""))),
            )
        )
    rows.sort(key=lambda r: (-(r.declared or 0), -r.found, r.name))
    return rows


def _count_values(rows: Iterable[ArtistRow], attr: str) -> dict[str, dict[str, int]]:
    """value -> {"artists": n, "kept": k}, sorted by count (descending), then value."""
    total: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for row in rows:
        for value in getattr(row, attr):
            total[value] += 1
            kept[value] += row.kept
    order = sorted(total, key=lambda v: (-total[v], v))
    return {v: {"artists": total[v], "kept": kept[v]} for v in order}


def _ok_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """Ok rows with numeric source sizes (falling back to the canonical size) and mode."""
    ok = manifest[_column(manifest, "status") == "ok"]
    out = pd.DataFrame(
        {
            "image_id": _column(ok, "image_id"),
            "artist": _column(ok, "artist"),
            "path": _column(ok, "path"),
            "mode": _column(ok, "source_mode"),
            "format": _column(ok, "source_format"),
        }
    )
    for side in ("width", "height"):
        source = pd.to_numeric(_column(ok, f"source_{side}"), errors="coerce")
        canonical = pd.to_numeric(_column(ok, side), errors="coerce")
        out[side] = source.fillna(canonical)
    return out.sort_values(["artist", "image_id"], kind="stable").reset_index(drop=True)


def _stats(values: pd.Series) -> dict[str, float | int | None]:
    values = values.dropna()
    if values.empty:
        return {"min": None, "median": None, "max": None}
    return {
        "min": int(values.min()),
        "median": round(float(values.median()), 1),
        "max": int(values.max()),
    }


# ------------------------------------------------------------------ plotting


def _rows_height(n: int, per_row: float = 0.24, extra: float = 1.6) -> float:
    return max(3.0, per_row * n + extra)


def plot_paintings_per_artist(rows: Sequence[ArtistRow], min_paintings: int, path: Path) -> None:
    """Declared vs found paintings per artist with the selection threshold."""
    fig = Figure(figsize=(9, _rows_height(len(rows))), layout="constrained")
    ax = fig.add_subplot()
    if not rows:
        figures.empty(ax, "no artists")
    else:
        y = np.arange(len(rows))
        h = 0.4
        ax.barh(
            y - h / 2,
            [r.declared or 0 for r in rows],
            height=h,
            color=DECLARED_COLOUR,
            label="declared (artists.csv)",
        )
        for keep, colour, label in (
            (True, KEPT_COLOUR, "kept"),
            (False, DROPPED_COLOUR, "dropped"),
        ):
            ax.barh(
                y + h / 2,
                [r.found if r.kept == keep else 0 for r in rows],
                height=h,
                color=colour,
                label=f"found: ok images ({label})",
            )
        ax.axvline(
            min_paintings,
            color=THRESHOLD_COLOUR,
            linestyle="--",
            linewidth=1.2,
            label=f"kept: more than {min_paintings}",
        )
        ax.set_yticks(y, [r.name for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)  # largest at the top
        top = max(max((r.declared or 0) for r in rows), max(r.found for r in rows), min_paintings)
        ax.set_xlim(0, top * 1.12 + 1)
        for i, r in enumerate(rows):
            declared = "?" if r.declared is None else str(r.declared)
            ax.text(
                max(r.declared or 0, r.found) + top * 0.01,
                i,
                f"{r.found} / {declared}",
                va="center",
                fontsize=6.5,
                color="#444444",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
            )
        ax.set_xlabel("paintings (label: found / declared)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        kept = sum(r.kept for r in rows)
        ax.set_title(
            f"Paintings per artist: {kept} of {len(rows)} artists have more than "
            f"{min_paintings} usable images",
            fontsize=11,
        )
    figures.save(fig, path)


def plot_counts(counts: dict[str, dict[str, int]], what: str, path: Path) -> None:
    """Artists per value (stacked: kept by select, dropped)."""
    fig = Figure(figsize=(8, _rows_height(len(counts), 0.26, 1.4)), layout="constrained")
    ax = fig.add_subplot()
    if not counts:
        figures.empty(ax, f"no {what} values")
    else:
        labels = list(counts)
        kept = [counts[v]["kept"] for v in labels]
        dropped = [counts[v]["artists"] - counts[v]["kept"] for v in labels]
        y = np.arange(len(labels))
        ax.barh(y, kept, color=KEPT_COLOUR, label="kept artists")
        ax.barh(y, dropped, left=kept, color=DROPPED_COLOUR, label="dropped artists")
        for i, v in enumerate(labels):
            ax.text(
                counts[v]["artists"] + 0.1, i, str(counts[v]["artists"]), va="center", fontsize=7.5
            )
        ax.set_yticks(y, labels, fontsize=8.5)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(0, max(c["artists"] for c in counts.values()) * 1.1 + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("artists (an artist with several values counts once for each)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"Artists per {what}", fontsize=11)
    figures.save(fig, path)


def plot_period(rows: Sequence[ArtistRow], periods: dict[str, int], path: Path) -> None:
    """Lifetimes as horizontal segments (kept artists coloured) over artists per half-century."""
    dated = sorted((r for r in rows if r.years), key=lambda r: (r.years or (0, 0), r.name))
    fig = Figure(figsize=(9, _rows_height(len(dated), 0.22, 3.2)), layout="constrained")
    if not dated:
        figures.empty(fig.add_subplot(), "no parsable years")
        figures.save(fig, path)
        return
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[max(len(dated), 8), 7])
    for i, r in enumerate(dated):
        start, end = r.years or (0, 0)
        colour = KEPT_COLOUR if r.kept else DROPPED_COLOUR
        top.plot([start, end], [i, i], color=colour, linewidth=4, solid_capstyle="butt")
        top.text(end + 4, i, f"{start}–{end}", va="center", fontsize=6.5, color="#444444")
    top.plot([], [], color=KEPT_COLOUR, linewidth=4, label="kept")
    top.plot([], [], color=DROPPED_COLOUR, linewidth=4, label="dropped")
    top.set_yticks(np.arange(len(dated)), [r.name for r in dated], fontsize=8)
    top.set_ylim(len(dated) - 0.5, -0.5)
    top.legend(loc="lower left", fontsize=8)
    top.grid(axis="x", alpha=0.3)
    top.set_title("Lifetimes (from artists.csv 'years')", fontsize=11)

    starts = [int(k.split("-")[0]) for k in periods]
    bottom.bar(
        [s + 25 for s in starts], list(periods.values()), width=44, color=KEPT_COLOUR, alpha=0.8
    )
    for s, n in zip(starts, periods.values(), strict=True):
        bottom.text(s + 25, n, str(n), ha="center", va="bottom", fontsize=7.5)
    bottom.set_ylim(0, max(periods.values()) * 1.2 + 0.5)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("artists")
    bottom.set_title("Artists per half-century", fontsize=10)
    bottom.set_xlabel("year (bars: half-century of the lifetime's midpoint)")
    bottom.grid(axis="y", alpha=0.3)
    low = min(r.years[0] for r in dated if r.years)
    high = max(r.years[1] for r in dated if r.years)
    bottom.set_xlim(low // 50 * 50 - 10, (high // 50 + 1) * 50 + 60)
    figures.save(fig, path)


def plot_image_sizes(images: pd.DataFrame, kept: set[str], path: Path) -> None:
    """Source width x height of ok images and the distribution of their aspect ratios."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
    sized = images.dropna(subset=["width", "height"])
    sized = sized[(sized["width"] > 0) & (sized["height"] > 0)]
    if sized.empty:
        figures.empty(left, "no image sizes")
        figures.empty(right, "no image sizes")
        figures.save(fig, path)
        return
    is_kept = sized["artist"].isin(kept)
    crowded = len(sized) > 500  # many points: small and translucent; few: visible
    dot, alpha = (6, 0.5) if crowded else (20, 0.9)
    for mask, colour, label in (
        (~is_kept, DROPPED_COLOUR, "dropped artists"),
        (is_kept, KEPT_COLOUR, "kept artists"),
    ):
        if mask.any():
            left.scatter(
                sized.loc[mask, "width"],
                sized.loc[mask, "height"],
                s=dot,
                alpha=alpha,
                color=colour,
                label=f"{label} ({int(mask.sum())})",
                linewidths=0,
            )
    edge = float(max(sized["width"].max(), sized["height"].max())) * 1.05
    left.plot([0, edge], [0, edge], color="#888888", linewidth=0.8, linestyle=":", label="square")
    left.set_xlim(0, edge)
    left.set_ylim(0, edge)
    left.set_aspect("equal")
    left.set_xlabel("source width (px)")
    left.set_ylabel("source height (px)")
    left.legend(loc="upper left", fontsize=8)
    left.grid(alpha=0.3)
    left.set_title(f"Source sizes of {len(sized)} ok images", fontsize=11)

    ratio = (sized["width"] / sized["height"]).clip(0.25, 4.0)
    bins = np.exp(np.linspace(math.log(0.25), math.log(4.0), 41))
    right.hist(ratio, bins=bins, color=KEPT_COLOUR, alpha=0.85)
    right.set_xscale("log")
    ticks = [0.25, 0.5, 0.75, 1.0, 1.33, 2.0, 4.0]
    right.set_xticks(ticks, [f"{t:g}" for t in ticks])
    right.minorticks_off()
    right.axvline(1.0, color="#888888", linewidth=0.8, linestyle=":")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlabel("aspect ratio width / height (log scale, clipped to 0.25-4)")
    right.set_ylabel("images")
    right.grid(axis="y", alpha=0.3)
    grey = int(sized["mode"].isin(GREYSCALE_MODES).sum())
    right.set_title(f"Aspect ratios ({grey} greyscale source images)", fontsize=11)
    figures.save(fig, path)


def _thumbnail(path: Path, size: int) -> Image.Image | None:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("contact sheet: cannot read %s: %s", path, exc)
        return None
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return rgb


def _strip(paths: Sequence[Path], cells: int, size: int) -> np.ndarray:
    """One row of the sheet: ``cells`` square cells, each image centred in its cell."""
    gap = size // 16
    strip = Image.new("RGB", (cells * size + (cells - 1) * gap, size), "white")
    for i, path in enumerate(paths):
        cell = Image.new("RGB", (size, size), (236, 236, 236))
        thumb = _thumbnail(path, size)
        if thumb is not None:
            cell.paste(thumb, ((size - thumb.width) // 2, (size - thumb.height) // 2))
        strip.paste(cell, (i * (size + gap), 0))
    return np.asarray(strip)


def contact_artists(rows: Sequence[ArtistRow], limit: int = MAX_CONTACT_ARTISTS) -> list[str]:
    """Artists shown on the contact sheet: kept first, then most images, then name."""
    shown = [r for r in rows if r.found > 0]
    shown.sort(key=lambda r: (not r.kept, -r.found, r.name))
    return [r.name for r in shown[:limit]]


def pick_evenly(items: Sequence[str], n: int) -> list[str]:
    """``n`` items spread over a sorted sequence (not just its first few), deterministic."""
    if n <= 0 or not items:
        return []
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def plot_contact_sheet(
    images: pd.DataFrame, rows: Sequence[ArtistRow], thumbnails: int, root: Path, path: Path
) -> None:
    """A row of thumbnails per artist (ok images), titled with the artist name."""
    names = contact_artists(rows)
    by_name = {r.name: r for r in rows}
    with_path = images[images["path"] != ""]
    cells = max(thumbnails, 1)
    if not names or thumbnails <= 0:
        fig = Figure(figsize=(6, 2), layout="constrained")
        figures.empty(fig.add_subplot(), "no images to show")
        figures.save(fig, path)
        return
    width = max(6.0, 1.45 * cells)
    fig = Figure(figsize=(width, 1.75 * len(names) + 0.5), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        ids = with_path[with_path["artist"] == name].sort_values("image_id", kind="stable")
        chosen = pick_evenly(list(ids["path"]), thumbnails)
        ax.imshow(_strip([root / p for p in chosen], cells, THUMB_PX), interpolation="none")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        r = by_name[name]
        status = "kept" if r.kept else "dropped"
        ax.set_title(f"{name} — {r.found} images ({status})", loc="left", fontsize=9)
    fig.suptitle(f"Contact sheet: up to {thumbnails} ok images per artist", fontsize=11)
    figures.save(fig, path)


# ------------------------------------------------------------------ entry


def profile(
    artists: pd.DataFrame,
    manifest: pd.DataFrame,
    min_paintings: int,
    thumbnails: int,
    out_dir: Path,
    *,
    image_root: Path = Path(),
) -> dict[str, Any]:
    """Write the EDA report (plots, DVC plot data, summary) into ``out_dir``; return the summary.

    ``out_dir`` is emptied first. Manifest ``path`` values are read relative to ``image_root``
    (the repository root when run as a stage).
    """
    out_dir = stage.fresh_dir(out_dir)
    rows = artist_table(artists, manifest, min_paintings)
    images = _ok_images(manifest)
    kept = {r.name for r in rows if r.kept}
    nationality = _count_values(rows, "nationalities")
    genre = _count_values(rows, "genres")
    period = dict(sorted(Counter(half_century(r.years) for r in rows if r.years).items()))

    plot_data = [{"artist": r.name, "declared": r.declared or 0, "found": r.found} for r in rows]
    stage.write_json(out_dir / "paintings_per_artist.json", plot_data)
    plot_paintings_per_artist(rows, min_paintings, out_dir / "paintings_per_artist.png")
    plot_counts(nationality, "nationality", out_dir / "nationality.png")
    plot_counts(genre, "genre", out_dir / "genre.png")
    plot_period(rows, period, out_dir / "period.png")
    plot_image_sizes(images, kept, out_dir / "image_sizes.png")
    plot_contact_sheet(images, rows, thumbnails, image_root, out_dir / "contact_sheet.png")

    status = Counter(_column(manifest, "status"))
    greyscale = int(images["mode"].isin(GREYSCALE_MODES).sum())
    declared_total = sum(r.declared or 0 for r in rows)
    summary: dict[str, Any] = {
        "artists": len(rows),
        "artists_in_csv": int((_column(artists, "name") != "").sum()),
        "artists_with_images": sum(r.found > 0 for r in rows),
        "artists_kept": len(kept),
        "min_paintings": min_paintings,
        "paintings_declared": declared_total,
        "images": {
            "files": len(manifest),
            "ok": int(status.get("ok", 0)),
            "quarantined": int(status.get("quarantined", 0)),
        },
        "per_artist": {
            r.name: {"declared": r.declared, "found": r.found, "kept": r.kept}
            for r in sorted(rows, key=lambda r: r.name)
        },
        "nationality": {k: v["artists"] for k, v in nationality.items()},
        "genre": {k: v["artists"] for k, v in genre.items()},
        "period": period,
        "years_unparsed": sorted(r.name for r in rows if r.years is None),
        "sizes": {
            "width": _stats(images["width"]),
            "height": _stats(images["height"]),
            "aspect": {
                k: (None if v is None else round(float(v), 3))
                for k, v in _ratio_stats(images).items()
            },
        },
        "greyscale": {
            "images": greyscale,
            "share": round(greyscale / len(images), 4) if len(images) else None,
        },
        "source_formats": dict(sorted(Counter(images["format"]).items())),
    }
    stage.write_json(out_dir / "summary.json", summary)
    return summary


def _ratio_stats(images: pd.DataFrame) -> dict[str, float | None]:
    sized = images.dropna(subset=["width", "height"])
    sized = sized[sized["height"] > 0]
    if sized.empty:
        return {"min": None, "median": None, "max": None}
    ratio = sized["width"] / sized["height"]
    return {"min": float(ratio.min()), "median": float(ratio.median()), "max": float(ratio.max())}


def read_inputs(raw: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``raw/artists.csv`` and ``raw/manifest.csv`` with every column as text."""

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(raw / name, dtype=str, keep_default_na=False)

    return read("artists.csv"), read("manifest.csv")
