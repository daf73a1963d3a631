"""`dvc repro genre periods` in a temporary copy: style statistics, genre model, periods report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.project import dvc, ran, restore, set_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STAGES = ["genre", "periods"]


@pytest.fixture
def project(trained_project: Path) -> Path:
    restore(trained_project)  # the shared tiny run (tests/e2e/conftest.py), as committed
    return trained_project


def test_repro_builds_the_genre_model_and_the_periods_report(project: Path) -> None:
    stages = set(project.joinpath(".repro-ran").read_text().split())
    # the feature store computes the statistics (it needs the split: select and augment)
    assert {"select", "augment", "features", *STAGES} <= stages
    # every usable painting, not only the artists select keeps (6 artists, 54 paintings)
    index = (project / "data/features/paintings/index.csv").read_text().splitlines()
    assert len(index) == 1 + 16 + 14 + 12 + 5 + 4 + 3
    stats = np.load(project / "data/features/paintings/features.npy", allow_pickle=False)
    assert stats.shape == (54, 2944 + 512)  # style_stats taps + the vgg16 block5 average

    metrics = json.loads((project / "reports/genre/details.json").read_text())
    # among the six artists only these two genres have two artists
    assert metrics["genres"] == ["Abstractionism", "Impressionism"]
    assert {"Post-Impressionism", "Cubism", "Expressionism"} <= set(metrics["excluded"])
    for evaluation in ("held_out_artists", "held_out_paintings"):
        macro = metrics[evaluation]["macro"]
        assert 0.0 <= macro["ap"] <= 1.0 and 0.0 < macro["prior_ap"] < 1.0
        assert set(metrics[evaluation]["per_genre"]) == set(metrics["genres"])
    assert metrics["held_out_artists"]["artists"] == 6
    served = json.loads((project / "models/genre/genres.json").read_text())
    assert served["genres"] == metrics["genres"]
    assert set(served["thresholds"]) == set(metrics["genres"])
    assert (project / "models/genre/model.keras").stat().st_size > 1_000_000
    report = (project / "reports/genre/report.md").read_text()
    assert "held-out artists" in report and "honest" in report

    summary = json.loads((project / "reports/periods/details.json").read_text())
    assert sorted(summary["periods"]) == ["1850-1899", "1900-1949"]
    assert summary["classifier"]["grouped_by"] == "artist"
    # the DVC metrics: one top-level key per stage, numbers only, both evaluations
    assert set(json.loads((project / "reports/genre/metrics.json").read_text())["genre"]) == {
        "held_out_artists",
        "held_out_paintings",
    }
    periods = json.loads((project / "reports/periods/metrics.json").read_text())["periods"]
    assert periods["dated_paintings"] == 54
    assert periods["held_out_artists"]["chance_balanced_accuracy"] == 0.5
    for name in ("ap.png", "artists.png"):
        assert (project / "reports/genre" / name).stat().st_size > 10_000
    for name in ("map.png", "palettes.png", "separation.png", "map.csv", "palettes.json"):
        assert (project / "reports/periods" / name).is_file(), name


def test_second_repro_runs_nothing_and_periods_params_rerun_only_periods(project: Path) -> None:
    assert ran(dvc(project, "repro", *STAGES)) == set()
    try:
        set_params(project, periods__palette_colours=4)
        assert ran(dvc(project, "repro", *STAGES)) == {"periods"}
        palettes = json.loads((project / "reports/periods/palettes.json").read_text())
        assert all(len(colours) <= 4 for colours in palettes.values())
    finally:
        restore(project)
