"""report: the run report / model card, reports/report.md, the pipeline's last stage.

Reads the reports of ingest and select (details.json) and validate (summary.json), the split
(near-duplicate groups), the leaderboard, the chosen model's evaluation (details.json: every
number, with its interval) and figures, the augmentation preview and the package's "unknown"
threshold; the sections of optional stages (style, filters, genre, periods) when their
folders exist. Writes reports/report.md and the images it links, shrunk, into reports/report/
(both committed to git, so the page renders on GitHub).

The PR comparison (`make report BASE=<rev>`) is artist_id.report, not this stage: it
compares two git revisions, which no DVC stage can depend on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from artist_id import stage
from artist_id.config import load_params

if TYPE_CHECKING:
    from artist_id.modelcard import Gallery, GalleryContent

OUT = Path("reports/report.md")
IMAGES = Path("reports/report")
log = logging.getLogger("artist_id.stages.report")


def main() -> None:
    from dataclasses import asdict

    from artist_id import modelcard

    params = load_params()
    best = stage.read_json("models/best.json")
    name = best["model"]
    evaluate = Path("reports/evaluate") / name
    figures = {p.name: p for p in sorted((evaluate / "figures").glob("*.png"))}
    preview = Path("reports/augment/preview.png")
    package = Path("reports/package/summary.json")
    inputs = modelcard.Inputs(
        params={
            "data": asdict(params.data),
            "base": asdict(params.base),
            "augment": asdict(params.augment),
        },
        ingest=stage.read_json("reports/ingest/details.json"),
        validate=stage.read_json("reports/validate/summary.json"),
        select=stage.read_json("reports/select/details.json"),
        leaderboard=stage.read_json("reports/leaderboard.json"),
        best=best,
        best_metrics=stage.read_json(evaluate / "details.json"),
        package=stage.read_json(package) if package.is_file() else None,
        quarantine=pd.read_csv("reports/ingest/quarantine.csv", dtype=str, keep_default_na=False),
        split=pd.read_csv("data/processed/split.csv", dtype=str, keep_default_na=False),
        figures=figures,
        preview=preview if preview.is_file() else None,
        galleries=[gallery(g) for g in modelcard.GALLERIES],
    )
    images = stage.fresh_dir(IMAGES)
    text = modelcard.build(inputs, OUT.parent, images)
    OUT.write_text(text, encoding="utf-8")
    log.info(
        "report: %s (%d images in %s) on the chosen model %s",
        OUT,
        len(list(images.iterdir())),
        images,
        name,
    )


def gallery(g: Gallery) -> GalleryContent:
    """An optional stage's images and metrics, when dvc.yaml lists its folder as a dep here."""
    from artist_id import modelcard

    metrics = g.folder / "metrics.json"
    return modelcard.GalleryContent(
        g,
        modelcard.gallery_images(g.folder),
        stage.read_json(metrics) if metrics.is_file() else None,
    )


if __name__ == "__main__":
    stage.run("report", main)
