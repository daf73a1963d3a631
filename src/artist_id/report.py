"""``make report BASE=<rev>``: what an experiment changed, and which changes are real.

Compares the workspace (after ``dvc repro``) with another git revision and writes
``reports/pr/report.md`` with the images it links (``reports/pr/figures/``), plus
``reports/pr/comment.md``, the same text with the images replaced by a pointer to where
they are (for a PR comment that must not upload them anywhere):

* the params that changed (``dvc params diff``);
* per model, old -> new test accuracy, balanced accuracy and macro-F1, the delta and a
  verdict from a **paired** bootstrap over the test images both runs evaluated
  (:func:`artist_id.uncertainty.paired_comparison`): "better", "worse" or "within noise";
  "new" / "removed" for a model only one side has;
* whether the model's *inputs* changed at all: the params, code and source data of every
  stage upstream of its evaluation (from both ``dvc.lock`` files) and the pinned packages.
  When none did, a difference can only be run-to-run variation (training from scratch is
  not bit-reproducible across CPUs), and it is never called better or worse;
* the leaderboard before and after, and whether the chosen model changed;
* changed plots, old and new side by side: confusion matrices and learning curves
  re-drawn from the git-tracked data of both revisions, and the image plots of
  ``dvc.yaml`` (EDA, augmentation preview) when the base's copy is in git or in the local
  DVC cache.

The base revision is read with ``git show <rev>:<path>`` (and DVC's API for DVC-tracked
images), never checked out over the workspace.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from artist_id import predictions as pr
from artist_id import reporting as md
from artist_id.leaderboard import overlap_sentence
from artist_id.uncertainty import HEADLINE, Comparison, metric_values, paired_comparison

log = logging.getLogger(__name__)

OUT = Path("reports/pr")
EVALUATE = "reports/evaluate"
TRAIN = "reports/train"
LEADERBOARD = "reports/leaderboard.json"
# Files whose change changes every model even when dvc.lock does not show it.
ENVIRONMENT = ("constraints.txt", "pyproject.toml")
METRIC_NAMES = {
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced acc.",
    "accuracy": "accuracy",
}
SAME_INPUTS = "†"


class ReportError(RuntimeError):
    """The comparison cannot be made (unknown revision, not a DVC project, no metrics)."""


# ------------------------------------------------------------------ reading a revision


@dataclass
class Revision:
    """The files of one revision: the workspace (``rev=None``) or a git commit."""

    root: Path
    rev: str | None
    name: str

    @property
    def short(self) -> str:
        return "workspace" if self.rev is None else self.rev[:8]

    @property
    def label(self) -> str:
        return self.name if self.rev is None else f"{self.name} ({self.short})"

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None if the revision has no such file (git for commits)."""
        if self.rev is None:
            p = self.root / path
            return p.read_bytes() if p.is_file() else None
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{self.rev}:{path}"],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        return proc.stdout if proc.returncode == 0 else None

    def json(self, path: str) -> Any:
        data = self.read(path)
        return None if data is None else json.loads(data.decode("utf-8"))

    def yaml(self, path: str) -> Any:
        data = self.read(path)
        return None if data is None else yaml.safe_load(data.decode("utf-8"))

    def files(self, folder: str) -> list[str]:
        """Paths of the files under ``folder`` (sorted, relative to the repository root)."""
        if self.rev is None:
            base = self.root / folder
            if not base.is_dir():
                return []
            return sorted(
                p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()
            )
        proc = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", self.rev, "--", folder],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        return sorted(proc.stdout.split()) if proc.returncode == 0 else []

    def output(self, path: str) -> bytes | None:
        """A file that may be a DVC-cached output: from git, else from the local DVC cache."""
        data = self.read(path)
        if data is not None or self.rev is None:
            return data
        try:
            import dvc.api

            blob: bytes = dvc.api.read(path, repo=str(self.root), rev=self.rev, mode="rb")
        except Exception as exc:  # not in the cache (a CI runner), or not an output at all
            log.info("%s at %s is not available: %s", path, self.short, exc)
            return None
        return blob


def resolve(root: Path, rev: str) -> str:
    """The full commit id of ``rev``, or a :class:`ReportError` saying what to do."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ReportError(
            f"BASE={rev} is not a commit of this repository (a shallow clone? fetch it, e.g. "
            "`git fetch origin main`, or check out with full history)"
        )
    return proc.stdout.strip()


def _dvc(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    if proc.returncode != 0:
        raise ReportError(f"`dvc {' '.join(args)}` failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def params_diff(root: Path, base: str) -> dict[str, tuple[Any, Any]]:
    """``{"file:key" or "key": (old, new)}`` for every param that differs (``dvc params diff``)."""
    raw = json.loads(_dvc(root, "params", "diff", base, "--json") or "{}")
    out: dict[str, tuple[Any, Any]] = {}
    for file, changes in sorted(raw.items()):
        for key, change in sorted(changes.items()):
            name = key if file == "params.yaml" else f"{file}:{key}"
            out[name] = (change.get("old"), change.get("new"))
    return out


def stale_stages(root: Path) -> list[str]:
    """Stages whose outputs do not match the workspace's params and code (``dvc status``)."""
    return sorted(json.loads(_dvc(root, "status", "--json") or "{}"))


# ------------------------------------------------------------------ did the inputs change?


def _inside(path: str, folder: str) -> bool:
    return path == folder or PurePosixPath(path).is_relative_to(folder)


def lineage(lock: Mapping[str, Any], stage: str) -> dict[str, Any] | None:
    """What a stage's outputs are a function of: the params and commands of the stage and
    every stage upstream of it, and the hashes of the deps no stage produces (code, source
    data). Intermediate outputs are left out on purpose: a model retrained on another CPU
    has another hash but the same inputs. None when the lock does not know the stage."""
    stages = lock.get("stages", {}) if isinstance(lock, Mapping) else {}
    if stage not in stages:
        return None
    outs = {name: [str(o["path"]) for o in entry.get("outs", [])] for name, entry in stages.items()}
    leaves: dict[str, Any] = {}
    params: dict[str, Any] = {}
    seen: set[str] = set()
    todo = [stage]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        entry = stages[name]
        params[name] = {"cmd": entry.get("cmd"), "params": entry.get("params", {})}
        for dep in entry.get("deps", []):
            path = str(dep["path"])
            producers = [
                other
                for other, paths in outs.items()
                if any(_inside(path, o) or _inside(o, path) for o in paths)
            ]
            if producers:
                todo.extend(producers)
            else:
                leaves[path] = dep.get("md5") or dep.get("hash")
    return {"stages": params, "leaves": leaves}


# ------------------------------------------------------------------ one model, two revisions


@dataclass
class ModelDiff:
    """How one model's test metrics moved between the base and the workspace."""

    model: str
    status: str  # "compared", "new", "removed", "not evaluated"
    old: dict[str, Any] = field(default_factory=dict)  # base test metrics
    new: dict[str, Any] = field(default_factory=dict)  # workspace test metrics
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    same_inputs: bool = False
    common: int = 0  # test images both runs evaluated
    note: str = ""


def _test_rows(frame: Any) -> Any:
    return frame[frame["split"] == "test"].set_index("image_id")


def compare_model(
    model: str,
    base_metrics: Mapping[str, Any] | None,
    new_metrics: Mapping[str, Any] | None,
    base_predictions: bytes | None,
    new_predictions: bytes | None,
    *,
    same_inputs: bool,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> ModelDiff:
    """Compare one model's test results; the verdicts come from a paired bootstrap over the
    test images both prediction files hold (matched by image id and true artist)."""
    if new_metrics is None and base_metrics is None:
        raise ReportError(f"{model}: neither revision has metrics")
    old = dict(base_metrics.get("test", {})) if base_metrics is not None else {}
    new = dict(new_metrics.get("test", {})) if new_metrics is not None else {}
    if new_metrics is None:
        return ModelDiff(model, "removed", old=old)
    if base_metrics is None:
        return ModelDiff(model, "new", new=new)
    diff = ModelDiff(model, "compared", old=old, new=new)
    diff.same_inputs = same_inputs
    if base_predictions is None or new_predictions is None:
        side = "base" if base_predictions is None else "workspace"
        diff.note = f"the {side} has no per-image predictions: no paired verdict"
        return diff
    try:
        old_rows = _test_rows(pr.read(base_predictions))
        new_rows = _test_rows(pr.read(new_predictions))
    except pr.PredictionsError as exc:
        diff.note = f"no paired verdict: {exc}"
        return diff
    common = old_rows.index.intersection(new_rows.index).sort_values()
    same_label = (
        old_rows.loc[common, "label"].to_numpy() == new_rows.loc[common, "label"].to_numpy()
    )
    common = common[same_label]
    diff.common = int(common.size)
    if common.size == 0:
        diff.note = "no test image in common: no paired verdict"
        return diff
    truth = old_rows.loc[common, "label"].to_numpy()
    old_pred = old_rows.loc[common, "predicted"].to_numpy()
    new_pred = new_rows.loc[common, "predicted"].to_numpy()
    if np.array_equal(old_pred, new_pred):
        # every resample would score both sets the same: the interval is [0, 0] exactly
        values = metric_values(truth, new_pred)
        diff.comparisons = {
            m: Comparison(m, round(v, 6), round(v, 6), 0.0, 0.0, 0.0, "within noise")
            for m, v in zip(HEADLINE, values.tolist(), strict=True)
        }
    else:
        diff.comparisons = paired_comparison(
            truth, old_pred, new_pred, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    if common.size < max(len(old_rows), len(new_rows)):
        diff.note = (
            f"paired on the {common.size} test images both runs evaluated "
            f"(base {len(old_rows)}, workspace {len(new_rows)})"
        )
    return diff


def verdict_text(diff: ModelDiff, metric: str) -> str:
    if diff.status != "compared":
        return f"**{diff.status}**"
    comparison = diff.comparisons.get(metric)
    if comparison is None:
        return "n/a"
    if diff.same_inputs:
        return f"within noise {SAME_INPUTS}"
    if comparison.verdict == "within noise":
        return "within noise"
    return f"**{comparison.verdict}**"


# ------------------------------------------------------------------ plots


def _confusion_arrays(
    records: Sequence[Mapping[str, str]], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    actual = np.array([index[r["actual"]] for r in records], dtype=np.int64)
    predicted = np.array([index[r["predicted"]] for r in records], dtype=np.int64)
    return actual, predicted


def _classes_of(*record_sets: Sequence[Mapping[str, str]] | None) -> list[str]:
    names: set[str] = set()
    for records in record_sets:
        for r in records or []:
            names.update((r["actual"], r["predicted"]))
    return sorted(names)


def draw_confusion(
    records: Sequence[Mapping[str, str]], classes: Sequence[str], path: Path, title: str
) -> Path:
    from artist_id.evaluation import plot_confusion

    actual, predicted = _confusion_arrays(records, classes)
    plot_confusion(actual, predicted, classes, path, title=title)
    return md.save_image(path, path)


def draw_curves(tsvs: Mapping[str, bytes], folder: str, path: Path, title: str) -> Path | None:
    """Learning curves from dvclive's TSV files (as read from one revision)."""
    from artist_id.evaluation import plot_learning_curves, read_dvclive_history

    if not tsvs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in tsvs.items():
            # read_dvclive_history wants dvclive's layout: <dir>/plots/metrics/**/*.tsv
            target = Path(tmp) / "plots" / "metrics" / PurePosixPath(name).relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        history = read_dvclive_history(Path(tmp))
    plot_learning_curves(history, path, title=title)
    return md.save_image(path, path)


def image_plots(dvc_yaml: Mapping[str, Any] | None) -> list[str]:
    """The image files among ``dvc.yaml``'s top-level ``plots:`` (EDA, augmentation preview)."""
    found = []
    for entry in (dvc_yaml or {}).get("plots", []) or []:
        path = entry if isinstance(entry, str) else next(iter(entry), None)
        if isinstance(path, str) and path.lower().endswith((".png", ".jpg", ".jpeg", ".svg")):
            found.append(path)
    return found


# ------------------------------------------------------------------ the report


@dataclass
class Figure:
    """A changed plot: links (relative to the report) to the base's and the new image."""

    title: str
    base: str | None
    new: str | None
    note: str = ""


@dataclass
class Report:
    base: Revision
    head: Revision
    params: dict[str, tuple[Any, Any]]
    models: list[ModelDiff]
    base_board: dict[str, Any] | None
    new_board: dict[str, Any] | None
    figures: list[Figure]
    n_resamples: int
    confidence: float
    stale: list[str] = field(default_factory=list)
    environment_changed: bool = False


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return md.code(value)
    return md.code(json.dumps(value, ensure_ascii=False))


def _board_rows(board: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not board:
        return {}
    return {str(r["model"]): r for r in board.get("models", [])}


def _chosen(board: Mapping[str, Any] | None) -> str | None:
    models = (board or {}).get("models") or []
    return str(models[0]["model"]) if models else None


def _board_metric(board: Mapping[str, Any] | None) -> str:
    metric = str((board or {}).get("metric", "val/macro_f1"))
    return metric.split("/", 1)[-1]


def _names(models: Iterable[ModelDiff], status: str) -> str:
    return ", ".join(f"`{d.model}`" for d in models if d.status == status) or "none"


def _summary(report: Report) -> list[str]:
    base, head = report.base, report.head
    lines = [f"## Experiment report: {head.name} vs `{base.name}` (`{base.short}`)", ""]
    if report.stale:
        shown = ", ".join(f"`{s}`" for s in report.stale[:6])
        more = ", ..." if len(report.stale) > 6 else ""
        lines += [
            f"> **Warning:** the workspace's outputs are out of date for {len(report.stale)} "
            f"stage(s) ({shown}{more}): run `dvc repro` first.",
            "",
        ]
    old_best, new_best = _chosen(report.base_board), _chosen(report.new_board)
    if new_best is None:
        lines.append("**Chosen model:** none in the workspace (no leaderboard: run `dvc repro`).  ")
    elif old_best is None:
        lines.append(f"**Chosen model:** `{new_best}` (the base has no leaderboard).  ")
    elif old_best == new_best:
        lines.append(f"**Chosen model:** `{new_best}` (unchanged).  ")
    else:
        lines.append(f"**Chosen model changed:** `{old_best}` → `{new_best}`.  ")
    real = [
        f"`{d.model}`"
        for d in report.models
        if d.status == "compared"
        and not d.same_inputs
        and any(c.verdict != "within noise" for c in d.comparisons.values())
    ]
    lines += [
        f"**Changes beyond noise:** {', '.join(real) or 'none'}; "
        f"new models: {_names(report.models, 'new')}; "
        f"removed: {_names(report.models, 'removed')}.",
        "",
    ]
    return lines


def _params_section(report: Report) -> list[str]:
    lines = ["### Params", ""]
    if report.params:
        rows = [[md.code(k), _value(old), _value(new)] for k, (old, new) in report.params.items()]
        lines += md.table(["param", f"`{report.base.name}`", report.head.name], rows)
    else:
        lines.append("No params changed.")
    if report.environment_changed:
        files = ", ".join(f"`{f}`" for f in ENVIRONMENT)
        lines += ["", f"The pinned packages changed ({files}): every model may have moved."]
    return [*lines, ""]


def _metric_row(diff: ModelDiff, metric: str, first: bool) -> list[str]:
    comparison = diff.comparisons.get(metric)
    if comparison is not None:
        delta: float | None = comparison.delta
    elif diff.status == "compared":
        delta = md.number(diff.new.get(metric)) - md.number(diff.old.get(metric))
    else:
        delta = None
    return [
        md.code(diff.model) if first else "",
        METRIC_NAMES[metric],
        md.with_ci(diff.old.get(metric), diff.old.get(f"{metric}_ci")),
        md.with_ci(diff.new.get(metric), diff.new.get(f"{metric}_ci")),
        md.fmt_delta(delta),
        "" if comparison is None else f"[{comparison.low:+.3f}, {comparison.high:+.3f}]",
        verdict_text(diff, metric),
    ]


def _metrics_section(report: Report) -> list[str]:
    level = round(100 * report.confidence)
    lines = [
        "### Test metrics",
        "",
        f"Verdicts: a paired bootstrap ({report.n_resamples:,} resamples) over the test images "
        f"both runs evaluated; **better** or **worse** when the {level} % interval of the "
        "difference excludes 0, otherwise *within noise*. Values in brackets are each run's "
        f"own {level} % interval. A verdict covers which images happen to be in the test set, "
        "not training noise.",
        "",
    ]
    metrics = HEADLINE[::-1]  # macro-F1 first: the leaderboard's default
    rows = [_metric_row(d, m, i == 0) for d in report.models for i, m in enumerate(metrics)]
    header = ["model", "metric", f"`{report.base.name}`", report.head.name, "Δ"]
    lines += md.table([*header, f"{level} % CI of Δ", "verdict"], rows, "llrrrrl")
    notes = [f"- `{d.model}`: {d.note}" for d in report.models if d.note]
    same = ", ".join(f"`{d.model}`" for d in report.models if d.same_inputs)
    if same:
        notes.append(
            f"- {SAME_INPUTS} {same}: the same params, code, source data and package pins as "
            "the base all along the pipeline, so any difference is run-to-run variation (models "
            "trained from scratch are not bit-reproducible across CPUs), never a change."
        )
    return [*lines, *([""] if notes else []), *notes, ""]


def _leaderboard_section(report: Report) -> list[str]:
    base, head = report.base, report.head
    metric = _board_metric(report.new_board or report.base_board)
    name = METRIC_NAMES.get(metric, metric)
    old_rows, new_rows = _board_rows(report.base_board), _board_rows(report.new_board)
    rows = []
    for model in [*new_rows, *(m for m in old_rows if m not in new_rows)]:
        old, new = old_rows.get(model, {}), new_rows.get(model, {})
        old_val, new_val = old.get("val", {}), new.get("val", {})
        rows.append(
            [
                md.code(model),
                str(old.get("rank", "–")),
                str(new.get("rank", "–")),
                md.with_ci(old_val.get(metric), old_val.get(f"{metric}_ci")),
                md.with_ci(new_val.get(metric), new_val.get(f"{metric}_ci")),
            ]
        )
    header = [
        "model",
        f"rank `{base.name}`",
        f"rank {head.name}",
        f"val {name} `{base.name}`",
        f"val {name} {head.name}",
    ]
    lines = ["### Leaderboard (validation)", "", *md.table(header, rows, "lrrrr")]
    board = report.new_board or {}
    sentence = overlap_sentence(board.get("models") or [], _board_metric(board))
    return [*lines, *(["", sentence] if sentence else []), ""]


def _plots_section(report: Report, images: bool, run_url: str | None) -> list[str]:
    lines = ["### Changed plots", ""]
    if not report.figures:
        return [*lines, "No plot changed.", ""]
    if not images:
        where = f"[this workflow run]({run_url})" if run_url else "this workflow run"
        titles = ", ".join(f.title for f in report.figures)
        return [
            *lines,
            f"{len(report.figures)} changed plot(s), old and new side by side, are in the "
            f"`pr-report` artifact of {where} (`report.md`): {titles}.",
            "",
        ]
    for fig in report.figures:
        cells = [
            "*(not available)*" if link is None else md.image(fig.title.replace("`", ""), link)
            for link in (fig.base, fig.new)
        ]
        lines += [f"#### {fig.title}", ""]
        lines += md.table([f"`{report.base.name}`", report.head.name], [cells])
        lines += [*(["", fig.note] if fig.note else []), ""]
    return lines


def render(report: Report, *, images: bool = True, run_url: str | None = None) -> str:
    """The Markdown report. ``images=False`` replaces the images by a pointer to the
    workflow run (for a PR comment that uploads no image anywhere)."""
    lines = [
        *_summary(report),
        *_params_section(report),
        *_metrics_section(report),
        *_leaderboard_section(report),
        *_plots_section(report, images, run_url),
    ]
    return "\n".join(lines).rstrip() + "\n"


def read_metrics(rev: Revision, model: str) -> dict[str, Any] | None:
    """``{"val": {...}, "test": {...}}`` of a model at a revision, or None if not evaluated.

    ``details.json`` holds every number (the metrics convention); older revisions had them in
    ``metrics.json``, at its top level or under the model's name.
    """
    details = rev.json(f"{EVALUATE}/{model}/details.json")
    if isinstance(details, dict) and "test" in details:
        return details
    metrics = rev.json(f"{EVALUATE}/{model}/metrics.json")
    if isinstance(metrics, dict) and isinstance(metrics.get(model), dict):
        metrics = metrics[model]
    return metrics if isinstance(metrics, dict) and "test" in metrics else None


def _predictions_path(model: str) -> str:
    return f"{EVALUATE}/{model}/predictions.csv"


def _models(rev: Revision) -> list[str]:
    params = rev.yaml("params.yaml") or {}
    names = list((params.get("train") or {}).get("models") or [])
    for path in rev.files(EVALUATE):  # models evaluated but no longer listed
        parts = PurePosixPath(path).parts
        if len(parts) == 4 and parts[3] == "metrics.json" and parts[2] not in names:
            names.append(parts[2])
    return names


def build(
    root: Path,
    base_rev: str,
    *,
    out: Path = OUT,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    check_status: bool = True,
) -> Report:
    """Compare the workspace at ``root`` with ``base_rev``; write figures under ``out``."""
    root = Path(root)
    if not (root / "dvc.yaml").is_file():
        raise ReportError(f"{root} has no dvc.yaml: run from the repository root")
    base = Revision(root, resolve(root, base_rev), base_rev)
    head = Revision(root, None, "workspace")

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    base_lock, head_lock = base.yaml("dvc.lock") or {}, head.yaml("dvc.lock") or {}
    environment_changed = any(base.read(f) != head.read(f) for f in ENVIRONMENT)

    names = _models(head) + [m for m in _models(base) if m not in _models(head)]
    diffs: list[ModelDiff] = []
    figures: list[Figure] = []
    for model in names:
        old_m, new_m = read_metrics(base, model), read_metrics(head, model)
        if old_m is None and new_m is None:
            diffs.append(ModelDiff(model, "not evaluated", note="no metrics on either side"))
            continue
        stage = f"evaluate@{model}"
        old_lineage, new_lineage = lineage(base_lock, stage), lineage(head_lock, stage)
        same = old_lineage is not None and old_lineage == new_lineage and not environment_changed
        diff = compare_model(
            model,
            old_m,
            new_m,
            base.read(_predictions_path(model)),
            head.read(_predictions_path(model)),
            same_inputs=same,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        diffs.append(diff)
        if diff.status != "removed":
            figures += _model_figures(model, base, head, fig_dir)
    figures += _image_figures(base, head, fig_dir)

    return Report(
        base=base,
        head=head,
        params=params_diff(root, base.rev or base_rev),
        models=diffs,
        base_board=base.json(LEADERBOARD),
        new_board=head.json(LEADERBOARD),
        figures=figures,
        n_resamples=n_resamples,
        confidence=confidence,
        stale=stale_stages(root) if check_status else [],
        environment_changed=environment_changed,
    )


def _link(path: Path | None) -> str | None:
    """The link to a figure from ``report.md`` (figures sit in its ``figures/`` folder)."""
    return None if path is None else f"figures/{path.name}"


def _model_figures(model: str, base: Revision, head: Revision, fig_dir: Path) -> list[Figure]:
    """The model's confusion matrix and learning curves, when their data changed."""
    out: list[Figure] = []
    confusion = f"{EVALUATE}/{model}/confusion.json"
    old_c, new_c = base.json(confusion), head.json(confusion)
    if new_c is not None and old_c != new_c:
        classes = _classes_of(old_c, new_c)
        title = f"{model}: test confusion matrix"
        old_png = (
            draw_confusion(
                old_c, classes, fig_dir / f"{model}-confusion-base.png", f"{title} ({base.short})"
            )
            if old_c
            else None
        )
        new_png = draw_confusion(
            new_c, classes, fig_dir / f"{model}-confusion-new.png", f"{title} (workspace)"
        )
        out.append(Figure(f"`{model}`: test confusion matrix", _link(old_png), _link(new_png)))
    folder = f"{TRAIN}/{model}/plots/metrics"
    old_t = {p: base.read(p) or b"" for p in base.files(folder) if p.endswith(".tsv")}
    new_t = {p: head.read(p) or b"" for p in head.files(folder) if p.endswith(".tsv")}
    if new_t and old_t != new_t:
        title = f"{model}: learning curves"
        old_curves = draw_curves(
            old_t, folder, fig_dir / f"{model}-curves-base.png", f"{title} ({base.short})"
        )
        new_curves = draw_curves(
            new_t, folder, fig_dir / f"{model}-curves-new.png", f"{title} (workspace)"
        )
        out.append(Figure(f"`{model}`: learning curves", _link(old_curves), _link(new_curves)))
    return out


def _slug(path: str) -> str:
    return PurePosixPath(path).with_suffix("").as_posix().replace("/", "-")


def _image_figures(base: Revision, head: Revision, fig_dir: Path) -> list[Figure]:
    """The image plots of ``dvc.yaml`` whose bytes changed."""
    out = []
    for path in image_plots(head.yaml("dvc.yaml")):
        new = head.read(path)
        if new is None:
            continue
        old = base.output(path)
        if old == new or (old is None and not _output_changed(base, head, path)):
            continue  # same bytes, or the base is not at hand and dvc.lock says it is the same
        old_png = md.save_image(old, fig_dir / f"{_slug(path)}-base.png") if old else None
        new_png = md.save_image(new, fig_dir / f"{_slug(path)}-new.png")
        note = "" if old else "The base's copy is DVC-cached and not in this machine's DVC cache."
        out.append(Figure(f"`{path}`", _link(old_png), _link(new_png), note))
    return out


def _lock_hash(lock: Mapping[str, Any], path: str) -> Any:
    for entry in (lock.get("stages") or {}).values():
        for o in entry.get("outs", []):
            if _inside(path, str(o["path"])):
                return (o["path"], o.get("md5"))
    return None


def _output_changed(base: Revision, head: Revision, path: str) -> bool:
    old = _lock_hash(base.yaml("dvc.lock") or {}, path)
    return old is None or old != _lock_hash(head.yaml("dvc.lock") or {}, path)


def write(report: Report, out: Path = OUT, run_url: str | None = None) -> Path:
    """Write ``report.md`` (with images) and ``comment.md`` (images as a pointer)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render(report), encoding="utf-8")
    (out / "comment.md").write_text(render(report, images=False, run_url=run_url), encoding="utf-8")
    return out / "report.md"


def _fresh(out: Path) -> None:
    import shutil

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m artist_id.report",
        description="Compare the workspace's experiment with another git revision.",
    )
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    parser.add_argument("--run-url", default=None, help="link for the images in comment.md")
    parser.add_argument("--no-status", action="store_true", help="skip the `dvc status` check")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("artist_id").setLevel(logging.INFO)
    try:
        from artist_id.config import ConfigError, load_params

        params = load_params()
        _fresh(args.out)
        report = build(
            Path.cwd(),
            args.base,
            out=args.out,
            n_resamples=params.evaluate.bootstrap_resamples,
            confidence=params.evaluate.confidence,
            seed=params.base.seed,
            check_status=not args.no_status,
        )
        path = write(report, args.out, run_url=args.run_url)
    except (ReportError, ConfigError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    verdicts = {
        d.model: {m: verdict_text(d, m).strip("*") for m in HEADLINE} for d in report.models
    }
    log.info(
        "report: %s vs %s -> %s\n%s",
        report.head.name,
        report.base.label,
        path,
        json.dumps(verdicts, indent=1),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
