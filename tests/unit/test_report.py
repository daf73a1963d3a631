"""`make report`'s comparison on small hand-made git repositories (no pipeline run).

Each repository holds what the pipeline commits: params.yaml, dvc.yaml, dvc.lock, and per
model metrics.json, predictions.csv, confusion.json and dvclive's training curves.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from artist_id import report as rp
from tests.e2e.project import commit, git

ARTISTS = ["Ada Brush", "Bea Stroke"]
N_TEST = 40
RESAMPLES = 100


def _labels() -> list[str]:
    return [ARTISTS[i % 2] for i in range(N_TEST)]


def _predictions(wrong: int) -> list[str]:
    """The first ``wrong`` test images get the other artist."""
    truth = _labels()
    return [ARTISTS[1 - ARTISTS.index(t)] if i < wrong else t for i, t in enumerate(truth)]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _lock_stage(model: str, lr: float, data: str = "data-1") -> dict[str, Any]:
    weights = _md5(f"{model}-{lr}")
    return {
        f"train@{model}": {
            "cmd": f"python -m stages.train {model}",
            "deps": [
                {"path": "data/processed/train", "md5": _md5(data)},
                {"path": "src/artist_id/training.py", "md5": _md5("training.py")},
            ],
            "params": {"params.yaml": {f"train.{model}": {"learning_rate": lr}}},
            "outs": [{"path": f"models/{model}/model.keras", "md5": weights}],
        },
        f"evaluate@{model}": {
            "cmd": f"python -m stages.evaluate {model}",
            "deps": [
                {"path": f"models/{model}/model.keras", "md5": weights},
                {"path": "src/artist_id/evaluation.py", "md5": _md5("evaluation.py")},
            ],
            "outs": [{"path": f"reports/evaluate/{model}/metrics.json", "md5": _md5(model)}],
        },
    }


def write_run(root: Path, runs: dict[str, tuple[int, float]], rank: list[str]) -> None:
    """Write a pipeline's committed outputs: ``runs`` maps model -> (wrong test images, lr)."""
    models = list(runs)
    params = {"base": {"seed": 1}, "train": {"models": models}}
    params["train"].update({m: {"learning_rate": lr} for m, (_, lr) in runs.items()})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = {
        "train": {
            "matrix": {"model": models},
            "cmd": "python -m stages.train ${item.model}",
            "params": ["train.${item.model}"],
            "outs": ["models/${item.model}/model.keras"],
        }
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    lock: dict[str, Any] = {"schema": "2.0", "stages": {}}
    for m, (_, lr) in runs.items():
        lock["stages"].update(_lock_stage(m, lr))
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    evaluate = root / "reports" / "evaluate"
    if evaluate.exists():
        for old in evaluate.iterdir():
            if old.name not in runs:
                subprocess.run(["rm", "-r", str(old)], check=True)
    board = []
    for i, m in enumerate(rank, start=1):
        wrong, _ = runs[m]
        acc = 1 - wrong / N_TEST
        metrics = {"accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc, "n": N_TEST}
        out = evaluate / m
        out.mkdir(parents=True, exist_ok=True)
        # the metrics convention: headline numbers under the model's name, all in details.json
        (out / "metrics.json").write_text(json.dumps({m: {"val": metrics, "test": metrics}}))
        (out / "details.json").write_text(json.dumps({"val": metrics, "test": metrics}))
        rows = ["split,image_id,label,predicted,p_predicted,p_label"]
        for k, (t, p) in enumerate(zip(_labels(), _predictions(wrong), strict=True)):
            rows.append(f"test,img_{k:02d},{t},{p},0.9,{0.9 if t == p else 0.1}")
        (out / "predictions.csv").write_text("\n".join(rows) + "\n")
        confusion = [
            {"actual": t, "predicted": p}
            for t, p in zip(_labels(), _predictions(wrong), strict=True)
        ]
        (out / "confusion.json").write_text(json.dumps(confusion))
        curves = root / "reports" / "train" / m / "plots" / "metrics" / "train"
        curves.mkdir(parents=True, exist_ok=True)
        (curves / "loss.tsv").write_text(f"step\tloss\n0\t1.0\n1\t{0.5 + wrong / 100}\n")
        board.append({"model": m, "rank": i, "val": metrics, "test": metrics})
    (root / "reports" / "leaderboard.json").write_text(
        json.dumps({"metric": "val/macro_f1", "models": board})
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, capture_output=True
    )
    # base: a unchanged later, b removed later, d retrained later with the same inputs
    write_run(
        root,
        {"a": (10, 0.1), "b": (10, 0.1), "d": (20, 0.1), "e": (20, 0.1)},
        rank=["a", "b", "d", "e"],
    )
    commit(root, "base")
    return root


def _build(root: Path, base: str = "HEAD") -> tuple[rp.Report, str, str]:
    out = root / "reports" / "pr"
    report = rp.build(root, base, out=out, n_resamples=RESAMPLES, seed=0, check_status=False)
    rp.write(report, out, run_url="https://ci.example/run/1")
    return report, (out / "report.md").read_text(), (out / "comment.md").read_text()


def _rows(text: str, model: str) -> list[list[str]]:
    """The test-metrics rows of ``model`` (the model's name is on its first row only)."""
    lines = text.split("### Test metrics")[1].split("###")[0].splitlines()
    rows, inside = [], False
    for line in lines:
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0]:
            inside = cells[0] == f"`{model}`"
        if inside:
            rows.append(cells)
    return rows


def test_new_removed_unchanged_and_same_input_models(repo: Path) -> None:
    # a: same predictions, but its learning rate changed (a real change of inputs)
    # b: removed; c: new; d: 20 -> 0 wrong with the SAME inputs (a CPU's doing: never "better")
    # e: 20 -> 0 wrong with a new learning rate: a real gain
    write_run(
        repo,
        {"a": (10, 0.2), "c": (5, 0.1), "d": (0, 0.1), "e": (0, 0.3)},
        rank=["d", "e", "a", "c"],
    )
    report, text, comment = _build(repo)
    by_model = {d.model: d for d in report.models}
    assert by_model["b"].status == "removed" and by_model["c"].status == "new"

    a = _rows(text, "a")
    assert [r[1] for r in a] == ["macro-F1", "balanced acc.", "accuracy"]
    for row in a:  # old, new, delta, CI of delta, verdict
        assert row[2:] == ["0.750", "0.750", "+0.000", "[+0.000, +0.000]", "within noise"]
    assert [r[-1] for r in _rows(text, "b")] == ["**removed**"] * 3
    assert [r[2:5] for r in _rows(text, "b")] == [["0.750", "–", "–"]] * 3
    assert [r[-1] for r in _rows(text, "c")] == ["**new**"] * 3
    assert [r[2:4] for r in _rows(text, "c")] == [["–", "0.875"]] * 3
    d = _rows(text, "d")
    assert d[0][2:5] == ["0.500", "1.000", "+0.500"]
    assert by_model["d"].same_inputs and by_model["d"].comparisons["accuracy"].verdict == "better"
    assert [r[-1] for r in d] == [f"within noise {rp.SAME_INPUTS}"] * 3
    assert [r[-1] for r in _rows(text, "e")] == ["**better**"] * 3
    assert "**Changes beyond noise:** `e`;" in text
    assert "new models: `c`; removed: `b`." in text
    assert "**Chosen model changed:** `a` → `d`." in text

    # params: only what changed, old and new
    assert "| `train.a.learning_rate` | `0.1` | `0.2` |" in text
    assert "| `train.e.learning_rate` | `0.1` | `0.3` |" in text
    assert "train.d.learning_rate" not in text

    # changed plots: side by side, every linked image exists; none in the comment
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "figures/d-confusion-base.png" in links and "figures/d-confusion-new.png" in links
    assert "figures/c-confusion-new.png" in links and not any("b-" in x for x in links)
    assert "figures/a-confusion-new.png" not in links  # a's predictions did not change
    for link in links:
        assert (repo / "reports" / "pr" / link).is_file(), link
    assert not re.findall(r"!\[", comment)
    assert "[this workflow run](https://ci.example/run/1)" in comment


def test_a_base_without_per_image_predictions_gives_no_paired_verdict(repo: Path) -> None:
    # an older base: metrics.json with val/test at its top, no details.json, no predictions
    a = repo / "reports" / "evaluate" / "a"
    (a / "predictions.csv").unlink()
    (a / "details.json").rename(a / "metrics.json")
    commit(repo, "an older base")
    write_run(
        repo,
        {"a": (0, 0.2), "b": (10, 0.1), "d": (20, 0.1), "e": (20, 0.1)},
        rank=["a", "b", "d", "e"],
    )
    _, text, _ = _build(repo)
    assert [r[-1] for r in _rows(text, "a")] == ["n/a"] * 3
    assert [r[2:5] for r in _rows(text, "a")] == [["0.750", "1.000", "+0.250"]] * 3
    assert "`a`: the base has no per-image predictions" in text


def test_unknown_base_is_an_actionable_error(repo: Path) -> None:
    with pytest.raises(rp.ReportError, match="fetch it"):
        rp.build(repo, "origin/nope", out=repo / "out", check_status=False)


def test_lineage_ignores_intermediate_hashes_but_not_params_or_code() -> None:
    lock = {"stages": {**_lock_stage("m", 0.1)}}
    retrained = {"stages": {**_lock_stage("m", 0.1)}}
    retrained["stages"]["train@m"]["outs"][0]["md5"] = _md5("other weights")
    retrained["stages"]["evaluate@m"]["deps"][0]["md5"] = _md5("other weights")
    assert rp.lineage(lock, "evaluate@m") == rp.lineage(retrained, "evaluate@m")
    assert rp.lineage(lock, "evaluate@m") != rp.lineage(
        {"stages": _lock_stage("m", 0.2)}, "evaluate@m"
    )
    assert rp.lineage(lock, "evaluate@m") != rp.lineage(
        {"stages": _lock_stage("m", 0.1, data="data-2")}, "evaluate@m"
    )
    assert rp.lineage(lock, "evaluate@x") is None


def test_the_report_renders_as_tables_and_images(repo: Path) -> None:
    """Rendered as GitHub does (CommonMark + tables): every table row keeps its columns and
    every image points at a file next to the report."""
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

    write_run(repo, {"a": (5, 0.2), "c": (5, 0.1)}, rank=["a", "c"])
    _, text, _ = _build(repo)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[list[int]] = []
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append(0)
        elif token.type in {"th_open", "td_open"}:
            tables[-1][-1] += 1
    assert len(tables) >= 4  # params, metrics, leaderboard, a plot pair
    for widths in tables:
        assert len(set(widths)) == 1, widths  # a stray "|" would add a cell
    images: list[Token] = [
        child
        for token in tokens
        if token.type == "inline"
        for child in token.children or []
        if child.type == "image"
    ]
    assert images
    for image in images:
        assert (repo / "reports" / "pr" / str(image.attrs["src"])).is_file()


def _image_plot(root: Path, path: str, colour: str) -> None:
    from PIL import Image

    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 32), colour).save(target)


def _declare_plots(root: Path, *paths: str) -> None:
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc_yaml["plots"] = list(paths)
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))


def test_changed_image_plots_side_by_side_or_workspace_only(repo: Path) -> None:
    # preview.png is in git on both sides; sizes.png is a DVC-cached output whose base copy
    # is nowhere on this machine (a CI runner): dvc.lock says it changed, so it is shown alone
    _declare_plots(repo, "reports/augment/preview.png", "reports/eda/sizes.png")
    _image_plot(repo, "reports/augment/preview.png", "red")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    lock["stages"]["eda"] = {
        "cmd": "python -m stages.eda",
        "outs": [{"path": "reports/eda", "md5": _md5("eda-1") + ".dir"}],
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    commit(repo, "base with plots")

    _image_plot(repo, "reports/augment/preview.png", "blue")
    _image_plot(repo, "reports/eda/sizes.png", "green")
    lock["stages"]["eda"]["outs"][0]["md5"] = _md5("eda-2") + ".dir"
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    report, text, _ = _build(repo)

    figures = {f.title: f for f in report.figures}
    preview = figures["`reports/augment/preview.png`"]
    assert preview.base == "figures/reports-augment-preview-base.png"
    assert preview.new == "figures/reports-augment-preview-new.png"
    sizes = figures["`reports/eda/sizes.png`"]
    assert sizes.base is None and sizes.new == "figures/reports-eda-sizes-new.png"
    assert "not in this machine's DVC cache" in sizes.note
    assert (
        "| *(not available)* | ![reports/eda/sizes.png](figures/reports-eda-sizes-new.png) |"
        in text
    )

    # unchanged bytes (and an unchanged lock hash) are not shown
    commit(repo, "same plots")
    report, _, _ = _build(repo)
    assert not [f for f in report.figures if f.title.startswith("`reports/")]
