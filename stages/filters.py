"""filters: what each depth of a trained model responds to (top-9 patches, layers 1-5).

Reads the model named by ``filters.model`` and the validation and test images; writes
reports/filters/: layer_1.png ... layer_5.png (each chosen filter's nine top patches),
overview.png and summary.json (layers, receptive fields, filters, where each patch comes from).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from artist_id import stage
from artist_id.config import load_params

PROCESSED = Path("data/processed")
OUT = Path("reports/filters")
log = logging.getLogger("artist_id.stages.filters")


def model_path(name: str) -> Path:
    return Path("models") / "zoo" / name / "model.keras"


def main() -> None:
    params = load_params()
    name = params.filters.model

    from artist_id import filters
    from artist_id.models import ModelFileError, load_model

    stage.expect(filters.FiltersError, ModelFileError)
    val_paths = list(pd.read_csv(PROCESSED / "val" / "index.csv")["path"])
    test_paths = list(pd.read_csv(PROCESSED / "test" / "index.csv")["path"])
    model = load_model(model_path(name))
    val = filters.load_images(val_paths)
    scanned = filters.load_images(val_paths + test_paths)
    results = filters.analyse(model, val, scanned, params.filters.per_layer)
    out = stage.fresh_dir(OUT)
    filters.render(out, results, scanned, name)
    stage.write_json(out / "summary.json", filters.summary(results, name, val_paths + test_paths))
    for r in results:
        log.info(
            "layer %d %s: receptive field %d px, filters %s",
            r.depth.index,
            r.depth.layer,
            r.depth.field.rows.size,
            r.channels,
        )


if __name__ == "__main__":
    stage.run("filters", main)
