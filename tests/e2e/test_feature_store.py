"""The feature store in a real `dvc` run: a head-only experiment does not touch the trunk."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.project import commit, dvc, make_project, ran, set_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNTS = re.compile(r"features: (\d+) distinct images, (\d+) computed, (\d+) reused")


def store_counts(proc_output: str) -> tuple[int, int, int]:
    found = COUNTS.search(proc_output)
    assert found, proc_output
    distinct, computed, reused = (int(g) for g in found.groups())
    return distinct, computed, reused


def test_head_only_experiments_reuse_stored_features(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    set_params(root, train__models=["vgg16", "style_stats"])
    commit(root, "two stored models")
    first = dvc(root, "repro", "evaluate@style_stats", "evaluate@vgg16")
    assert {"features", "train@style_stats", "train@vgg16"} <= ran(first)
    distinct, computed, reused = store_counts(first.stdout + first.stderr)
    assert computed == distinct and reused == 0  # a fresh store computes each image once
    commit(root, "first run")

    # a head parameter: only that model's train and evaluate run; features are up to date
    exp = dvc(root, "exp", "run", "-S", "train.style_stats.l2=0.01", "evaluate@style_stats")
    assert ran(exp) == {"train@style_stats", "evaluate@style_stats"}
    assert "trunk features from the feature store" in exp.stdout + exp.stderr
    status = dvc(root, "status", "features", "train@vgg16")
    assert "up to date" in status.stdout.lower()

    # new augmentations: the store computes only the new augmented copies, reuses the rest
    set_params(root, augment__contrast=0.3)
    again = dvc(root, "repro", "evaluate@style_stats")
    assert "features" in ran(again)
    index = pd.read_csv(root / "data/processed/train/index.csv")
    distinct2, computed2, reused2 = store_counts(again.stdout + again.stderr)
    assert computed2 == int(index["augmented"].sum())
    assert reused2 == distinct2 - computed2 > 0
