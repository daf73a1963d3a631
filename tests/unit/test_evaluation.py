"""Metrics, dvclive logging, plots and the leaderboard, on small hand-made inputs.

Expected numbers are worked out by hand in the comments, not by calling sklearn again.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from dvclive import Live
from PIL import Image

from artist_id import evaluation as ev

CLASSES = ["Ada Brush", "Bea Stroke", "Cy Palette"]

# Six samples, three classes. Predictions (argmax): 0, 0, 1, 1, 2, 2.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBA = np.array(
    [
        [0.8, 0.1, 0.1],  # 0 -> 0 right
        [0.6, 0.3, 0.1],  # 0 -> 0 right
        [0.2, 0.7, 0.1],  # 0 -> 1 wrong; true class 2nd -> top-2 hit
        [0.1, 0.8, 0.1],  # 1 -> 1 right
        [0.3, 0.2, 0.5],  # 1 -> 2 wrong; true class 3rd -> top-2 miss
        [0.1, 0.2, 0.7],  # 2 -> 2 right
    ]
)
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def _close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------ metrics


def test_metrics_on_six_samples() -> None:
    m = ev.classification_metrics(Y_TRUE, PROBA, CLASSES)
    _close(m["accuracy"], 4 / 6)
    # recall: Ada 2/3, Bea 1/2, Cy 1/1
    _close(m["balanced_accuracy"], (2 / 3 + 1 / 2 + 1) / 3)
    # precision: Ada 2/2, Bea 1/2, Cy 1/2 -> F1: 4/5, 1/2, 2/3
    _close(m["macro_f1"], (4 / 5 + 1 / 2 + 2 / 3) / 3)
    _close(m["weighted_f1"], (3 * 4 / 5 + 2 * 1 / 2 + 1 * 2 / 3) / 6)
    _close(m["top2_accuracy"], 5 / 6)
    true_class_p = [0.8, 0.6, 0.2, 0.8, 0.2, 0.7]
    _close(m["log_loss"], -sum(math.log(p) for p in true_class_p) / 6)
    assert m["n"] == 6
    assert m["per_class"] == {
        "Ada Brush": {"precision": 1.0, "recall": 0.666667, "f1": 0.8, "support": 3},
        "Bea Stroke": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "Cy Palette": {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 1},
    }
    # always "Ada Brush": accuracy 3/6; recall 1, 0, 0; F1 Ada = 2*.5*1/1.5 = 2/3, others 0
    assert m["majority_baseline"] == {
        "class": "Ada Brush",
        "accuracy": 0.5,
        "balanced_accuracy": 0.333333,
        "macro_f1": 0.222222,
    }
    json.dumps(m)  # JSON-able as is
    assert all(len(repr(v).split(".")[-1]) <= 6 for v in m.values() if isinstance(v, float))


def test_majority_baseline_on_imbalanced_labels() -> None:
    y = np.array([2, 2, 2, 2, 1, 0, 2, 1])  # Cy 5, Bea 2, Ada 1: majority is the last class
    proba = np.full((8, 3), 1 / 3)
    b = ev.classification_metrics(y, proba, CLASSES)["majority_baseline"]
    assert b["class"] == "Cy Palette"
    _close(b["accuracy"], 5 / 8)
    _close(b["balanced_accuracy"], 1 / 3)
    # F1 Cy = 2 * (5/8) * 1 / (5/8 + 1) = 10/13, the other two 0
    _close(b["macro_f1"], (10 / 13) / 3)


def test_two_classes_top2_is_one_and_quiet() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ev.classification_metrics(y, proba, ["A", "B"])
    assert m["top2_accuracy"] == 1.0
    _close(m["accuracy"], 2 / 4)
    _close(m["log_loss"], -(math.log(0.9) + math.log(0.6) + math.log(0.3) + math.log(0.2)) / 4)


def test_zero_probability_on_true_class_gives_a_finite_loss() -> None:
    proba = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    m = ev.classification_metrics(np.array([1, 0]), proba, CLASSES)
    assert math.isfinite(m["log_loss"]) and m["log_loss"] > 10


@pytest.mark.parametrize(
    ("y", "proba", "match"),
    [
        (np.array([0, 3]), np.full((2, 3), 1 / 3), "outside"),
        (np.array([0, 1]), np.array([[2.0, 1.0, 0.5], [1.0, 1.0, 1.0]]), "sum to 1"),
        (np.array([0, 1]), np.full((2, 2), 0.5), "shape"),
        (np.array([0.0, 1.0]), np.full((2, 3), 1 / 3), "integer"),
        (np.array([], dtype=int), np.zeros((0, 3)), "empty"),
    ],
)
def test_bad_inputs_are_specific_errors(y: np.ndarray, proba: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ev.classification_metrics(y, proba, CLASSES)


# ------------------------------------------------------------------ dvclive


@pytest.fixture(autouse=True)
def _outside_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Live() looks for a DVC/Git repo from the working directory (and fails in a Git repo
    # without commits): run from tmp_path so these tests do not depend on the checkout.
    monkeypatch.chdir(tmp_path)


def _live(path: Path) -> Live:
    return Live(dir=str(path), save_dvc_exp=False, dvcyaml=None)


def test_log_metrics_writes_nested_deterministic_metrics_json(tmp_path: Path) -> None:
    m = ev.classification_metrics(Y_TRUE, PROBA, CLASSES)
    texts = []
    for run in ("a", "b"):
        live = _live(tmp_path / run)
        ev.log_metrics(live, m, "test")
        live.end()
        texts.append((tmp_path / run / "metrics.json").read_text())
    assert texts[0] == texts[1]
    data = json.loads(texts[0])
    assert set(data) == {"test"}  # no "step": next_step was never called
    test = data["test"]
    assert test["macro_f1"] == m["macro_f1"]
    assert test["n"] == 6
    assert test["per_class"]["Bea Stroke"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    # the same key as classification_metrics() (the leaderboard reads it), minus the class name
    assert test["majority_baseline"] == {
        "accuracy": 0.5,
        "balanced_accuracy": 0.333333,
        "macro_f1": 0.222222,
    }
    assert not (tmp_path / "a" / "plots").exists()  # plot=False: no one-row TSVs


def test_log_metrics_keeps_a_slash_in_a_class_name_one_level(tmp_path: Path) -> None:
    live = _live(tmp_path / "live")
    ev.log_metrics(live, {"per_class": {"AC/DC": {"f1": 0.5}}, "accuracy": 0.25}, "val")
    live.end()
    data = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert data == {"val": {"accuracy": 0.25, "per_class": {"AC_DC": {"f1": 0.5}}}}


def test_read_dvclive_history_round_trip(tmp_path: Path) -> None:
    live = _live(tmp_path / "train")
    for step in range(3):
        # The names dvclive's Keras callback uses: loss -> train/loss, val_loss -> eval/loss.
        live.log_metric("train/loss", 1.0 / (step + 1))
        live.log_metric("eval/loss", 2.0 - step / 2)
        live.log_metric("train/accuracy", 0.25 * step)
        live.log_metric("eval/accuracy", 0.2 * step)
        live.log_metric("train/learning_rate", 0.001)
        live.next_step()
    live.end()
    history = ev.read_dvclive_history(tmp_path / "train")
    assert history == {
        "accuracy": [0.0, 0.25, 0.5],
        "learning_rate": [0.001, 0.001, 0.001],
        "loss": [1.0, 0.5, pytest.approx(1 / 3)],
        "val_accuracy": [0.0, 0.2, 0.4],
        "val_loss": [2.0, 1.5, 1.0],
    }
    path = tmp_path / "curves.png"
    ev.plot_learning_curves(history, path, "cnn_small")
    with Image.open(path) as img:
        assert img.size[0] > img.size[1] > 200


def test_read_dvclive_history_plain_names_and_conflicts(tmp_path: Path) -> None:
    live = _live(tmp_path / "plain")
    for step in range(2):
        live.log_metric("loss", 3.0 - step)
        live.log_metric("val_loss", 4.0 - step)
        live.next_step()
    live.end()
    assert ev.read_dvclive_history(tmp_path / "plain") == {
        "loss": [3.0, 2.0],
        "val_loss": [4.0, 3.0],
    }
    live = _live(tmp_path / "both")
    live.log_metric("loss", 1.0)
    live.log_metric("train/loss", 1.0)
    live.end()
    with pytest.raises(ValueError, match="'loss'"):
        ev.read_dvclive_history(tmp_path / "both")
    with pytest.raises(FileNotFoundError, match="dvclive"):
        ev.read_dvclive_history(tmp_path / "nowhere")


# ------------------------------------------------------------------ plots


def test_confusion_records_in_input_order() -> None:
    records = ev.confusion_records(Y_TRUE, Y_PRED, CLASSES)
    assert len(records) == 6
    assert records[2] == {"actual": "Ada Brush", "predicted": "Bea Stroke"}
    assert records[4] == {"actual": "Bea Stroke", "predicted": "Cy Palette"}
    assert [r["actual"] for r in records] == [CLASSES[i] for i in Y_TRUE]
    assert [r["predicted"] for r in records] == [CLASSES[i] for i in Y_PRED]
    with pytest.raises(ValueError, match="y_pred"):
        ev.confusion_records(Y_TRUE, Y_PRED[:5], CLASSES)


def _png(path: Path) -> bytes:
    with Image.open(path) as img:
        img.verify()
    return path.read_bytes()


def test_confusion_png_is_written_and_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "confusion.png", tmp_path / "b.png"
    ev.plot_confusion(Y_TRUE, Y_PRED, CLASSES, a, "cnn_small on test")
    ev.plot_confusion(Y_TRUE, Y_PRED, CLASSES, b, "cnn_small on test")
    assert _png(a) == _png(b)
    assert b"matplotlib" not in a.read_bytes()  # no version in the metadata
    ev.plot_confusion(Y_TRUE, Y_TRUE, CLASSES, b, "cnn_small on test")
    assert b.read_bytes() != a.read_bytes()


def test_learning_curves_png_is_byte_identical(tmp_path: Path) -> None:
    history = {
        "loss": [1.2, 0.9, 0.8, 0.7],
        "val_loss": [1.3, 1.0, 1.1, 1.2],
        "accuracy": [0.3, 0.5, 0.6, 0.7],
        "val_accuracy": [0.3, 0.45, 0.44, 0.43],
    }
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    ev.plot_learning_curves(history, a, "cnn_small")
    ev.plot_learning_curves(history, b, "cnn_small")
    assert _png(a) == _png(b)
    ev.plot_learning_curves({"loss": [1.0, 0.5]}, b, "no validation")  # missing keys are fine
    _png(b)


def test_learning_curves_of_an_lbfgs_head_are_drawn_against_c(tmp_path: Path) -> None:
    history = {
        "loss": [1.0, 0.6, 0.2],
        "val_loss": [1.1, 0.8, 0.9],
        "accuracy": [0.5, 0.8, 1.0],
        "val_accuracy": [0.4, 0.7, 0.65],
        "val_macro_f1": [0.35, 0.7, 0.6],
    }
    by_epoch, by_c = tmp_path / "epochs.png", tmp_path / "c.png"
    ev.plot_learning_curves(history, by_epoch, "style_stats")
    ev.plot_learning_curves({**history, "c": [0.01, 0.1, 1.0]}, by_c, "style_stats")
    assert _png(by_c) != _png(by_epoch)


def _write_images(root: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = root / f"img_{i}.jpg"
        pixels = rng.integers(0, 255, size=(40 + 8 * i, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG")
        paths.append(str(path))
    return paths


def test_misclassified_order_most_confident_first() -> None:
    # wrong: 2 (confidence 0.7 in Bea), 4 (0.5 in Cy)
    assert ev.misclassified_order(Y_TRUE, Y_PRED, PROBA, 16).tolist() == [2, 4]
    assert ev.misclassified_order(Y_TRUE, Y_PRED, PROBA, 1).tolist() == [2]
    y_pred = np.array([1, 2, 1, 1, 2, 2])  # now 0 (0.1), 1 (0.1), 2 (0.7), 4 (0.5)
    assert ev.misclassified_order(Y_TRUE, y_pred, PROBA, 16).tolist() == [2, 4, 0, 1]


def test_plot_misclassified_counts_and_is_deterministic(tmp_path: Path) -> None:
    paths = _write_images(tmp_path, 6)
    paths[4] = str(tmp_path / "missing.jpg")  # unreadable: a grey cell, not a crash
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert ev.plot_misclassified(paths, Y_TRUE, Y_PRED, PROBA, CLASSES, a) == 2
    assert ev.plot_misclassified(paths, Y_TRUE, Y_PRED, PROBA, CLASSES, b) == 2
    assert _png(a) == _png(b)
    assert ev.plot_misclassified(paths, Y_TRUE, Y_PRED, PROBA, CLASSES, b, max_images=1) == 1
    none = tmp_path / "none.png"
    assert ev.plot_misclassified(paths, Y_TRUE, Y_TRUE, PROBA, CLASSES, none) == 0
    _png(none)
