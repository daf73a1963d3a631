"""The README's five-artist configuration on real paintings (../shared/real-dev), shrunk to a
small image size so it runs in minutes: every artist is kept, the store serves both models,
and five classes flow through to the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.e2e.project import commit, dvc, make_project, ran, set_params

REAL_DEV = REPO.parent / "shared" / "real-dev"
FIVE = {"Edgar Degas", "Leonardo da Vinci", "Pablo Picasso", "Salvador Dali", "Vincent van Gogh"}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not REAL_DEV.is_dir(),
        reason="../shared/real-dev is not present (real paintings are not part of a fresh clone)",
    ),
]


def test_five_real_artists_train_from_the_store(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    # the README's "More artists" settings, at 48 px instead of 224 so the test stays small
    set_params(
        root,
        data__source=str(REAL_DEV),
        select__min_paintings=100,
        ingest__max_side=96,
        base__image_size=48,
        augment__copies=0,
        train__models=["vgg16", "style_stats"],
        features__paintings=False,
    )
    commit(root, "real-dev, five artists")
    proc = dvc(root, "repro", "leaderboard")
    assert {"features", "train@vgg16", "train@style_stats", "leaderboard"} <= ran(proc)
    classes = json.loads((root / "data/processed/classes.json").read_text())["classes"]
    assert set(classes) == FIVE
    split = pd.read_csv(root / "data/processed/split.csv")
    store = json.loads((root / "data/features/style_stats/store.json").read_text())
    assert store["images"] == len(split)  # copies 0: every processed image once
    assert not json.loads((root / "data/features/paintings/store.json").read_text())["stored"]
    for model in ("vgg16", "style_stats"):
        details = json.loads((root / f"reports/evaluate/{model}/details.json").read_text())
        assert set(details["test"]["per_class"]) == FIVE
        confusion = json.loads((root / f"reports/evaluate/{model}/confusion.json").read_text())
        assert len(confusion) == (split["split"] == "test").sum()
