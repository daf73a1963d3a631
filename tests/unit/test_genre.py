"""The genre model's labels, splits, head, thresholds and metrics on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score

from artist_id import genre as gm
from artist_id.artists import ArtistMeta


def meta(**genres: str) -> dict[str, ArtistMeta]:
    return {
        name: ArtistMeta(name, (1850, 1900), tuple(g.split(",")) if g else (), ())
        for name, g in genres.items()
    }


# ------------------------------------------------------------------------------ thresholds


@pytest.mark.parametrize(
    ("y", "p", "threshold", "best_f1"),
    [
        # separable: everything from 0.8 up, F1 1
        ([1, 1, 0, 0], [0.9, 0.8, 0.7, 0.1], 0.8, 1.0),
        # ties answered together: t=0.9 -> 2/3, t=0.5 -> 2*2/(3+2) = 0.8, t=0.1 -> 4/6
        ([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], 0.5, 0.8),
        # the best F1 needs the lowest threshold: t=0.7 -> 2*2/(3+2) = 0.8
        ([1, 0, 1], [0.9, 0.8, 0.7], 0.7, 0.8),
        # equal F1 (2/3) at 0.9 and at 0.4: the higher threshold wins
        ([1, 0, 0, 1], [0.9, 0.6, 0.5, 0.4], 0.9, 2 / 3),
    ],
)
def test_best_f1_threshold(y: list[int], p: list[float], threshold: float, best_f1: float) -> None:
    t, f = gm.best_f1_threshold(np.array(y), np.array(p))
    assert t == pytest.approx(threshold)
    assert f == pytest.approx(best_f1)
    # the F1 it reports is the F1 of predicting p >= t
    assert f1_score(y, (np.array(p) >= t).astype(int)) == pytest.approx(best_f1)


def test_threshold_without_a_positive_is_the_default() -> None:
    t, f = gm.best_f1_threshold(np.array([0, 0]), np.array([0.3, 0.9]))
    assert t == gm.DEFAULT_THRESHOLD and math.isnan(f)
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.7, 0.9], [0.2, 0.1], [0.6, 0.5]])
    assert gm.choose_thresholds(y, p).tolist() == [0.6, gm.DEFAULT_THRESHOLD]


# --------------------------------------------------------------------------------- metrics


def test_genre_metrics_by_hand() -> None:
    genres = ["A", "B", "C"]
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.1, 0.2], [0.6, 0.9, 0.1], [0.4, 0.8, 0.3], [0.2, 0.3, 0.4]])
    m = gm.genre_metrics(y, p, np.array([0.5, 0.5, 0.5]), genres)
    a, b, c = (m["per_genre"][g] for g in genres)
    # A: both positives ranked first and above 0.5 -> AP 1, F1 1; prior 2/4
    assert (a["ap"], a["f1"], a["prior_ap"]) == (1.0, 1.0, 0.5)
    assert a["all_positive_f1"] == pytest.approx(2 * 0.5 / 1.5, abs=1e-4)  # 0.6667
    # B: a negative (0.9) above the positive (0.8): precision 1/2 at its rank -> AP 0.5;
    # predicted [0, 1, 1, 0]: one true, one false positive -> F1 2/3, precision 1/2, recall 1
    assert b["ap"] == 0.5 and b["f1"] == pytest.approx(0.6667, abs=1e-4)
    assert (b["precision"], b["recall"]) == (0.5, 1.0)
    assert b["all_positive_f1"] == pytest.approx(0.4)  # prior 1/4 -> 0.5 / 1.25
    # C: no positive -> AP undefined, left out of the macro averages
    assert c["ap"] is None and c["support"] == 0
    assert m["macro"]["genres_scored"] == 2
    assert m["macro"]["ap"] == pytest.approx(0.75)
    assert m["macro"]["f1"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert m["macro"]["prior_ap"] == pytest.approx(0.375)


def test_per_row_thresholds() -> None:
    y = np.array([[1], [0], [1], [0]])
    p = np.array([[0.6], [0.6], [0.3], [0.3]])
    # rows 0-1 use 0.5 (row 0 hit, row 1 false positive); rows 2-3 use 0.2 (hit + false pos.)
    t = np.array([[0.5], [0.5], [0.2], [0.2]])
    m = gm.genre_metrics(y, p, t, ["A"])
    assert m["per_genre"]["A"]["precision"] == 0.5 and m["per_genre"]["A"]["recall"] == 1.0


def test_numpy_average_precision_and_f1_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        if not y.any():
            continue
        p = np.round(rng.random(n), 1)  # rounding makes ties
        assert gm.average_precision(y, p) == pytest.approx(average_precision_score(y, p))
        pred = rng.integers(0, 2, n)
        assert gm.f1(y, pred) == pytest.approx(f1_score(y, pred, zero_division=0))
    assert math.isnan(gm.average_precision(np.zeros(3), np.ones(3)))


def test_bootstrap_interval() -> None:
    assert gm.bootstrap_interval(lambda r: 1.0, ["a"], resamples=0, seed=0) is None
    values = np.array([0.0, 1.0, 0.0, 1.0])
    interval = gm.bootstrap_interval(
        lambda r: float(values[r].mean()), ["a", "b", "c", "d"], resamples=300, seed=1
    )
    assert interval is not None and interval[0] < 0.5 < interval[1]
    assert interval[0] >= 0.0 and interval[1] <= 1.0
    constant = gm.bootstrap_interval(lambda r: 0.25, ["a", "b"], resamples=20, seed=1)
    assert constant == [0.25, 0.25]


# ---------------------------------------------------------------------------------- labels


def _index(counts: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"image_id": f"{artist}_{i}", "artist": artist, "path": f"{artist}/{i}.jpg"}
        for artist, n in counts.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def _label(index: pd.DataFrame, m: dict[str, ArtistMeta], **kwargs: int) -> gm.GenreData:
    n = len(index)
    return gm.label_paintings(
        index,
        m,
        min_artists=kwargs.get("min_artists", 2),
        min_paintings=kwargs.get("min_paintings", 1),
        sha256=[f"sha{i}" for i in range(n)],
        phash=[f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}" for i in range(n)],
        dedupe_hamming=0,
    )


def test_labels_are_multi_hot_and_rare_genres_are_left_out() -> None:
    m = meta(
        Ann="Impressionism,Pointillism",
        Bo="Impressionism",
        Cy="Cubism,Abstractionism",
        Di="Abstractionism",
        Ed="Baroque",  # one artist: left out, Ed stays as a negative for every kept genre
        Fay="",  # no genre at all: unknown labels, left out
    )
    index = _index({"Ann": 3, "Bo": 2, "Cy": 2, "Di": 4, "Ed": 2, "Fay": 2})
    data = _label(index, m, min_paintings=5)
    assert data.genres == ["Abstractionism", "Impressionism"]
    assert set(data.excluded) == {"Pointillism", "Cubism", "Baroque"}
    assert "1 artist(s)" in data.excluded["Cubism"]["reason"]
    assert "2 paintings < genre.min_paintings=5" in data.excluded["Baroque"]["reason"]
    assert data.unlabelled_artists == ["Fay"]
    assert "Fay" not in set(data.frame["artist"]) and len(data.frame) == 13
    rows = dict(zip(data.frame["image_id"], data.y.tolist(), strict=True))
    assert rows["Ann_0"] == [0, 1] and rows["Cy_0"] == [1, 0] and rows["Ed_0"] == [0, 0]
    assert data.artists_per_genre() == {"Abstractionism": 2, "Impressionism": 2}
    assert list(index["image_id"][data.rows]) == list(data.frame["image_id"])


def test_fewer_than_two_genres_is_an_actionable_error() -> None:
    m = meta(Ann="Impressionism", Bo="Impressionism", Cy="Cubism")
    with pytest.raises(gm.GenreError, match=r"genre\.min_artists"):
        _label(_index({"Ann": 2, "Bo": 2, "Cy": 2}), m)


# ---------------------------------------------------------------------------------- splits


def _frame(artists: list[str], groups: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"i{k:03d}" for k in range(len(artists))],
            "artist": artists,
            "group": groups,
        }
    )


def test_leave_artists_out_never_puts_an_artist_in_two_folds() -> None:
    rng = np.random.default_rng(3)
    artists = [f"artist{int(a)}" for a in rng.integers(0, 9, 200)]
    groups = [f"g{k:03d}" for k in range(200)]
    # a near-duplicate group across two artists (a copy filed under the wrong name)
    groups[1] = groups[0]
    artists[0], artists[1] = "artist0", "artist5"
    frame = _frame(artists, groups)
    y = rng.integers(0, 2, (200, 3))
    folds = gm.artist_folds(frame, y, 4, seed=1)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3]
    per_artist = pd.Series(folds).groupby(frame["artist"]).nunique()
    assert (per_artist == 1).all()
    per_group = pd.Series(folds).groupby(frame["group"]).nunique()
    assert (per_group == 1).all()
    fold = dict(zip(frame["artist"], folds, strict=True))
    assert fold["artist0"] == fold["artist5"]  # joined by the shared group
    assert gm.artist_units(frame)["artist5"] == "artist0"
    # more folds than artists: one artist per fold
    few = _frame(["a", "a", "b", "c"], ["g0", "g1", "g2", "g3"])
    assert sorted(set(gm.artist_folds(few, np.zeros((4, 1)), 10, seed=0).tolist())) == [0, 1, 2]


def test_artists_of_a_genre_spread_over_folds() -> None:
    artists = ["a1", "a2", "a3", "b1", "b2", "b3"]
    frame = _frame(artists, [f"g{k}" for k in range(6)])
    y = np.array([[1, 0]] * 3 + [[0, 1]] * 3)
    folds = gm.artist_folds(frame, y, 3, seed=5)
    assert len(set(folds[:3].tolist())) == 3 and len(set(folds[3:].tolist())) == 3


def test_painting_split_keeps_near_duplicate_groups_whole() -> None:
    artists = ["a"] * 20 + ["b"] * 20
    groups = [f"g{k // 2:02d}" for k in range(40)]  # pairs of near-duplicates
    split = gm.painting_split(_frame(artists, groups), 0.2, 0.2, seed=0)
    assert (pd.Series(split).groupby(groups).nunique() == 1).all()
    assert {"train", "val", "test"} == set(split.tolist())


# ------------------------------------------------------------------------------------ head


def test_sample_weights_balance_sides_and_artists() -> None:
    artists = ["a", "a", "a", "b", "c"]
    y = np.array([[1], [1], [1], [1], [0]])
    by_artist = gm.sample_weights(artists, y, "artist")[:, 0]
    # positives: a's three paintings share a's weight, b has its own; each side sums to n/2
    assert by_artist.tolist() == pytest.approx([2.5 / 6] * 3 + [1.25, 2.5])
    by_painting = gm.sample_weights(artists, y, "painting")[:, 0]
    assert by_painting.tolist() == pytest.approx([0.625] * 4 + [2.5])


def test_fit_head_learns_separable_genres_and_survives_a_constant_one() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    x[:, 4] = 3.0  # a constant statistic (a dead channel) must not break standardising
    y = np.stack([(x[:, 0] > 0), (x[:, 1] > 0), np.zeros(60, dtype=bool)], axis=1).astype(int)
    artists = [f"a{k % 6}" for k in range(60)]
    head = gm.fit_head(x, y, artists, c=10.0, weighting="artist")
    p = head.predict(x)
    assert gm.average_precision(y[:, 0], p[:, 0]) > 0.95
    assert gm.average_precision(y[:, 1], p[:, 1]) > 0.95
    assert np.all(head.coef[:, 2] == 0) and np.all(p[:, 2] < 0.05)
    assert head.intercept[2] == pytest.approx(math.log(0.5 / 60.5))
    assert head.scale[4] == 1.0


def test_held_out_artist_thresholds_never_see_the_test_fold() -> None:
    rng = np.random.default_rng(1)
    artists = [f"a{k}" for k in range(8) for _ in range(6)]
    frame = _frame(artists, [f"g{k:03d}" for k in range(48)])
    y = np.array([[int(k < 4), int(k >= 4)] for k in range(8) for _ in range(6)])
    stats = rng.normal(size=(48, 6)) + y[:, :1] * 1.5
    data = gm.GenreData(frame, np.arange(48), ["A", "B"], y.astype(np.int8), {}, [])
    folds = gm.artist_folds(frame, y, 4, seed=0)
    fit = gm.FitSettings(c=1.0, weighting="artist", resamples=0, seed=0)
    first = gm.held_out_artists(data, stats, folds, fit)
    changed = stats.copy()
    changed[folds == 0] = rng.normal(size=((folds == 0).sum(), 6)) * 10
    second = gm.held_out_artists(data, changed, folds, fit)
    assert first.extra["fold_thresholds"][0] == second.extra["fold_thresholds"][0]
    assert first.extra["fold_thresholds"][1] != second.extra["fold_thresholds"][1]
    assert first.metrics["artists"] == 8 and first.metrics["folds"] == 4


def test_held_out_artists_is_skipped_when_no_genre_has_two_artists() -> None:
    """Five real artists in five genres: nothing can be learnt about an unseen painter."""
    artists = [f"a{k}" for k in range(3) for _ in range(4)]
    frame = _frame(artists, [f"g{k:02d}" for k in range(12)])
    y = np.repeat(np.eye(3, dtype=np.int8), 4, axis=0)
    data = gm.GenreData(frame, np.arange(12), ["A", "B", "C"], y, {}, [])
    folds = gm.artist_folds(frame, y, 3, seed=0)
    fit = gm.FitSettings(c=1.0, weighting="artist", resamples=10, seed=0)
    result = gm.held_out_artists(data, np.zeros((12, 2)), folds, fit)
    assert "no genre has two artists" in result.metrics["skipped"]
    assert result.metrics["macro"]["ap"] is None and result.metrics["per_genre"] == {}
    assert result.metrics["genres_left_out"] == ["A", "B", "C"]


def test_report_puts_the_honest_number_first_and_lists_what_was_left_out() -> None:
    macro = {"ap": 0.7, "f1": 0.6, "prior_ap": 0.3, "all_positive_f1": 0.45}
    entry = {"ap": 0.7, "prior_ap": 0.3}
    metrics = {
        "genres": ["A"],
        "paintings": 10,
        "artists": 4,
        "artists_per_genre": {"A": 2},
        "paintings_per_genre": {"A": 5},
        "thresholds": {"A": 0.42},
        "excluded": {"B": {"reason": "1 artist(s) < genre.min_artists=2"}},
        "held_out_artists": {
            "macro": {**macro, "ap_interval": [0.5, 0.9]},
            "per_genre": {"A": entry},
        },
        "held_out_paintings": {"macro": {**macro, "ap": 0.9}, "per_genre": {"A": entry}},
    }
    text = gm.report_markdown(metrics)
    rows = [line for line in text.splitlines() if line.startswith("| held-out")]
    assert rows[0].startswith("| held-out artists | 0.700 [0.50, 0.90] | 0.300")
    assert rows[1].startswith("| held-out paintings | 0.900 |")
    assert "honest number is the held-out-artist one" in text
    assert "- B: 1 artist(s) < genre.min_artists=2" in text
    assert "| A | 2 | 5 | 0.700 | 0.700 | 0.300 | 0.420 |" in text
