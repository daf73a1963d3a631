"""features: frozen-trunk features once per image -> data/features/<consumer>/.

One pass of the frozen VGG16 per image computes every tap its consumers read (``vgg16``: the
block5 average; ``style_stats``: channel mean/std of its layers; ``paintings``: both, for every
usable painting of data/raw). Rows already in the store (same trunk, tap and pixels) are reused;
see :mod:`artist_id.features`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params

PROCESSED = Path("data/processed")
MANIFEST = Path("data/raw/manifest.csv")
log = logging.getLogger("artist_id.stages.features")


def main() -> None:
    from artist_id import features
    from artist_id.models import WeightsError
    from artist_id.seeding import seed_everything

    stage.expect(WeightsError, features.FeatureStoreError)
    params = load_params()
    seed_everything(params.base.seed)
    consumers = features.plan(params, PROCESSED, MANIFEST)
    for c in consumers:
        if c.trunk is None:
            log.info("%s: not stored (%s)", c.name, c.reason)
        else:
            log.info(
                "%s: %d images, %d features (%s)", c.name, len(c.images), c.dim, ", ".join(c.taps)
            )
    start = time.perf_counter()
    report = features.build_store(consumers, features.ROOT, params.features.batch_size)
    seconds = time.perf_counter() - start
    log.info(
        "features: %d distinct images, %d computed, %d reused in %.1f s%s",
        report.images,
        report.computed,
        report.reused,
        seconds,
        f" ({seconds / report.computed:.3f} s per computed image)" if report.computed else "",
    )


if __name__ == "__main__":
    stage.run("features", main)
