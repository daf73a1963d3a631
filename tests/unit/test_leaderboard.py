"""Ranking by a validation metric and the Markdown leaderboard."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artist_id import leaderboard as lb


def _row(
    model: str,
    val_f1: float,
    *,
    test_f1: float = 0.5,
    params: int = 1000,
    val_bal: float = 0.5,
    val_acc: float = 0.5,
    val_loss: float = 1.0,
) -> dict[str, Any]:
    return {
        "model": model,
        "val": {
            "macro_f1": val_f1,
            "balanced_accuracy": val_bal,
            "accuracy": val_acc,
            "log_loss": val_loss,
        },
        "test": {
            "macro_f1": test_f1,
            "balanced_accuracy": 0.5,
            "accuracy": 0.6,
            "majority_baseline": {"class": "Ada Brush", "macro_f1": 0.2},
        },
        "params": params,
        "train_seconds": 12.5,
    }


def _order(ranked: list[dict[str, Any]]) -> list[str]:
    return [r["model"] for r in ranked]


def test_rank_by_validation_not_test() -> None:
    rows = [
        _row("cnn_small", 0.6, test_f1=0.9),
        _row("vgg16", 0.8, test_f1=0.1),
        _row("resnet50", 0.7, test_f1=0.5),
    ]
    ranked = lb.rank_models(rows, "macro_f1")
    assert _order(ranked) == ["vgg16", "resnet50", "cnn_small"]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert "rank" not in rows[0]  # inputs are not modified


def test_rank_tie_breaks() -> None:
    rows = [_row("b", 0.7, val_bal=0.6), _row("a", 0.7, val_bal=0.65)]
    assert _order(lb.rank_models(rows, "macro_f1")) == ["a", "b"]
    rows = [_row("a", 0.7, val_acc=0.5), _row("b", 0.7, val_acc=0.55)]
    assert _order(lb.rank_models(rows, "macro_f1")) == ["b", "a"]
    rows = [_row("a", 0.7, val_loss=0.9), _row("b", 0.7, val_loss=0.8)]
    assert _order(lb.rank_models(rows, "macro_f1")) == ["b", "a"]
    rows = [_row("a", 0.7, params=2_000), _row("b", 0.7, params=1_000)]
    assert _order(lb.rank_models(rows, "macro_f1")) == ["b", "a"]
    rows = [_row("zeta", 0.7), _row("alpha", 0.7)]
    assert _order(lb.rank_models(rows, "macro_f1")) == ["alpha", "zeta"]


def test_rank_log_loss_is_ascending_and_missing_metric_fails() -> None:
    rows = [_row("a", 0.7, val_loss=0.9), _row("b", 0.6, val_loss=0.4)]
    assert _order(lb.rank_models(rows, "log_loss")) == ["b", "a"]
    with pytest.raises(ValueError, match="top2_accuracy"):
        lb.rank_models(rows, "top2_accuracy")
    with pytest.raises(ValueError, match="unique"):
        lb.rank_models([_row("a", 0.1), _row("a", 0.2)], "macro_f1")


_score = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])  # few values: many ties


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(2, 6))
def test_test_metrics_never_change_the_ranking(data: st.DataObject, n: int) -> None:
    rows = [
        _row(
            f"m{i}",
            data.draw(_score),
            val_bal=data.draw(_score),
            val_acc=data.draw(_score),
            val_loss=data.draw(_score),
            params=data.draw(st.sampled_from([10, 20])),
            test_f1=data.draw(_score),
        )
        for i in range(n)
    ]
    before = _order(lb.rank_models(rows, "macro_f1"))
    tests = [r["test"] for r in rows]
    perm = data.draw(st.permutations(range(n)))
    shuffled = [{**r, "test": tests[j]} for r, j in zip(rows, perm, strict=True)]
    assert _order(lb.rank_models(shuffled, "macro_f1")) == before
    order_in = data.draw(st.permutations(range(n)))  # nor does the input order
    assert _order(lb.rank_models([rows[j] for j in order_in], "macro_f1")) == before


def test_leaderboard_markdown_names_the_best_model() -> None:
    rows = [_row("cnn_small", 0.6, params=1_234_567), _row("vgg16", 0.8, test_f1=0.62)]
    md = lb.leaderboard_markdown(lb.rank_models(rows, "macro_f1"), "macro_f1")
    assert "Best model: **`vgg16`**, chosen by validation macro_f1 (0.8000)" in md
    assert "it beats it by 0.4200" in md  # 0.62 - 0.2
    assert "1,234,567" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, separator, two models
    assert table[2].startswith("| 1 | `vgg16` |")
    assert len({line.count("|") for line in table}) == 1  # same column count everywhere
    low = lb.rank_models([_row("cnn_small", 0.6, test_f1=0.15)], "macro_f1")
    assert "does NOT beat it (short by 0.0500)" in lb.leaderboard_markdown(low, "macro_f1")


# ------------------------------------------------------------------ intervals


def _with_ci(row: dict[str, Any], val: tuple[float, float], test: tuple[float, float]) -> dict:
    row["val"]["macro_f1_ci"] = list(val)
    row["test"]["macro_f1_ci"] = list(test)
    return row


def test_markdown_shows_intervals_next_to_values() -> None:
    ranked = lb.rank_models([_with_ci(_row("vgg16", 0.8), (0.61, 0.93), (0.4, 0.6))], "macro_f1")
    text = lb.leaderboard_markdown(ranked, "macro_f1")
    assert "| 0.800 [0.61, 0.93] |" in text  # val macro-F1
    assert "| 0.500 [0.40, 0.60] |" in text  # test macro-F1
    assert "| 0.5000 |" in text  # no interval: the value alone, as before


def test_overlapping_top_two_are_called_indistinguishable() -> None:
    rows = [
        _with_ci(_row("vgg16", 0.8), (0.6, 0.9), (0.4, 0.6)),
        _with_ci(_row("cnn", 0.7), (0.5, 0.85), (0.4, 0.6)),
        _with_ci(_row("tiny", 0.1), (0.0, 0.2), (0.0, 0.2)),
    ]
    ranked = lb.rank_models(rows, "macro_f1")
    sentence = lb.overlap_sentence(ranked, "macro_f1")
    assert (
        sentence is not None and "overlap (`vgg16` [0.60, 0.90] and `cnn` [0.50, 0.85])" in sentence
    )
    assert "cannot tell them apart" in sentence
    assert sentence in lb.leaderboard_markdown(ranked, "macro_f1")


def test_separated_top_two_are_said_to_be_separated() -> None:
    rows = [
        _with_ci(_row("vgg16", 0.95), (0.9, 1.0), (0.4, 0.6)),
        _with_ci(_row("cnn", 0.5), (0.3, 0.7), (0.4, 0.6)),
    ]
    sentence = lb.overlap_sentence(lb.rank_models(rows, "macro_f1"), "macro_f1")
    assert sentence is not None and "do not overlap" in sentence


def test_no_overlap_sentence_without_intervals_or_a_second_model() -> None:
    assert (
        lb.overlap_sentence(
            lb.rank_models([_row("a", 0.5), _row("b", 0.4)], "macro_f1"), "macro_f1"
        )
        is None
    )
    one = lb.rank_models([_with_ci(_row("a", 0.5), (0.4, 0.6), (0.4, 0.6))], "macro_f1")
    assert lb.overlap_sentence(one, "macro_f1") is None
