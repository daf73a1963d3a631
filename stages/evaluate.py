"""evaluate@<model>: metrics and plots on the validation and test sets.

Writes reports/evaluate/<model>/: metrics.json (dvclive; the DVC metrics: the headline numbers
of val and test under the model's name, ``{"<model>": {"val": {...}, "test": {...}}}``, so the
names are unique across models and `dvc exp show` needs no file paths in its columns, each
with its 95 % bootstrap interval ``<metric>_ci: [lo, hi]``, a list DVC's tables skip),
details.json (everything else: per-class report, weighted F1, top-2, n, majority baseline,
and the intervals again), confusion.json (DVC ``confusion`` template, test set),
predictions.csv (one compact row per val/test image, committed to git so that a PR report
can pair two revisions image by image) and figures/ (normalised confusion matrix,
misclassified test images, learning curves, and heat maps of where the model looked for its
most confident mistakes and right answers).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from artist_id import stage
from artist_id.config import load_params

PROCESSED = Path("data/processed")
log = logging.getLogger("artist_id.stages.evaluate")


def main() -> None:
    if len(sys.argv) != 2:
        raise stage.StageError("usage: python -m stages.evaluate <model>")
    name = sys.argv[1]
    params = load_params()
    params.train.model(name)

    from dvclive import Live

    from artist_id import evaluation as ev
    from artist_id import features
    from artist_id import predictions as pr
    from artist_id.models import ModelFileError, load_model
    from artist_id.training import load_split, predict, predict_from_store
    from artist_id.uncertainty import bootstrap_intervals

    stage.expect(ModelFileError, features.FeatureStoreError)
    classes = stage.read_json(PROCESSED / "classes.json")["classes"]
    model = load_model(Path("models/zoo") / name / "model.keras", num_classes=len(classes))
    out = stage.fresh_dir(Path("reports/evaluate") / name)
    figures = out / "figures"
    figures.mkdir()
    live = Live(dir=str(out), save_dvc_exp=False, dvcyaml=None)
    predictions = []
    results = {}
    boot = params.evaluate
    mp = params.train.model(name)
    fine_tuned = mp.fine_tune_layers > 0 and mp.fine_tune_epochs > 0
    store = None if fine_tuned else features.for_model(params.train, name, params.base.image_size)
    for split in ("val", "test"):
        index = PROCESSED / split / "index.csv"
        data = load_split(index)
        image_ids = pd.read_csv(index, dtype={"image_id": str})["image_id"]
        if store is not None:  # the frozen trunk already ran on these images: the head alone
            proba = predict_from_store(model, store, data.paths, data.image_size)
        else:
            proba = predict(model, data, desc=f"predict:{split}")
        metrics = ev.classification_metrics(data.labels, proba, classes)
        ev.log_metrics(live, ev.headline(metrics), f"{name}/{split}")
        intervals = bootstrap_intervals(
            data.labels,
            proba.argmax(axis=1),
            n_resamples=boot.bootstrap_resamples,
            confidence=boot.confidence,
            seed=params.base.seed,
        )
        ev.log_intervals(live, intervals, f"{name}/{split}")
        metrics.update({f"{m}_ci": [lo, hi] for m, (lo, hi) in intervals.items()})
        results[split] = (data, proba, metrics, intervals)
        predictions.append(pr.table(split, list(image_ids), data.labels, proba, classes))
    live.end()
    stage.write_json(out / "details.json", {split: results[split][2] for split in results})
    pr.to_csv(predictions, out / "predictions.csv")

    data, proba, metrics, intervals = results["test"]
    predicted = proba.argmax(axis=1)
    stage.write_json(out / "confusion.json", ev.confusion_records(data.labels, predicted, classes))
    ev.plot_confusion(
        data.labels,
        predicted,
        classes,
        figures / "confusion.png",
        title=f"{name}: test confusion matrix (row-normalised)",
    )
    shown = ev.plot_misclassified(
        data.paths,
        data.labels,
        predicted,
        proba,
        classes,
        figures / "misclassified.png",
        max_images=params.evaluate.misclassified,
    )
    from artist_id import explain

    explained = explain.explain_sheets(
        explain.Explainer(model, traced=False),  # a single call: tracing would cost more
        data.paths,
        data.labels,
        proba,
        classes,
        figures,
        mistakes=params.evaluate.explain_mistakes,
        correct_per_class=params.evaluate.explain_correct,
    )
    history = ev.read_dvclive_history(Path("reports/train") / name)
    ev.plot_learning_curves(history, figures / "learning_curves.png", title=f"{name}: training")
    val = results["val"][2]
    log.info(
        "%s: val macro-F1 %.3f | test macro-F1 %.3f %s, balanced acc %.3f, acc %.3f "
        "(majority baseline macro-F1 %.3f) | %d misclassified shown, %d heat maps",
        name,
        val["macro_f1"],
        metrics["macro_f1"],
        intervals["macro_f1"],
        metrics["balanced_accuracy"],
        metrics["accuracy"],
        metrics["majority_baseline"]["macro_f1"],
        shown,
        sum(explained.values()),
    )


if __name__ == "__main__":
    stage.run("evaluate", main)
