"""augment: resized val/test and augmented (optionally oversampled) train sets.

Writes data/processed/{train,val,test}/ (PNG files + index.csv each),
reports/augment/preview.png and reports/augment/summary.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from artist_id import stage
from artist_id.config import load_params
from artist_id.manifest import read_manifest
from artist_id.splits import SPLITS

PROCESSED = Path("data/processed")
REPORTS = Path("reports/augment")
log = logging.getLogger("artist_id.stages.augment")


def main() -> None:
    from artist_id.augment import prepare, preview
    from artist_id.seeding import seed_everything

    params = load_params()
    seed_everything(params.base.seed)
    classes = stage.read_json(PROCESSED / "classes.json")
    split = pd.read_csv(PROCESSED / "split.csv", dtype=str, keep_default_na=False)
    for name in SPLITS:
        stage.fresh_dir(PROCESSED / name)
    summary = prepare(
        split,
        read_manifest("data/raw/manifest.csv"),
        classes["classes"],
        classes["balance"],
        params.augment,
        params.base.image_size,
        params.base.seed,
        PROCESSED,
    )
    stage.fresh_dir(REPORTS)
    stage.write_json(REPORTS / "summary.json", summary)
    train_index = pd.read_csv(PROCESSED / "train" / "index.csv")
    preview(train_index, params.augment, params.base.seed, REPORTS / "preview.png")


if __name__ == "__main__":
    stage.run("augment", main)
