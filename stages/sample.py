"""sample: generate the embedded synthetic dataset in the Kaggle layout -> data/sample/."""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params
from artist_id.sample import SampleError, generate_sample

OUT = Path("data/sample")
log = logging.getLogger("artist_id.stages.sample")
stage.expect(SampleError)


def main() -> None:
    params = load_params()
    summary = generate_sample(OUT, params.sample)
    log.info(
        "sample: %d synthetic paintings by %d fictional artists in %s (%d greyscale, "
        "%d near-duplicates)",
        summary["files"],
        len(summary["artists"]),
        OUT,
        len(summary["greyscale"]),
        len(summary["near_duplicates"]),
    )
    for artist in summary["artists"]:
        log.info("  %-24s %3d  %s", artist["name"], artist["paintings"], artist["style"])


if __name__ == "__main__":
    stage.run("sample", main)
