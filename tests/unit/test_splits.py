"""Near-duplicate groups, splitting and balancing (the ``select`` stage's library)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artist_id.manifest import DatasetError
from artist_id.splits import (
    class_weights,
    group_split,
    near_duplicate_groups,
    oversample_plan,
    select,
    straddling_groups,
    undersample,
)

# ------------------------------------------------------------ groups, split


def test_groups_join_identical_and_near_identical_images() -> None:
    ids = ["a", "b", "c", "d"]
    sha = ["s1", "s1", "s2", "s3"]
    ph = ["0000000000000000", "ffffffffffffffff", "0000000000000003", "ffff0000ffff0000"]
    groups = near_duplicate_groups(ids, sha, ph, max_distance=2)
    assert groups[0] == groups[1] == groups[2]  # a=b by sha, a~c by phash (2 bits)
    assert groups[3] != groups[0]
    assert near_duplicate_groups(ids, sha, ph, max_distance=1)[2] != groups[0]


@st.composite
def grouped_frames(draw: st.DrawFn) -> pd.DataFrame:
    n_artists = draw(st.integers(2, 4))
    rows = []
    for a in range(n_artists):
        for g in range(draw(st.integers(3, 25))):
            for _ in range(draw(st.integers(1, 4))):
                rows.append(
                    {"image_id": f"i{len(rows):04d}", "artist": f"A{a}", "group": f"A{a}g{g}"}
                )
    # a few groups that span two artists (cross-artist near-duplicates)
    if draw(st.booleans()):
        rows.append({"image_id": f"i{len(rows):04d}", "artist": "A1", "group": "A0g0"})
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(
    frame=grouped_frames(),
    seed=st.integers(0, 1000),
    val=st.floats(0.05, 0.3),
    test=st.floats(0.05, 0.3),
)
def test_group_split_never_leaks_a_group(
    frame: pd.DataFrame, seed: int, val: float, test: float
) -> None:
    frame = frame.copy()
    frame["split"] = group_split(frame, val, test, seed)
    assert set(frame["split"]) <= {"train", "val", "test"}
    assert frame["split"].notna().all()
    assert straddling_groups(frame) == 0
    assert (frame.groupby("group")["split"].nunique() == 1).all()
    frame["split"] = undersample(frame, seed)
    assert straddling_groups(frame) == 0


def test_group_split_is_stratified_and_seeded() -> None:
    frame = pd.DataFrame(
        {
            "image_id": [f"i{i:03d}" for i in range(200)],
            "artist": ["A"] * 150 + ["B"] * 50,
            "group": [f"g{i}" for i in range(200)],
        }
    )
    split = group_split(frame, 0.1, 0.2, seed=1)
    counts = pd.crosstab(frame["artist"], split)
    assert counts.loc["A", "test"] == 30 and counts.loc["B", "test"] == 10
    assert counts.loc["A", "val"] == 15 and counts.loc["B", "val"] == 5
    assert split.equals(group_split(frame, 0.1, 0.2, seed=1))
    assert not split.equals(group_split(frame, 0.1, 0.2, seed=2))


# --------------------------------------------------------------- balancing


def test_class_weights_are_sklearn_balanced() -> None:
    weights = class_weights({"a": 10, "b": 30})
    assert weights == {"a": pytest.approx(2.0), "b": pytest.approx(40 / 60)}
    # weighted class totals are equal: the point of balancing
    assert 10 * weights["a"] == pytest.approx(30 * weights["b"])


def test_oversample_plan_tops_up_to_the_majority() -> None:
    assert oversample_plan({"a": 10, "b": 4, "c": 7}, copies=2) == {"a": 0, "b": 18, "c": 9}
    assert oversample_plan({"a": 5, "b": 5}, copies=0) == {"a": 0, "b": 0}


def test_undersample_equalises_train_counts() -> None:
    frame = pd.DataFrame(
        {
            "image_id": [f"i{i:03d}" for i in range(60)],
            "artist": ["A"] * 40 + ["B"] * 20,
            "group": [f"g{i}" for i in range(60)],
            "split": ["train"] * 60,
        }
    )
    out = undersample(frame, seed=0)
    assert (out[frame["artist"] == "A"] == "train").sum() == 20
    assert (out[frame["artist"] == "B"] == "train").sum() == 20
    assert set(out) == {"train", "unused"}


def manifest_for(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for a, n in counts.items():
        for k in range(n):
            h = hashlib.sha256(f"{a}{k}".encode()).hexdigest()[:16]
            rows.append(
                {
                    "image_id": f"{a}_{k}",
                    "artist": a,
                    "status": "ok",
                    "sha256": f"{a}{k}",
                    "phash": h,
                }
            )
    return pd.DataFrame(rows)


def test_select_keeps_artists_with_more_than_the_threshold() -> None:
    manifest = manifest_for({"A": 31, "B": 30, "C": 45})
    result = select(
        manifest,
        min_paintings=30,
        dedupe_hamming=0,
        val_fraction=0.2,
        test_fraction=0.2,
        balance="class_weight",
        seed=0,
    )
    assert result.classes["classes"] == ["A", "C"]  # B has exactly 30: not MORE than 30
    assert result.summary["artists_dropped"] == {"B": 30}
    assert result.summary["straddling_groups"] == 0
    assert list(result.split.columns) == ["image_id", "artist", "split", "group"]
    train = result.classes["counts"]["train"]
    w = result.classes["class_weight"]
    assert train["A"] * w["A"] == pytest.approx(train["C"] * w["C"], rel=1e-4)


def test_select_needs_two_artists() -> None:
    with pytest.raises(DatasetError, match=r"lower select\.min_paintings"):
        select(
            manifest_for({"A": 50, "B": 10}),
            min_paintings=30,
            dedupe_hamming=0,
            val_fraction=0.2,
            test_fraction=0.2,
            balance="none",
            seed=0,
        )
