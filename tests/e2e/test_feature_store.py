"""The feature store in a real `dvc` run: a head-only experiment does not touch the trunk, and
shows in `dvc params diff` and `dvc metrics diff`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.project import dvc, ran, restore, set_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNTS = re.compile(r"features: (\d+) distinct images, (\d+) computed, (\d+) reused")


def store_counts(proc_output: str) -> tuple[int, int, int]:
    found = COUNTS.search(proc_output)
    assert found, proc_output
    distinct, computed, reused = (int(g) for g in found.groups())
    return distinct, computed, reused


def test_head_only_experiments_reuse_stored_features(trained_project: Path) -> None:
    root = trained_project  # the shared tiny run (tests/e2e/conftest.py)
    restore(root)
    # the first run: a fresh store computes each distinct image once
    distinct, computed, reused = store_counts(root.joinpath(".repro-log").read_text())
    assert computed == distinct > 0 and reused == 0
    try:
        # a head parameter: only that model's train and evaluate run (and the ranking, the
        # target); features, the data stages and every other model are up to date
        exp = dvc(root, "exp", "run", "-S", "train.style_stats.c=[0.01]", "leaderboard")
        assert ran(exp) == {"train@style_stats", "evaluate@style_stats", "leaderboard"}
        assert "trunk features from the feature store" in exp.stdout + exp.stderr
        status = dvc(root, "status", "features", "train@vgg16")
        assert "up to date" in status.stdout.lower()
        # the experiment shows in `dvc params diff` and `dvc metrics diff` as a reviewer sees it
        params = json.loads(dvc(root, "params", "diff", "--json").stdout)
        assert params["params.yaml"]["train.style_stats.c"]["new"] == "[0.01]"  # DVC's text
        assert len(params["params.yaml"]) == 1
        # Whether the numbers move depends on the C the first run chose; what does not: every
        # changed metric is a headline number <model>.<split>.<metric> of style_stats' file.
        diff = json.loads(dvc(root, "metrics", "diff", "--json").stdout)
        for path, changes in diff.items():
            assert path == "reports/evaluate/style_stats/metrics.json", path
            for name in changes:
                model, split, metric = name.split(".")
                assert model == "style_stats" and split in {"val", "test"}
                assert metric in {"accuracy", "balanced_accuracy", "macro_f1", "log_loss"}
        dvc(root, "exp", "apply", "--help")  # the usual follow-ups exist

        # new augmentations: the store computes only the new augmented copies, reuses the rest
        restore(root)
        set_params(root, augment__contrast=0.3)
        again = dvc(root, "repro", "features")
        assert ran(again) == {"augment", "features"}
        index = pd.read_csv(root / "data/processed/train/index.csv")
        distinct2, computed2, reused2 = store_counts(again.stdout + again.stderr)
        assert computed2 == int(index["augmented"].sum()) > 0
        assert reused2 == distinct2 - computed2 > 0
    finally:
        restore(root)
