"""The ``leaderboard`` stage's library: models ranked by a *validation* metric.

Test metrics are shown, never used to choose (that would leak the test set into model
selection). :func:`rank_models` orders the rows, :func:`leaderboard_markdown` renders them
with the evaluate stage's bootstrap intervals, and :func:`overlap_sentence` says whether the
validation set can tell the top two apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LOWER_IS_BETTER = frozenset({"log_loss"})


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return math.nan
    return float(value)


def _higher_first(value: Any) -> float:
    x = _number(value)
    return math.inf if math.isnan(x) else -x  # missing or NaN ranks last


def _lower_first(value: Any) -> float:
    x = _number(value)
    return math.inf if math.isnan(x) else x


def rank_models(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows sorted by validation ``metric`` (best first) with a 1-based ``rank`` added.

    Test metrics never enter the order. Ties: higher val balanced accuracy, higher val
    accuracy, lower val log loss, fewer parameters, then model name. ``log_loss`` as the
    metric sorts ascending. A NaN metric ranks last.
    """
    names = [str(r.get("model", "")) for r in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    for row in rows:
        val = row.get("val")
        if not isinstance(val, Mapping) or metric not in val:
            raise ValueError(
                f"model {row.get('model')!r} has no validation {metric!r} "
                f"(val keys: {sorted(val) if isinstance(val, Mapping) else val})"
            )
    primary = _lower_first if metric in LOWER_IS_BETTER else _higher_first

    def key(row: dict[str, Any]) -> tuple[float, float, float, float, float, str]:
        val = row["val"]
        params = _number(row.get("params"))
        return (
            primary(val[metric]),
            _higher_first(val.get("balanced_accuracy")),
            _higher_first(val.get("accuracy")),
            _lower_first(val.get("log_loss")),
            math.inf if math.isnan(params) else params,
            str(row.get("model", "")),
        )

    return [{**row, "rank": i} for i, row in enumerate(sorted(rows, key=key), start=1)]


def _fmt(value: Any, spec: str = ".4f") -> str:
    x = _number(value)
    return "–" if math.isnan(x) else format(x, spec)


def _get(row: Mapping[str, Any], *keys: str) -> Any:
    value: Any = row
    for k in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(k)
    return value


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = _number(value[0]), _number(value[1])
        if not (math.isnan(lo) or math.isnan(hi)):
            return lo, hi
    return None


def _cell(row: Mapping[str, Any], path: tuple[str, ...], spec: str) -> str:
    """The value, and its interval when metrics.json has one (``<metric>_ci``)."""
    text = _fmt(_get(row, *path), spec)
    ci = _interval(_get(row, *path[:-1], f"{path[-1]}_ci")) if path else None
    if ci is None or text == "–":
        return text
    return f"{_fmt(_get(row, *path), '.3f')} [{ci[0]:.2f}, {ci[1]:.2f}]"


_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("val macro-F1", ("val", "macro_f1"), ".4f"),
    ("val balanced acc.", ("val", "balanced_accuracy"), ".4f"),
    ("val accuracy", ("val", "accuracy"), ".4f"),
    ("test macro-F1", ("test", "macro_f1"), ".4f"),
    ("test balanced acc.", ("test", "balanced_accuracy"), ".4f"),
    ("test accuracy", ("test", "accuracy"), ".4f"),
    ("majority baseline test macro-F1", ("test", "majority_baseline", "macro_f1"), ".4f"),
    ("parameters", ("params",), ",.0f"),
    ("training s", ("train_seconds",), ",.1f"),
)


def leaderboard_markdown(ranked: Sequence[dict[str, Any]], metric: str) -> str:
    """A markdown leaderboard of :func:`rank_models` output plus a line on the chosen model."""
    if not ranked:
        raise ValueError("no models to put on the leaderboard")
    columns = list(_COLUMNS)
    if metric not in {"macro_f1", "balanced_accuracy", "accuracy"}:
        columns.insert(0, (f"val {metric}", ("val", metric), ".4f"))
    header = ["rank", "model", *(c[0] for c in columns)]
    lines = [
        "# Leaderboard",
        "",
        f"Models ranked by validation `{metric}` "
        f"({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better); "
        "test metrics are reported, never used to choose. Brackets: 95 % bootstrap "
        "intervals over the images of the split (the evaluate stage's `<metric>_ci`).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", "---"] + ["---:"] * len(columns)) + "|",
    ]
    for row in ranked:
        model = str(row.get("model", "")).replace("|", "\\|")
        cells = [str(row.get("rank", "")), f"`{model}`"]
        cells += [_cell(row, path, spec) for _, path, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")

    best = ranked[0]
    lines += [
        "",
        f"Best model: **`{best.get('model')}`**, chosen by validation {metric} "
        f"({_fmt(_get(best, 'val', metric))}).",
    ]
    test_f1 = _number(_get(best, "test", "macro_f1"))
    base_f1 = _number(_get(best, "test", "majority_baseline", "macro_f1"))
    base_class = _get(best, "test", "majority_baseline", "class")
    if math.isnan(test_f1) or math.isnan(base_f1):
        lines.append("No test macro-F1 or majority baseline to compare with.")
    else:
        always = f" (always `{base_class}`)" if base_class else ""
        gap = test_f1 - base_f1
        verdict = f"beats it by {gap:.4f}" if gap > 0 else f"does NOT beat it (short by {-gap:.4f})"
        lines.append(
            f"On test its macro-F1 is {test_f1:.4f} against {base_f1:.4f} for the "
            f"majority baseline{always}: it {verdict}."
        )
    sentence = overlap_sentence(ranked, metric)
    if sentence:
        lines += ["", sentence]
    return "\n".join(lines) + "\n"


def overlap_sentence(ranked: Sequence[Mapping[str, Any]], metric: str) -> str | None:
    """Whether the top two models' validation intervals of ``metric`` overlap, in words;
    None when there is no second model or no interval."""
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    a = _interval(_get(first, "val", f"{metric}_ci"))
    b = _interval(_get(second, "val", f"{metric}_ci"))
    if a is None or b is None:
        return None
    pair = (
        f"`{first.get('model')}` [{a[0]:.2f}, {a[1]:.2f}] and "
        f"`{second.get('model')}` [{b[0]:.2f}, {b[1]:.2f}]"
    )
    what = f"The top two models' validation {metric} intervals"
    if max(a[0], b[0]) <= min(a[1], b[1]):
        return (
            f"{what} overlap ({pair}): the validation set cannot tell them apart, the choice "
            "rests on the tie-breaks; a larger validation set (or cross-validation) would."
        )
    return f"{what} do not overlap ({pair}): the validation set separates them."


HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


def best_record(ranked: Sequence[dict[str, Any]], metric: str, path: Path) -> dict[str, Any]:
    """``models/best.json``: the chosen model, where its copy is, and its headline metrics."""
    best = ranked[0]
    return {
        "model": best["model"],
        "path": path.as_posix(),
        "chosen_by": f"val/{metric}",
        "val": {k: best["val"][k] for k in HEADLINE},
        "test": {k: best["test"][k] for k in HEADLINE},
    }
