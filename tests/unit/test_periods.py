"""Style by period: period labels, the map, palettes, separation and the artist-grouped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artist_id import periods as pm
from artist_id.artists import UNKNOWN_PERIOD, ArtistMeta


def test_painting_periods_use_the_artist_and_mark_undated() -> None:
    meta = {
        "Ann": ArtistMeta("Ann", (1853, 1890), ("Impressionism",), ()),
        "Bo": ArtistMeta("Bo", None, (), ()),
    }
    assert pm.painting_periods(["Ann", "Bo", "Cy"], meta, 50, "midpoint") == [
        "1850-1899",
        UNKNOWN_PERIOD,
        UNKNOWN_PERIOD,
    ]
    assert pm.painting_periods(["Ann"], meta, 25, "death") == ["1875-1899"]
    assert pm.first_genres(["Ann", "Bo"], meta) == ["Impressionism", "unknown"]


def test_standardised_differences_by_hand() -> None:
    stats = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0], [7.0, 5.0]])
    d = pm.standardised_differences(stats, np.array([True, True, False, False]))
    # inside mean 2, outside 6, both sample variances 2 -> pooled sd sqrt(2)
    assert d[0] == pytest.approx(-4 / np.sqrt(2))
    assert d[1] == 0.0  # a constant statistic separates nothing (no division by zero)
    with pytest.raises(pm.PeriodsError):
        pm.standardised_differences(stats, np.array([True, False, False, False]))


def test_separation_names_blocks_and_the_strongest_statistics() -> None:
    rng = np.random.default_rng(0)
    names = [f"block{b}_conv2/{s}/{c}" for b in (1, 2) for s in ("mean", "std") for c in range(3)]
    stats = rng.normal(size=(40, len(names)))
    periods = ["early"] * 20 + ["late"] * 20
    stats[:20, names.index("block2_conv2/std/1")] += 5.0  # early paintings: much higher
    sep = pm.separation(stats, periods, names, top=2)
    assert list(sep.blocks.columns) == [
        "block1_conv2 mean",
        "block1_conv2 std",
        "block2_conv2 mean",
        "block2_conv2 std",
    ]
    assert sep.blocks.loc["early"].idxmax() == "block2_conv2 std"
    first = sep.top["early"][0]
    assert first["statistic"] == "block2_conv2/std/1" and first["direction"] == "higher"
    assert sep.top["late"][0]["direction"] == "lower"
    assert len(sep.top["early"]) == 2


def test_palette_recovers_flat_colours_and_their_shares(tmp_path: Path) -> None:
    paths = []
    for i, (left, right) in enumerate(
        [((255, 0, 0), (0, 0, 255)), ((255, 0, 0), (255, 0, 0)), ((0, 0, 255), (0, 0, 255))]
    ):
        array = np.zeros((40, 40, 3), dtype=np.uint8)
        array[:, :20] = left
        array[:, 20:] = right
        path = tmp_path / f"p{i}.png"  # PNG: no JPEG ringing between the halves
        Image.fromarray(array).save(path)
        paths.append(str(path))
    colours = pm.palette(paths, colours=4, pixels=3000, seed=0)
    # only two colours exist: k is capped at the distinct pixels; half of each
    assert sorted(c["hex"] for c in colours) == ["#0000ff", "#ff0000"]
    assert sum(c["share"] for c in colours) == pytest.approx(1.0)
    assert all(c["share"] == pytest.approx(0.5, abs=0.05) for c in colours)
    assert pm.palette([], 4, 100, 0) == []


def test_style_map_is_seeded_and_caps_its_settings() -> None:
    rng = np.random.default_rng(0)
    stats = np.concatenate([rng.normal(0, 1, (12, 8)), rng.normal(6, 1, (12, 8))])
    coords, info = pm.style_map(stats, pca_components=50, perplexity=30, seed=3)
    again, _ = pm.style_map(stats, pca_components=50, perplexity=30, seed=3)
    assert coords.shape == (24, 2) and np.array_equal(coords, again)
    assert info["pca_components"] == 8  # at most the features (and n - 1)
    assert info["perplexity"] == pytest.approx(23 / 3, abs=1e-3)
    # the two clouds stay apart on the map
    a, b = coords[:12].mean(axis=0), coords[12:].mean(axis=0)
    spread = max(coords[:12].std(axis=0).max(), coords[12:].std(axis=0).max())
    assert np.linalg.norm(a - b) > 2 * spread
    with pytest.raises(pm.PeriodsError):
        pm.style_map(stats[:4], pca_components=2, perplexity=5, seed=0)


def test_spread_picks_are_distinct_and_sorted() -> None:
    coords = np.array([[0, 0], [0, 1], [10, 10], [10, 11], [20, 0]], dtype=float)
    picks = pm.spread_picks(coords, 3, seed=0)
    assert picks == sorted(set(picks)) and len(picks) == 3
    assert {p // 2 for p in picks if p < 4} == {0, 1} and 4 in picks
    assert pm.spread_picks(coords, 0, seed=0) == []


def test_period_classifier_groups_by_artist() -> None:
    rng = np.random.default_rng(0)
    artists = [f"a{k}" for k in range(6) for _ in range(10)]
    periods = ["1850-1899" if k < 3 else "1900-1949" for k in range(6) for _ in range(10)]
    stats = rng.normal(size=(60, 4))
    stats[:30, 0] += 8  # the period is in the statistics, for every artist of it
    result = pm.period_classifier(stats, periods, artists, folds=3, c=1.0, seed=0)
    assert result["grouped_by"] == "artist" and result["folds"] == 3
    assert result["accuracy"] == 1.0
    assert result["majority_baseline"]["balanced_accuracy"] <= 0.5
    assert result["periods_with_one_artist"] == []
    # one artist per period: held out, that artist's period has no training example
    lonely = pm.period_classifier(
        stats[:20],
        periods[:10] + ["1900-1949"] * 10,
        ["x"] * 10 + ["y"] * 10,
        folds=5,
        c=1.0,
        seed=0,
    )
    assert lonely["folds"] == 2 and lonely["accuracy"] == 0.0
    assert lonely["periods_with_one_artist"] == ["1850-1899", "1900-1949"]
    assert "skipped" in pm.period_classifier(stats[:5], ["p"] * 5, ["x"] * 5, folds=2, c=1, seed=0)
