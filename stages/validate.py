"""validate: Great Expectations suites on data/raw -> reports/validate/.

A failed critical expectation stops the pipeline here (exit 1) with one readable line per
failure; warnings are reported and the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from artist_id import stage
from artist_id.config import load_params

RAW = Path("data/raw")
REPORTS = Path("reports/validate")
log = logging.getLogger("artist_id.stages.validate")


def main() -> None:
    from artist_id.expectations import validate_dataset

    params = load_params()
    artists = pd.read_csv(RAW / "artists.csv", dtype=str, keep_default_na=False)
    manifest = pd.read_csv(RAW / "manifest.csv", dtype=str, keep_default_na=False)
    stage.fresh_dir(REPORTS)
    report = validate_dataset(artists, manifest, params.validate, docs_dir=REPORTS / "data_docs")
    stage.write_json(REPORTS / "summary.json", report.to_json())
    warnings = [f for f in report.failures if f.severity != "critical"]
    critical = [f for f in report.failures if f.severity == "critical"]
    for failure in warnings:
        log.warning("%s", failure.line())
    if critical:
        lines = "\n".join(f"  {f.line()}" for f in critical)
        raise stage.StageError(
            f"{len(critical)} critical expectation(s) failed; nothing downstream runs. "
            f"Details: {REPORTS / 'summary.json'}, {REPORTS / 'data_docs/index.html'}\n{lines}"
        )
    log.info(
        "validate: %d expectations, all critical ones passed (%d warning(s))",
        report.evaluated,
        len(warnings),
    )


if __name__ == "__main__":
    stage.run("validate", main)
