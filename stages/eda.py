"""eda: data/raw/{artists.csv,manifest.csv} + images -> reports/eda/ (plots and summary.json).

The profile of the raw data: paintings per artist (declared vs found, with the select
threshold), nationality, genre, period, image sizes and a contact sheet.
"""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params
from artist_id.eda import profile, read_inputs

RAW = Path("data/raw")
REPORTS = Path("reports/eda")
log = logging.getLogger("artist_id.stages.eda")


def main() -> None:
    params = load_params()
    artists, manifest = read_inputs(RAW)
    s = profile(
        artists,
        manifest,
        min_paintings=params.select.min_paintings,
        thumbnails=params.eda.thumbnails,
        out_dir=REPORTS,
    )
    log.info(
        "eda: %d artists (%d with images, %d above %d paintings), %d ok images, "
        "%d quarantined, %.1f%% greyscale -> %s",
        s["artists"],
        s["artists_with_images"],
        s["artists_kept"],
        s["min_paintings"],
        s["images"]["ok"],
        s["images"]["quarantined"],
        100 * (s["greyscale"]["share"] or 0.0),
        REPORTS,
    )
    if s["years_unparsed"]:
        log.warning("eda: no year range for %s", ", ".join(s["years_unparsed"]))


if __name__ == "__main__":
    stage.run("eda", main)
