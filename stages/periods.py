"""periods: style by period -> reports/periods/.

Reads the style statistics of every usable painting from the feature store
(data/features/paintings), artists.csv (years, genres) and the images (thumbnails, palettes).
Writes:

- reports/periods/map.png          the paintings mapped in 2-D by style, by period and by genre
- reports/periods/map.csv          the map's coordinates (image_id, artist, period, genre, x, y)
- reports/periods/palettes.png     each period's dominant colours (+ palettes.json)
- reports/periods/separation.png   what sets each period apart, per VGG block (+ .json)
- reports/periods/metrics.json     how well a linear model predicts the period, artists held
                                   out, against chance (DVC metrics)
- reports/periods/details.json     periods, paintings and artists per period, the map's settings,
                                   the classifier in full
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from artist_id import stage
from artist_id.config import load_params

REPORTS = Path("reports/periods")
log = logging.getLogger("artist_id.stages.periods")


def main() -> None:
    params = load_params()
    p = params.periods
    seed = params.base.seed

    from artist_id import periods as pm
    from artist_id import style_features as sf
    from artist_id.artists import UNKNOWN_PERIOD, read_artists_csv

    stage.expect(pm.PeriodsError, sf.FeaturesError)
    start = time.perf_counter()
    from artist_id.manifest import read_manifest

    features = sf.paintings_statistics(
        read_manifest("data/raw/manifest.csv"), sf.TrunkSpec.from_params(params)
    )
    meta = read_artists_csv("data/raw/artists.csv")
    artists = list(features.index["artist"])
    period_of = np.array(pm.painting_periods(artists, meta, p.width, p.anchor), dtype=object)
    dated = period_of != UNKNOWN_PERIOD
    if dated.sum() < 5:
        raise pm.PeriodsError(
            f"only {int(dated.sum())} paintings have an artist with parsable years: "
            "nothing to map by period"
        )
    index = features.index[dated].reset_index(drop=True)
    stats = features.stats[dated]
    periods = list(period_of[dated])
    genres = pm.first_genres(list(index["artist"]), meta)

    out = stage.fresh_dir(REPORTS)
    coords, map_info = pm.style_map(
        stats, pca_components=p.pca_components, perplexity=p.perplexity, seed=seed
    )
    picks = pm.spread_picks(coords, p.thumbnails, seed)
    thumbs = {i: pm.thumbnail(index["path"][i]) for i in picks}
    pm.plot_map(coords, periods, genres, thumbs, out / "map.png")
    table = index[["image_id", "artist"]].assign(
        period=periods, genre=genres, x=coords[:, 0].round(3), y=coords[:, 1].round(3)
    )
    table.to_csv(out / "map.csv", index=False)

    counts = Counter(periods)
    analysed = sorted(q for q, n in counts.items() if n >= p.min_paintings)
    palettes = {
        q: pm.palette(
            [index["path"][i] for i in range(len(index)) if periods[i] == q],
            p.palette_colours,
            p.palette_pixels,
            seed,
        )
        for q in analysed
    }
    stage.write_json(out / "palettes.json", palettes)
    pm.plot_palettes(palettes, out / "palettes.png")

    if len(analysed) >= 2:
        keep = np.isin(np.asarray(periods, dtype=object), analysed)
        sep = pm.separation(
            stats[keep],
            [q for q, k in zip(periods, keep, strict=True) if k],
            features.names,
            p.top_statistics,
        )
        stage.write_json(
            out / "separation.json",
            {"blocks": sep.blocks.to_dict(orient="index"), "top": sep.top},
        )
        pm.plot_separation(sep, out / "separation.png")
    else:
        stage.write_json(out / "separation.json", {"skipped": "fewer than two periods"})
        pm.plot_separation(pm.Separation(pd.DataFrame(), {}), out / "separation.png")

    classifier = pm.period_classifier(
        stats, periods, list(index["artist"]), folds=p.folds, c=p.c, seed=seed
    )
    per_period = {
        q: {
            "paintings": counts[q],
            "artists": int(index["artist"][np.asarray(periods, dtype=object) == q].nunique()),
        }
        for q in sorted(counts)
    }
    summary = {
        "paintings": len(index),
        "paintings_without_period": int((~dated).sum()),
        "periods": per_period,
        "period_rule": {"width": p.width, "anchor": p.anchor},
        "map": map_info,
        "classifier": classifier,
    }
    stage.write_json(out / "details.json", summary)
    stage.write_json(out / "metrics.json", pm.dvc_metrics(classifier, len(index)))
    log.info(
        "periods: %d paintings in %d periods (%d undated); linear model, artists held out: "
        "balanced accuracy %s (chance %s, training-majority %s); %.1f s",
        len(index),
        len(counts),
        int((~dated).sum()),
        classifier.get("balanced_accuracy"),
        classifier.get("chance_balanced_accuracy"),
        classifier.get("majority_baseline", {}).get("balanced_accuracy"),
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    stage.run("periods", main)
