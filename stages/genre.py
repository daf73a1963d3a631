"""genre: multi-label genre model over every artist -> models/genre/, reports/genre/.

Reads the style statistics of every usable painting from the feature store
(data/features/paintings, the style_stats trunk), artists.csv (genres) and the manifest (hashes
for near-duplicate groups). Writes:

- models/genre/model.keras     image -> genre probabilities (style_stats trunk + sigmoid head)
- models/genre/genres.json     genres, thresholds, metrics: what the package stage serves
- reports/genre/metrics.json   the macro scores of both evaluations and baselines (DVC metrics)
- reports/genre/details.json   both evaluations per genre, thresholds, genres left out
- reports/genre/report.md      the same as a table, and what the numbers mean
- reports/genre/ap.png, artists.png
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from artist_id import stage
from artist_id.config import load_params

MODEL_DIR = Path("models/genre")
REPORTS = Path("reports/genre")
CHECK_IMAGES = 4  # test paintings run through the saved model to check it matches the head
log = logging.getLogger("artist_id.stages.genre")


def main() -> None:
    params = load_params()
    g = params.genre
    seed = params.base.seed

    import keras

    from artist_id import genre as gm
    from artist_id import style_features as sf
    from artist_id.artists import read_artists_csv
    from artist_id.manifest import read_manifest
    from artist_id.models import WeightsError, save_model
    from artist_id.seeding import seed_everything

    stage.expect(gm.GenreError, sf.FeaturesError, WeightsError)
    seed_everything(seed)
    start = time.perf_counter()
    spec = sf.TrunkSpec.from_params(params)
    manifest = read_manifest("data/raw/manifest.csv")
    features = sf.paintings_statistics(manifest, spec)
    hashes = manifest.set_index("image_id").loc[features.index["image_id"]]
    data = gm.label_paintings(
        features.index,
        read_artists_csv("data/raw/artists.csv"),
        min_artists=g.min_artists,
        min_paintings=g.min_paintings,
        sha256=list(hashes["sha256"]),
        phash=list(hashes["phash"]),
        dedupe_hamming=params.select.dedupe_hamming,
    )
    stats = features.stats[data.rows]
    fit = gm.FitSettings(c=g.c, weighting=g.weighting, resamples=g.bootstrap, seed=seed)
    split = gm.painting_split(data.frame, g.val_fraction, g.test_fraction, seed)
    head, thresholds, paintings = gm.held_out_paintings(data, stats, split, fit)
    folds = gm.artist_folds(data.frame, data.y, g.artist_folds, seed)
    artists = gm.held_out_artists(data, stats, folds, fit)

    model = gm.build_genre_model(sf.build_trunk(spec), head, data.genres)
    check = paintings.rows[:CHECK_IMAGES]
    images = np.stack(
        [sf.load_square(features.index["path"][data.rows[i]], spec.image_size) for i in check]
    )
    drift = float(
        np.abs(model.predict_on_batch(images.astype(np.float32)) - head.predict(stats[check])).max()
    )
    if drift > 1e-3:
        raise stage.StageError(
            f"the saved genre model differs from its head by {drift:.2g} on the same images: "
            "data/features/paintings is stale, run `dvc repro features`"
        )
    out = stage.fresh_dir(MODEL_DIR)
    save_model(model, out / "model.keras")  # byte-identical for identical weights
    keras.backend.clear_session()

    n_artists = data.frame["artist"].nunique()
    per_genre_paintings = {genre: int(data.y[:, j].sum()) for j, genre in enumerate(data.genres)}
    threshold_of = {
        genre: round(float(t), 6) for genre, t in zip(data.genres, thresholds, strict=True)
    }
    metrics = {
        "genres": data.genres,
        "paintings": len(data.frame),
        "artists": n_artists,
        "artists_per_genre": data.artists_per_genre(),
        "paintings_per_genre": per_genre_paintings,
        "excluded": data.excluded,
        "unlabelled_artists": data.unlabelled_artists,
        "thresholds": threshold_of,
        "held_out_paintings": paintings.metrics,
        "held_out_artists": artists.metrics,
    }
    reports = stage.fresh_dir(REPORTS)
    stage.write_json(reports / "details.json", metrics)
    stage.write_json(reports / "metrics.json", gm.dvc_metrics(metrics))
    (reports / "report.md").write_text(gm.report_markdown(metrics), encoding="utf-8")
    gm.plot_ap(paintings.metrics, artists.metrics, reports / "ap.png")
    table = gm.artist_genre_table(data, artists.proba)
    truth = gm.artist_genre_table(data, data.y.astype(float)).loc[table.index] > 0.5
    gm.plot_artist_table(table, truth, reports / "artists.png")
    stage.write_json(
        out / "genres.json",
        {
            "genres": data.genres,
            "thresholds": threshold_of,
            "fallback_top_k": g.fallback_top_k,
            "image_size": spec.image_size,
            "trunk": spec.to_json(),
            "metrics": {
                key: {
                    "macro": metrics[key]["macro"],
                    "per_genre": {
                        genre: {
                            k: v for k, v in m.items() if k in ("ap", "f1", "prior_ap", "support")
                        }
                        for genre, m in metrics[key]["per_genre"].items()
                    },
                }
                for key in ("held_out_artists", "held_out_paintings")
            },
            "excluded": sorted(data.excluded),
        },
    )
    a, p = artists.metrics["macro"], paintings.metrics["macro"]
    log.info(
        "genre: %d genres over %d paintings of %d artists (left out: %s); macro AP held-out "
        "artists %s (prior %s), held-out paintings %s (prior %s); %.1f s",
        len(data.genres),
        len(data.frame),
        n_artists,
        ", ".join(data.excluded) or "none",
        a["ap"],
        a["prior_ap"],
        p["ap"],
        p["prior_ap"],
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    stage.run("genre", main)
