"""The metrics and plots convention of dvc.yaml (see the comment at its top), for every stage.

Metrics are what a reviewer compares across runs, so `dvc exp show`, `dvc metrics show` and
`dvc metrics diff` stay readable: each metrics file is JSON with one top-level key (the
stage's name or its matrix item), so every metric name is unique and `dvc exp show` needs no
file path in its headers; at most MAX_SCALARS numbers, no strings, no per-class breakdowns;
`cache: false` so git keeps them. Plots are `cache: false` data DVC's templates draw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

MAX_SCALARS = 12  # per metrics file: e.g. 4 metrics x (val, test) + room for one more pair
MAX_DEPTH = 3  # <stage or item>.<split>.<metric>
PLOT_SUFFIXES = {".json", ".csv", ".tsv", ".png", ".jpg", ".jpeg", ".svg", ""}  # "" = a dir


def stages() -> list[Any]:
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return list(repo.index.stages)


STAGES = stages()
METRICS = [(s, o) for s in STAGES for o in s.outs if o.metric]
PLOTS = [(s, o) for s in STAGES for o in s.outs if o.plot]


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaves(sub, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def rel(out: Any) -> str:
    return Path(str(out.fs_path)).resolve().relative_to(REPO).as_posix()


def test_there_are_metrics_and_plots_to_check() -> None:
    assert len(METRICS) >= 7 and len(PLOTS) >= 10


@pytest.mark.parametrize(("stage", "out"), METRICS, ids=lambda x: getattr(x, "addressing", ""))
def test_metrics_file_follows_the_convention(stage: Any, out: Any) -> None:
    path = rel(out)
    assert not out.use_cache, f"{path}: metrics are `cache: false` (git keeps them for diffs)"
    assert path.endswith(".json"), f"{path}: metrics files are JSON"
    data = json.loads((REPO / path).read_text(encoding="utf-8"))
    name, _, item = stage.name.partition("@")
    assert isinstance(data, dict) and len(data) == 1, f"{path}: one top-level key"
    (key,) = data
    assert key in {name, item} - {""}, f"{path}: top-level key {key!r}, expected {name!r}/{item!r}"
    scalars = []
    for dotted, value in leaves(data):
        if isinstance(value, list):  # intervals such as macro_f1_ci: [lo, hi]; DVC skips lists
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in value), (
                f"{path}: {dotted} is a list of non-numbers"
            )
            continue
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{path}: {dotted} = {value!r}; metrics are numbers (strings go to a report)"
        )
        assert dotted.count(".") < MAX_DEPTH, f"{path}: {dotted} nests too deep (per-class?)"
        scalars.append(dotted)
    assert 1 <= len(scalars) <= MAX_SCALARS, (
        f"{path}: {len(scalars)} numbers; at most {MAX_SCALARS} are metrics, "
        "put the rest in a plain report (details.json)"
    )


def test_metric_names_are_unique_across_files() -> None:
    seen: dict[str, str] = {}
    for _, out in METRICS:
        path = rel(out)
        for dotted, _ in leaves(json.loads((REPO / path).read_text(encoding="utf-8"))):
            assert dotted not in seen, f"{dotted} in both {seen[dotted]} and {path}"
            seen[dotted] = path


def test_per_class_detail_is_not_a_metric() -> None:
    for _, out in METRICS:
        text = (REPO / rel(out)).read_text(encoding="utf-8")
        for word in ("per_class", "per_artist", "majority_baseline", "support"):
            assert word not in text, f"{rel(out)} holds {word}: move it to details.json"


@pytest.mark.parametrize(("stage", "out"), PLOTS, ids=lambda x: getattr(x, "addressing", ""))
def test_plot_outputs_are_small_and_in_git(stage: Any, out: Any) -> None:
    path = rel(out)
    assert not out.use_cache, f"{path}: plot data are `cache: false`"
    assert Path(path).suffix in PLOT_SUFFIXES, f"{path}: DVC cannot draw this"
