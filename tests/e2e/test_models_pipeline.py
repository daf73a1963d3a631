"""The whole pipeline, models included, in a temporary copy with tiny params."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests import browser
from tests.conftest import REPO
from tests.e2e.project import dvc, env_for, ran, restore, set_params, stage_error

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def project(trained_project: Path) -> Path:
    return trained_project  # one pipeline run for every e2e module (tests/e2e/conftest.py)


def train_models(root: Path) -> list[str]:
    import yaml

    return list(yaml.safe_load((root / "params.yaml").read_text())["train"]["models"])


def test_every_model_is_trained_evaluated_and_ranked(project: Path) -> None:
    restore(project)
    stages = set(project.joinpath(".repro-ran").read_text().split())
    names = train_models(project)
    assert {f"train@{m}" for m in names} | {f"evaluate@{m}" for m in names} <= stages
    assert "leaderboard" in stages
    metrics = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    files = next(iter(metrics.values()))["data"]
    for m in names:
        # metrics: the headline numbers under the model's name; the rest in details.json
        data = files[f"reports/evaluate/{m}/metrics.json"]["data"]
        assert list(data) == [m]
        for split in ("val", "test"):
            assert set(data[m][split]) == {"accuracy", "balanced_accuracy", "macro_f1", "log_loss"}
        details = json.loads((project / "reports/evaluate" / m / "details.json").read_text())
        assert {"top2_accuracy", "weighted_f1", "n", "per_class", "majority_baseline"} <= set(
            details["test"]
        )
        assert details["test"]["macro_f1"] == data[m]["test"]["macro_f1"]
        assert f"reports/train/{m}/metrics.json" not in files  # a report, not a metric
        for fig in (
            "confusion.png",
            "misclassified.png",
            "learning_curves.png",
            "explain_mistakes.png",  # heat maps: where the model looked
            "explain_correct.png",
        ):
            assert (project / "reports/evaluate" / m / "figures" / fig).is_file()
    best = json.loads((project / "models/best.json").read_text())
    assert best["model"] in names and best["chosen_by"] == "val/macro_f1"
    board = json.loads((project / "reports/leaderboard.json").read_text())
    assert board["models"][0]["model"] == best["model"]
    assert sorted(r["model"] for r in board["models"]) == sorted(names)
    assert best["model"] in (project / "reports/leaderboard.md").read_text()


def vega_plot_ids(html: str) -> list[str]:
    """Ids of the plots DVC's page hands to vega (an image plot is an <img>, not a script)."""
    return re.findall(r'<div id = "([^"]+)">\s*<script', html)


def assert_every_plot_drawn(project: Path, out: str, screenshot: str) -> str:
    """Open DVC's page in Chromium with the network off; every vega plot must be drawn."""
    html = (project / out / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html
    ids = vega_plot_ids(html)
    page = browser.render(
        (project / out / "index.html").as_uri(), screenshot=screenshot, size=(1400, 11000)
    )
    assert page.requests == [], f"the page tried the network: {page.requests}"
    blank = [i for i in ids if not browser.svg_marks(page.dom, i)]
    assert not blank, f"{len(blank)} of {len(ids)} plots drawn blank offline: {blank}"
    return page.dom


def test_plots_show_renders_every_plot_offline(project: Path) -> None:
    restore(project)
    dvc(project, "plots", "show", "-o", "plots_html")
    html = (project / "plots_html" / "index.html").read_text()
    names = train_models(project)
    ids = vega_plot_ids(html)
    for m in names:  # DVC names each plot's <div> after its file
        assert f"reports_evaluate_{m}_confusion_json" in ids
        summary = json.loads((project / "reports/train" / m / "summary.json").read_text())
        # Keras logs the learning rate per epoch; an lbfgs head logs C and macro-F1 per C
        own = (
            ("train_c", "eval_macro_f1")
            if summary.get("optimizer") == "lbfgs"
            else ("train_learning_rate",)
        )
        for curve in ("train_loss", "eval_loss", "eval_accuracy", *own):
            assert f"reports_train_{m}_plots_metrics_{curve}_tsv" in ids
    assert "reports_eda_paintings_per_artist_json" in ids
    dom = assert_every_plot_drawn(project, "plots_html", "plots-show-offline.png")

    # The confusion matrices show the counts of the test predictions, cell by cell.
    for m in names:
        records = json.loads((project / "reports/evaluate" / m / "confusion.json").read_text())
        expected = Counter((r["actual"], r["predicted"]) for r in records)
        cells = {}
        for kind, label in browser.svg_marks(dom, f"reports_evaluate_{m}_confusion_json"):
            fields = dict(part.split(": ", 1) for part in label.split("; "))
            assert kind == "rect mark"
            cells[(fields["actual"], fields["predicted"])] = int(fields["xy_count"])
        assert {k: v for k, v in cells.items() if v} == dict(expected), m


def test_plots_diff_renders_offline(project: Path) -> None:
    restore(project)
    dvc(project, "plots", "diff", "HEAD", "-o", "plots_diff")
    dom = assert_every_plot_drawn(project, "plots_diff", "plots-diff-offline.png")
    assert "rev: HEAD" in dom and "rev: workspace" in dom


def test_a_shared_train_param_changes_every_train_stage_and_nothing_upstream(
    project: Path,
) -> None:
    """`-S train.epochs=...` retrains every model (README), and nothing before `train`: what
    `dvc status` reports as changed, without running anything."""
    restore(project)
    try:
        set_params(project, train__epochs=1)
        status = json.loads(dvc(project, "status", "--json").stdout)
        trains = {f"train@{m}" for m in train_models(project)}
        # package also hashes params.yaml whole into its provenance: downstream, as it should be
        assert set(status) == trains | {"package"}, status
        changed = {"changed deps": {"params.yaml": {"train.epochs": "modified"}}}
        assert all(status[t] == [changed] for t in trains), status
    finally:
        restore(project)


def test_a_subset_of_models_trains_and_is_packaged(project: Path) -> None:
    """`train.models` may name any subset: package depends on the leaderboard's copy only."""
    restore(project)
    shutil.rmtree(project / "models" / "zoo")  # as in a fresh clone: no other model on disk
    try:
        proc = dvc(
            project,
            "exp",
            "run",
            "-S",
            "train.models=[style_stats]",
            "-S",
            "filters.model=style_stats",  # filters reads a model of train.models
        )
        assert "package" in ran(proc) or "package" in proc.stdout, proc.stdout
        best = json.loads((project / "models/best.json").read_text())
        assert best["model"] == "style_stats"
        assert best["path"] == "models/best/model.keras"
        copy = (project / "models/best/model.keras").read_bytes()
        assert copy == (project / "models/zoo/style_stats/model.keras").read_bytes()
        board = json.loads((project / "reports/leaderboard.json").read_text())
        assert [r["model"] for r in board["models"]] == ["style_stats"]
        assert (project / "models/bento/artist-id.tar").is_file()
    finally:
        restore(project)


# The README's experiment example and table, run as written.
README_EXP_RUN = "dvc exp run --temp -S train.style_stats.optimizer=adam"
README_EXP_SHOW = (
    "dvc exp show --only-changed --drop '.*/|params.yaml|Created|.*accuracy|.*val\\.log_loss"
    "|style\\..*' --keep 'style_stats.*macro_f1'"
)


def test_readme_experiment_runs_one_model_and_its_table_fits_160_columns(project: Path) -> None:
    restore(project)
    dvc(project, "exp", "remove", "--all-commits")  # the table shows this experiment only
    readme = (REPO / "README.md").read_text()
    assert README_EXP_RUN in readme and README_EXP_SHOW in readme
    before = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True)
    proc = dvc(project, *shlex.split(README_EXP_RUN)[1:])
    # One model's stages, the ranking and the report; no other model is retrained. package
    # and style (which scores its results with the best model) follow only when the retrained
    # model changes models/best, which depends on how the tiny run's models rank here.
    stages = ran(proc)
    assert {"train@style_stats", "evaluate@style_stats", "leaderboard", "report"} <= stages
    assert stages <= {
        "train@style_stats",
        "evaluate@style_stats",
        "leaderboard",
        "package",
        "style",
        "report",
    }
    assert "style" not in stages or "package" in stages
    after = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True)
    assert after.stdout == before.stdout  # --temp: the workspace is untouched
    env = env_for(project, COLUMNS="160")
    table = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *shlex.split(README_EXP_SHOW)[1:], "--no-pager"],
        cwd=project,
        env=env,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    lines = table.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 160
    header = next(line for line in lines if "Experiment" in line).split()
    assert "train.style_stats.optimizer" in header  # the changed parameter, not collapsed to "…"
    assert {"style_stats.val.macro_f1", "style_stats.test.macro_f1"} <= set(header)
    assert "…" not in table
    assert any("adam" in line for line in lines if "[" in line)  # the experiment's row


@pytest.mark.parametrize("stage", ["features", "train vgg16"])
def test_imagenet_offline_fails_fast_with_the_file_to_fetch(
    project: Path, tmp_path: Path, stage: str
) -> None:
    # `features` is where `dvc repro` meets the weights first; `train` on its own must say the same
    restore(project)
    set_params(project, train__vgg16__weights="imagenet")
    name, *args = stage.split()
    try:
        last = stage_error(
            project,
            name,
            *args,
            KERAS_HOME=str(tmp_path / "keras"),
            # an offline machine: every HTTP(S) connection is refused at once
            HTTPS_PROXY="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9",
            https_proxy="http://127.0.0.1:9",
            http_proxy="http://127.0.0.1:9",
        )
    finally:
        restore(project)
    assert last.startswith(name + ": could not download the ImageNet weights for vgg16")
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in last
    assert str(tmp_path / "keras" / "models") in last  # where to put it
    assert "hed-bsds500" in last  # and how to train offline instead
    assert not any((tmp_path / "keras").rglob("*.h5"))  # nothing half-downloaded left behind


def test_style_transfer_and_filter_reports(project: Path) -> None:
    restore(project)
    assert {"style", "filters"} <= set(project.joinpath(".repro-ran").read_text().split())
    classes = json.loads((project / "data/processed/classes.json").read_text())
    style = project / "reports/style"
    details = json.loads((style / "details.json").read_text())
    # the sample has none of the deck's painters: the selected classes are the style artists
    assert {m["artist"] for m in details["artists"].values()} == set(classes["classes"])
    assert set(details["artists"]) == set(classes["folders"].values())
    for slug, m in details["artists"].items():
        assert (style / f"{slug}.png").is_file()
        [painting] = m["paintings"]
        stem = Path(painting).stem
        assert sorted(p.name for p in (style / "results" / slug).iterdir()) == sorted(
            f"china__{stem}__{name}.png" for name in ("it2", "it4", "fast")
        )
        assert set(m["losses"]) == {"total", "style", "content", "tv"}
        score = m["classifier"]
        assert score["in_classes"] is True and set(score["p_artist"]) == {
            "photo",
            "it2",
            "it4",
            "fast",
        }
        assert all(0.0 <= v <= 1.0 for v in score["attributed"].values())
    timing = json.loads((style / "timing.json").read_text())
    assert all(t["gatys_seconds_per_iteration"] > 0 for t in timing.values())
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    headline = next(iter(shown.values()))["data"]["reports/style/metrics.json"]["data"]
    assert set(headline["style"]) == {
        "style_loss",
        "content_loss",
        "tv_loss",
        "p_artist_photo",
        "p_artist_gatys",
        "attributed_gatys",
        "p_artist_fast",
        "attributed_fast",
    }
    plots = json.loads(dvc(project, "plots", "show", "--json", "reports/style/curves").stdout)
    slug = sorted(details["artists"])[0]
    assert any(k.endswith(f"reports/style/curves/{slug}/total_loss.tsv") for k in plots["data"])

    summary = json.loads((project / "reports/filters/summary.json").read_text())
    assert [layer["index"] for layer in summary["layers"]] == [1, 2, 3, 4, 5]
    assert all(len(layer["filters"]) == 2 for layer in summary["layers"])
    for name in [f"layer_{k}.png" for k in range(1, 6)] + ["overview.png"]:
        assert (project / "reports/filters" / name).is_file()


def test_unknown_style_artist_stops_the_stage_with_one_line(project: Path) -> None:
    restore(project)
    set_params(project, style__artists=["Vincent van Gohg"])
    try:
        last = stage_error(project, "style")
    finally:
        restore(project)
    assert last.startswith("style: style.artists: 'Vincent van Gohg' not in the ingested data")
    assert "known artists: " in last
