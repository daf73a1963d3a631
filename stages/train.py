"""train@<model>: fit one model -> models/zoo/<model>/model.keras and reports/train/<model>/.

Usage: ``python -m stages.train <model>`` (dvc.yaml runs it once per ``train.models`` entry).
Per-epoch loss, accuracy, val_loss, val_accuracy and learning rate go through dvclive.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params

PROCESSED = Path("data/processed")
log = logging.getLogger("artist_id.stages.train")


def main() -> None:
    if len(sys.argv) != 2:
        raise stage.StageError("usage: python -m stages.train <model>")
    name = sys.argv[1]
    params = load_params()
    mp = params.train.model(name)  # unknown names fail before TensorFlow loads

    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from artist_id import features
    from artist_id.models import WeightsError, save_model
    from artist_id.seeding import seed_everything
    from artist_id.training import HeadFitError, load_split, train_model

    stage.expect(WeightsError, features.FeatureStoreError, HeadFitError)
    seed_everything(params.base.seed)
    classes = stage.read_json(PROCESSED / "classes.json")
    names = classes["classes"]
    class_weight = {i: float(classes["class_weight"][c]) for i, c in enumerate(names)}
    train = load_split(PROCESSED / "train" / "index.csv")
    val = load_split(PROCESSED / "val" / "index.csv")
    log.info(
        "%s: %d training / %d validation images at %d px, %d classes, weights=%s",
        name,
        len(train.labels),
        len(val.labels),
        train.image_size,
        len(names),
        mp.weights,
    )
    store = features.for_model(params.train, name, train.image_size)
    stored = None
    if store is not None:
        stored = (store.rows(train.paths), store.rows(val.paths))
        log.info("%s: trunk features from the feature store (%s)", name, features.ROOT / name)
    out = stage.fresh_dir(Path("models/zoo") / name)
    reports = stage.fresh_dir(Path("reports/train") / name)
    live = Live(dir=str(reports), save_dvc_exp=False, dvcyaml=None)
    result = train_model(
        name,
        params.train,
        train,
        val,
        len(names),
        class_weight,
        seed=params.base.seed,
        callbacks=[DVCLiveCallback(live=live)],
        stored=stored,
    )
    live.end()
    save_model(result.model, out / "model.keras")
    history = result.history
    best = result.best_epoch - 1  # the epoch whose weights were kept (0-based)
    stage.write_json(
        reports / "summary.json",
        {
            "model": name,
            "params": int(result.model.count_params()),
            "epochs_run": result.epochs_run,
            "best_epoch": best + 1,
            "best_val_loss": round(history["val_loss"][best], 6),
            "best_val_accuracy": round(history["val_accuracy"][best], 6),
            "feature_cache": result.used_feature_cache,
            "weights": mp.weights,
            # lbfgs: each "epoch" is one C of train.<model>.c; this one was kept
            **({"optimizer": "lbfgs", "c": history["c"][best]} if "c" in history else {}),
        },
    )
    # Wall time is not a metric (it differs run to run); the leaderboard reads it from here.
    stage.write_json(reports / "timing.json", {"train_seconds": round(result.seconds, 1)})
    kept = (
        f"C={history['c'][best]:g} ({best + 1}/{result.epochs_run})"
        if "c" in history
        else (f"best epoch {best + 1}/{result.epochs_run}")
    )
    log.info(
        "%s: %s  val_loss %.4f  val_accuracy %.3f  %s params  %.1f s%s",
        name,
        kept,
        history["val_loss"][best],
        history["val_accuracy"][best],
        f"{result.model.count_params():,}",
        result.seconds,
        "  (feature cache)" if result.used_feature_cache else "",
    )


if __name__ == "__main__":
    stage.run("train", main)
