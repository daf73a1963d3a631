"""leaderboard: rank the evaluated models by a VALIDATION metric and keep the best one.

Writes reports/leaderboard.json, reports/leaderboard.md, models/best.json and
models/best/model.keras (a copy of the chosen model from models/zoo/, so that `package`
depends on one file whatever `train.models` holds). Test metrics are shown but never used
to choose (that would leak the test set into model selection).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from artist_id import stage
from artist_id.config import load_params

ZOO = Path("models/zoo")
BEST_DIR = Path("models/best")
log = logging.getLogger("artist_id.stages.leaderboard")


def main() -> None:
    from artist_id.leaderboard import best_record, leaderboard_markdown, rank_models

    params = load_params()
    metric = params.leaderboard.metric
    rows = []
    for name in params.train.models:
        # details.json: every number of the evaluation (metrics.json holds the headline ones)
        metrics = stage.read_json(Path("reports/evaluate") / name / "details.json")
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
    best = ranked[0]["model"]
    source = ZOO / best / "model.keras"
    if not source.is_file():
        raise stage.StageError(f"{source} (the best model) not found: run `dvc repro train`")
    out = stage.fresh_dir(BEST_DIR)
    shutil.copyfile(source, out / "model.keras")
    stage.write_json("reports/leaderboard.json", {"metric": f"val/{metric}", "models": ranked})
    markdown = leaderboard_markdown(ranked, metric)
    Path("reports/leaderboard.md").write_text(markdown, encoding="utf-8")
    stage.write_json("models/best.json", best_record(ranked, metric, out / "model.keras"))
    log.info(
        "leaderboard: best model %s (val %s %.3f)\n%s",
        best,
        metric,
        ranked[0]["val"][metric],
        markdown,
    )


if __name__ == "__main__":
    stage.run("leaderboard", main)
