"""select: artists above the threshold, near-duplicate groups, leak-free split, balancing.

Writes data/processed/split.csv, data/processed/classes.json, reports/select/summary.json
(metrics: a few counts) and reports/select/details.json (per artist and split, groups).
"""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params
from artist_id.manifest import DatasetError, read_manifest
from artist_id.splits import select

PROCESSED = Path("data/processed")
log = logging.getLogger("artist_id.stages.select")
stage.expect(DatasetError)


def main() -> None:
    params = load_params()
    p = params.select
    result = select(
        read_manifest("data/raw/manifest.csv"),
        min_paintings=p.min_paintings,
        dedupe_hamming=p.dedupe_hamming,
        val_fraction=p.val_fraction,
        test_fraction=p.test_fraction,
        balance=p.balance,
        seed=params.base.seed,
    )
    PROCESSED.mkdir(parents=True, exist_ok=True)
    result.split.to_csv(PROCESSED / "split.csv", index=False)
    stage.write_json(PROCESSED / "classes.json", result.classes)
    s = result.summary
    # summary.json: the DVC metrics, a few counts; details.json: everything (per artist, groups)
    counts = {"artists": len(s["artists_kept"]), "images": s["images"]}
    counts |= {split: sum(s["splits"][split].values()) for split in ("train", "val", "test")}
    stage.write_json("reports/select/summary.json", {"select": counts})
    stage.write_json("reports/select/details.json", s)
    log.info(
        "select: %d artists kept (> %d paintings), %d dropped; %d images in %d groups "
        "(%d near-duplicate groups), %d straddling; split %s",
        len(s["artists_kept"]),
        p.min_paintings,
        len(s["artists_dropped"]),
        s["images"],
        s["groups"],
        s["duplicate_groups"],
        s["straddling_groups"],
        {k: sum(v.values()) for k, v in s["splits"].items()},
    )


if __name__ == "__main__":
    stage.run("select", main)
