"""Overlays and example picking of artist_id.explain (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from artist_id import explain


def test_cold_regions_are_dimmed_and_hot_ones_tinted() -> None:
    grey = Image.new("RGB", (40, 40), (200, 200, 200))
    heat = np.zeros((8, 8), np.float32)
    heat[0:2, 0:2] = 1.0  # the top-left quarter of a quarter is hot
    out = np.asarray(explain.overlay(grey, heat, size=40, alpha=0.5, dim=0.4), np.float64)
    # Far from the hot cells: heat 0, so 40 % of the brightness and no colour.
    assert out[39, 39].tolist() == [80.0, 80.0, 80.0]
    # At the hottest point: full brightness, mixed half and half with the ramp's top colour.
    top = explain.colour_lut()[255].astype(np.float64)
    np.testing.assert_allclose(out[0, 0], np.rint(0.5 * 200 + 0.5 * top), atol=1)


def test_the_overlay_shows_the_centred_square_the_model_saw() -> None:
    wide = Image.new("RGB", (300, 100), (0, 0, 255))
    wide.paste((255, 0, 0), (100, 0, 200, 100))  # the centred square is red
    out = np.asarray(explain.overlay(wide, np.zeros((4, 4)), size=50, dim=1.0))
    assert out.shape == (50, 50, 3)
    assert (out[..., 0] > 240).all() and (out[..., 2] < 15).all()


def test_the_colour_ramp_goes_from_dark_to_bright() -> None:
    lut = explain.colour_lut()
    brightness = lut.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.all(np.diff(brightness) > -1.0)  # monotone up to rounding
    assert brightness[0] < 10 and brightness[-1] > 200


def test_pick_examples_most_confident_first_and_per_class() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 0])
    proba = np.array(
        [
            [0.9, 0.05, 0.05],  # 0 right, 0.90
            [0.6, 0.3, 0.1],  # 1 right, 0.60
            [0.1, 0.8, 0.1],  # 2 right, 0.80
            [0.7, 0.2, 0.1],  # 3 wrong (pred 0), 0.70
            [0.05, 0.9, 0.05],  # 4 wrong (pred 1), 0.90
            [0.2, 0.2, 0.6],  # 5 right, 0.60
            [0.95, 0.03, 0.02],  # 6 right, 0.95
        ]
    )
    wrong, right = explain.pick_examples(y, proba, mistakes=5, correct_per_class=1)
    assert wrong.tolist() == [4, 3]  # by confidence in the wrong class
    assert right.tolist() == [6, 2, 5]  # class 0's best (0.95), then class 1, class 2
    wrong, right = explain.pick_examples(y, proba, mistakes=1, correct_per_class=2)
    assert wrong.tolist() == [4] and right.tolist() == [6, 0, 2, 5]
    wrong, right = explain.pick_examples(y, proba, mistakes=0, correct_per_class=0)
    assert wrong.size == 0 and right.size == 0


def test_packed_explanations_round_trip() -> None:
    rng = np.random.default_rng(0)
    batch = explain.ExplanationBatch(
        classes=np.array([2, 0]),
        layer_index=np.array([1, 0]),
        probabilities=rng.random((2, 3)).astype(np.float32),
        contributions=rng.normal(size=(2, 2)).astype(np.float32),
        heatmaps=rng.random((2, 5, 5)).astype(np.float32),
    )
    back = explain.ExplanationBatch.unpack(batch.pack(), 3, 2, 5)
    assert back.classes.tolist() == [2, 0] and back.layer_index.tolist() == [1, 0]
    np.testing.assert_array_equal(back.heatmaps, batch.heatmaps)
    (first, second) = back.explanations(["a", "b"], explain.HIRES_CAM)
    assert (first.layer, second.layer) == ("b", "a")
    assert set(first.contributions) == {"a", "b"}
    with pytest.raises(explain.ExplainError, match="shape"):
        explain.ExplanationBatch.unpack(batch.pack(), 4, 2, 5)


def test_peak_is_the_centre_of_the_hottest_pixel() -> None:
    heat = np.zeros((4, 8), np.float32)
    heat[3, 1] = 1.0
    e = explain.Explanation(0, np.ones(2, np.float32), "l", explain.GRAD_CAM, heat)
    assert e.peak == (1.5 / 8, 3.5 / 4)
