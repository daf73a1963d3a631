"""Bootstrap intervals and paired comparisons on hand-made predictions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from dvclive import Live

from artist_id import evaluation as ev
from artist_id import uncertainty as u

N = 200  # resamples: enough for the bounds checked here, cheap on two cores


def _twenty_with_five_wrong() -> tuple[np.ndarray, np.ndarray]:
    y = np.array([0, 1] * 10)
    pred = y.copy()
    pred[[0, 3, 6, 9, 12]] = 1 - pred[[0, 3, 6, 9, 12]]  # 15 of 20 right
    return y, pred


def test_a_perfect_classifier_has_the_interval_1_1() -> None:
    y = np.array([0, 1, 2] * 10)
    intervals = u.bootstrap_intervals(y, y, n_resamples=N, seed=1)
    assert intervals == {
        "accuracy": (1.0, 1.0),
        "balanced_accuracy": (1.0, 1.0),
        "macro_f1": (1.0, 1.0),
    }


def test_the_interval_covers_the_value_with_a_binomial_width() -> None:
    y, pred = _twenty_with_five_wrong()
    lo, hi = u.bootstrap_intervals(y, pred, metrics=["accuracy"], n_resamples=N, seed=3)["accuracy"]
    # accuracy 15/20 = 0.75; a resample's accuracy is Binomial(20, 0.75) / 20, whose 2.5 % and
    # 97.5 % quantiles are 11/20 and 19/20 (normal approximation: 0.75 ± 1.96·0.097)
    assert lo < 0.75 < hi
    assert 0.5 <= lo <= 0.65 and 0.85 <= hi <= 0.95


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    y, pred = _twenty_with_five_wrong()
    a = u.bootstrap_intervals(y, pred, metrics=["macro_f1"], n_resamples=N, seed=7)
    b = u.bootstrap_intervals(y, pred, metrics=["macro_f1"], n_resamples=N, seed=7)
    c = u.bootstrap_intervals(y, pred, metrics=["macro_f1"], n_resamples=N, seed=8)
    assert a == b
    assert a != c


def test_metric_values_match_the_evaluation_metrics() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    proba = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    expected = ev.classification_metrics(y, proba, ["a", "b", "c"])
    values = u.metric_values(y, proba.argmax(axis=1))
    assert values.tolist() == pytest.approx([expected[m] for m in u.HEADLINE], abs=1e-6)


def test_names_work_like_indices() -> None:
    y, pred = _twenty_with_five_wrong()
    names = np.array(["Ada", "Bea"])
    by_name = u.bootstrap_intervals(
        names[y], names[pred], metrics=["macro_f1"], n_resamples=N, seed=2
    )
    assert by_name == u.bootstrap_intervals(y, pred, metrics=["macro_f1"], n_resamples=N, seed=2)


def test_paired_bootstrap_on_identical_predictions_is_within_noise() -> None:
    y, pred = _twenty_with_five_wrong()
    result = u.paired_comparison(y, pred, pred, n_resamples=N, seed=0)
    for c in result.values():
        assert (c.delta, c.low, c.high, c.verdict) == (0.0, 0.0, 0.0, "within noise")


def test_paired_bootstrap_sees_a_large_gain_and_a_large_loss() -> None:
    y = np.array([0, 1] * 20)
    half_wrong = y.copy()
    half_wrong[::2] = 1 - half_wrong[::2]  # accuracy 0.5
    better = u.paired_comparison(y, half_wrong, y, n_resamples=N, seed=0)
    assert better["accuracy"].delta == pytest.approx(0.5)
    assert {c.verdict for c in better.values()} == {"better"}
    worse = u.paired_comparison(y, y, half_wrong, n_resamples=N, seed=0)
    assert {c.verdict for c in worse.values()} == {"worse"}


def test_one_image_of_38_is_within_noise() -> None:
    y = np.array([0, 1] * 19)
    old = y.copy()
    old[:8] = 1 - old[:8]  # 30 of 38 right
    new = old.copy()
    new[0] = y[0]  # one more right: +1/38 accuracy
    result = u.paired_comparison(y, old, new, n_resamples=N, seed=0)
    assert result["accuracy"].delta == pytest.approx(1 / 38, abs=1e-6)
    assert result["accuracy"].low == 0.0  # half the resamples miss the one changed image
    assert {c.verdict for c in result.values()} == {"within noise"}


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.01, 0.2, "better"),
        (-0.2, -0.01, "worse"),
        (-0.1, 0.1, "within noise"),
        (0, 0.3, "within noise"),
    ],
)
def test_verdict_needs_the_interval_to_clear_zero(low: float, high: float, expected: str) -> None:
    assert u.verdict(low, high) == expected


def test_mismatched_or_empty_inputs_are_errors() -> None:
    with pytest.raises(u.UncertaintyError, match="length"):
        u.bootstrap_intervals([0, 1], [0])
    with pytest.raises(u.UncertaintyError, match="no images"):
        u.bootstrap_intervals([], [])
    with pytest.raises(u.UncertaintyError, match="metrics must be"):
        u.bootstrap_intervals([0, 1], [0, 1], metrics=["log_loss"])
    with pytest.raises(u.UncertaintyError, match="confidence"):
        u.bootstrap_intervals([0, 1], [0, 1], confidence=1.0)


def test_a_single_image_gives_a_point_interval() -> None:
    assert u.bootstrap_intervals(["a"], ["b"], metrics=["accuracy"]) == {"accuracy": (0.0, 0.0)}


def test_overlap() -> None:
    assert u.overlap([0.1, 0.5], [0.5, 0.9])
    assert u.overlap([0.1, 0.9], [0.3, 0.4])
    assert not u.overlap([0.1, 0.4], [0.5, 0.9])


def test_intervals_sit_next_to_the_point_values_in_metrics_json(tmp_path: Path) -> None:
    live = Live(dir=str(tmp_path), save_dvc_exp=False, dvcyaml=None)
    ev.log_metrics(live, {"accuracy": 0.75, "macro_f1": 0.7}, "test")
    ev.log_intervals(live, {"macro_f1": (0.5, 0.9), "accuracy": (0.55, 0.95)}, "test")
    live.end()
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == {
        "test": {
            "accuracy": 0.75,
            "macro_f1": 0.7,
            "accuracy_ci": [0.55, 0.95],
            "macro_f1_ci": [0.5, 0.9],
        }
    }


def test_the_batched_metrics_are_scikit_learns() -> None:
    """The vectorised statistic the bootstrap uses equals sklearn on every resample, also
    when a resample misses a class or holds one only among the predictions."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from artist_id.uncertainty import batch_metric_values

    rng = np.random.default_rng(5)
    t = rng.integers(0, 4, size=(300, 12))
    p = np.where(rng.random((300, 12)) < 0.6, t, rng.integers(0, 4, size=(300, 12)))
    t[:20] = 0  # one class only in the truth; others only among the predictions
    got = batch_metric_values(t, p, ("accuracy", "balanced_accuracy", "macro_f1"))
    assert got.shape == (3, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(300):
            expected = (
                accuracy_score(t[i], p[i]),
                balanced_accuracy_score(t[i], p[i]),
                f1_score(t[i], p[i], average="macro", zero_division=0),
            )
            np.testing.assert_allclose(got[:, i], expected, rtol=0, atol=1e-12)
