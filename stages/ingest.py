"""ingest: the source (folder or .zip) -> data/raw/{artists.csv,manifest.csv,images/}.

Every file is decoded safely and re-encoded to a canonical JPEG; unreadable files, symlinks,
special files, undecodable names, misplaced files and images below validate.min_side are
quarantined with their reason (reports/ingest/quarantine.csv) and the stage goes on. The
outputs are replaced together at the end: a failure leaves the previous run's whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import images, stage
from artist_id.config import load_params
from artist_id.ingest import ingest, publish
from artist_id.manifest import DatasetError

RAW = Path("data/raw")
REPORTS = Path("reports/ingest")
log = logging.getLogger("artist_id.stages.ingest")
stage.expect(DatasetError)


def main() -> None:
    params = load_params()
    p = params.ingest
    limits = images.DecodeLimits(max_bytes=p.max_bytes, max_pixels=p.max_pixels)
    result = ingest(
        params.data.source,
        RAW,
        max_side=p.max_side,
        jpeg_quality=p.jpeg_quality,
        limits=limits,
        min_side=params.validate.min_side,  # smaller images are quarantined, not fatal later
    )
    publish(result, RAW, REPORTS)  # every output is replaced at the end, or none is
    s = result.summary
    log.info(
        "ingest: %d files from %d artist folders (%s layout): %d ok, %d quarantined %s",
        s["files"],
        s["artists_with_images"],
        s["layout"],
        s["ok"],
        s["quarantined"],
        s["quarantine_reasons"] or "",
    )
    for name, counts in s["per_artist"].items():
        if counts["files"]:
            log.info("  %-32s %4d ok  %3d quarantined", name, counts["ok"], counts["quarantined"])


if __name__ == "__main__":
    stage.run("ingest", main)
