"""leaderboard: rank the evaluated models by a VALIDATION metric and name the best one.

Writes reports/leaderboard.json, reports/leaderboard.md and models/best.json. Test metrics
are shown but never used to choose (that would leak the test set into model selection).
"""

from __future__ import annotations

import logging
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params

log = logging.getLogger("artist_id.stages.leaderboard")


def main() -> None:
    from artist_id.evaluation import leaderboard_markdown, rank_models

    params = load_params()
    metric = params.leaderboard.metric
    rows = []
    for name in params.train.models:
        metrics = stage.read_json(Path("reports/evaluate") / name / "metrics.json")
        summary = stage.read_json(Path("reports/train") / name / "summary.json")
        timing = stage.read_json(Path("reports/train") / name / "timing.json")
        rows.append(
            {
                "model": name,
                "val": metrics["val"],
                "test": metrics["test"],
                "params": summary["params"],
                "train_seconds": timing["train_seconds"],
            }
        )
    ranked = rank_models(rows, metric)
    best = ranked[0]
    stage.write_json("reports/leaderboard.json", {"metric": f"val/{metric}", "models": ranked})
    Path("reports/leaderboard.md").write_text(
        leaderboard_markdown(ranked, metric), encoding="utf-8"
    )
    stage.write_json(
        "models/best.json",
        {
            "model": best["model"],
            "path": f"models/{best['model']}/model.keras",
            "chosen_by": f"val/{metric}",
            "val": {k: best["val"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
            "test": {k: best["test"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
        },
    )
    log.info(
        "leaderboard: best model %s (val %s %.3f)\n%s",
        best["model"],
        metric,
        best["val"][metric],
        Path("reports/leaderboard.md").read_text(encoding="utf-8"),
    )


if __name__ == "__main__":
    stage.run("leaderboard", main)
