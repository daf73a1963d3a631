"""sample: generate the embedded synthetic dataset in the Kaggle layout -> data/sample/."""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params

OUT = Path("data/sample")
log = logging.getLogger("artist_id.stages.sample")


def main() -> None:
    from artist_id.sample import generate_sample

    params = load_params()
    summary = generate_sample(OUT, params.sample)
    log.info("sample: %s", summary)


if __name__ == "__main__":
    stage.run("sample", main)
