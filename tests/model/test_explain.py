"""Heat maps: where the model looked, for every model of the zoo, from its .keras file alone."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from artist_id import explain
from artist_id import images as images_module
from artist_id.config import MODEL_NAMES
from artist_id.models import (
    ModelSpec,
    adapt_head_normalization,
    build_model,
    load_model,
    save_model,
    split_trunk_head,
)

SIZE = 48
SQUARE = 12


def reload(model: keras.Model, tmp_path: Path) -> keras.Model:
    """Through a .keras file and back (safe mode), as the service and evaluate load it."""
    path = tmp_path / "model.keras"
    save_model(model, path)
    return load_model(path)


def squares(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark noise; every other image has a white SQUARE x SQUARE patch somewhere (label 1)."""
    x = rng.integers(0, 120, size=(n, SIZE, SIZE, 3)).astype("float32")
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, SIZE - SQUARE + 1, size=2)
        x[i, r : r + SQUARE, c : c + SQUARE] = 255.0
    return x, y


@pytest.mark.slow
def test_the_heat_maps_maximum_falls_inside_the_bright_square(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = squares(rng, 256)
    model = build_model(ModelSpec("cnn_small", SIZE, 2, dense=(16,), dropout=0.2))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    explainer = explain.Explainer(reload(model, tmp_path))

    corners = [(4, 4), (4, 30), (30, 18), (20, 10)]  # top-left of each test square
    test = rng.integers(0, 120, size=(len(corners), SIZE, SIZE, 3)).astype("float32")
    for k, (r, c) in enumerate(corners):
        test[k, r : r + SQUARE, c : c + SQUARE] = 255.0
    found = explainer.explain(test, classes=[1] * len(corners))
    for (r, c), e in zip(corners, found, strict=True):
        assert e.layer == "conv4_bn" and e.method == explain.GRAD_CAM
        row, col = np.unravel_index(int(np.argmax(e.heatmap)), e.heatmap.shape)
        assert r <= row < r + SQUARE and c <= col < c + SQUARE, (r, c, row, col)
        x_frac, y_frac = e.peak
        assert r / SIZE <= y_frac <= (r + SQUARE) / SIZE
        assert c / SIZE <= x_frac <= (c + SQUARE) / SIZE


# The layer each architecture's map comes from, read off the model definitions in models.py.
EXPECTED_LAYERS = {
    "cnn_small": ("conv4_bn",),  # conv4 + BN, before the last pooling
    "cnn_deep": ("conv11_bn",),
    "vgg16": ("block5_conv3",),
    "resnet50": ("conv5_block3_out",),
    "style_stats": ("block1_conv2", "block2_conv2"),  # the taps asked for below
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_zoo_model_is_explained_from_its_keras_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"layers": ("block1_conv2", "block2_conv2")} if name == "style_stats" else {}
    keras.utils.set_random_seed(1)
    built = build_model(ModelSpec(name, 32, 3, weights="none", **extra))  # type: ignore[arg-type]
    model = reload(built, tmp_path)
    explainer = explain.Explainer(model)
    assert explainer.layers == EXPECTED_LAYERS[name]
    assert explainer.method == (explain.HIRES_CAM if name == "style_stats" else explain.GRAD_CAM)

    images = np.random.default_rng(2).integers(0, 256, size=(3, 32, 32, 3)).astype("uint8")
    found = explainer.explain(images)
    proba = model.predict(images.astype("float32"), verbose=0)
    for i, e in enumerate(found):
        assert e.class_index == int(np.argmax(proba[i]))
        np.testing.assert_allclose(e.probabilities, proba[i], atol=1e-5)
        assert e.heatmap.shape == (32, 32)
        assert e.heatmap.min() >= 0.0 and e.heatmap.max() <= 1.0
        assert e.layer in EXPECTED_LAYERS[name]
    # Gradient passes of one image at a time give the same explanations as one of three.
    one_by_one = explainer.explain(images, classes=[0, 1, 2], batch_size=1)
    at_once = explainer.explain(images, classes=[0, 1, 2], batch_size=3)
    for a, b in zip(one_by_one, at_once, strict=True):
        assert (a.class_index, a.layer) == (b.class_index, b.layer)
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
    assert [e.class_index for e in at_once] == [0, 1, 2]
    # The packed form crosses BentoML's batching and comes back identical.
    packed = explainer.explain_array(images)
    again = explain.ExplanationBatch.unpack(packed, 3, len(explainer.layers), 32)
    assert [e.layer for e in again.explanations(explainer.layers, explainer.method)] == [
        e.layer for e in found
    ]
    np.testing.assert_allclose(again.heatmaps, np.stack([e.heatmap for e in found]), atol=1e-6)
    # With a gradient budget of one 32-px image per pass it takes three passes, same answer.
    monkeypatch.setattr(images_module, "GRADIENT_PIXELS", 32 * 32)
    assert explainer._passes(3, None) == [(0, 1), (1, 2), (2, 3)]
    np.testing.assert_allclose(explainer.explain_array(images), packed, atol=1e-5)


@pytest.mark.parametrize("covariance", [(), ("block1_conv2",)])
def test_style_stats_weighs_each_layer_by_its_statistics_against_the_training_mean(
    tmp_path: Path, covariance: tuple[str, ...]
) -> None:
    """For a linear head, a tap's contribution to the class logit is W . (s - m) / sd over
    that tap's columns of the statistics: computed here by hand from the head's weights. With
    ``covariance``, block1_conv2's covariance (after all the means and stds) counts for it."""
    keras.utils.set_random_seed(3)
    spec = ModelSpec(
        "style_stats",
        32,
        3,
        weights="none",
        layers=("block1_conv2", "block2_conv2"),
        covariance=covariance,
    )
    built = build_model(spec)
    trunk, head = split_trunk_head(built)
    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, size=(16, 32, 32, 3)).astype("float32")
    assert adapt_head_normalization(head, trunk.predict(train, verbose=0))
    model = reload(built, tmp_path)

    images = rng.integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    found = explain.Explainer(model).explain(images)

    norm = model.get_layer("head_norm")
    mean = keras.ops.convert_to_numpy(norm.mean).reshape(-1)
    sd = np.sqrt(keras.ops.convert_to_numpy(norm.variance).reshape(-1))
    kernel = keras.ops.convert_to_numpy(model.get_layer("head_probs").kernel)
    stats = keras.Model(model.input, model.get_layer("style_features").output).predict(
        images, verbose=0
    )
    # mean + std per channel, then the covariance's 64 x 65 / 2 = 2,080 numbers
    columns = {"block1_conv2": np.r_[0:128], "block2_conv2": np.r_[128:384]}
    if covariance:
        columns["block1_conv2"] = np.r_[0:128, 384 : 384 + 2080]
    assert stats.shape[1] == 384 + 2080 * len(covariance)
    assert explain.Explainer(model).layers == ("block1_conv2", "block2_conv2")  # one map each
    for i, e in enumerate(found):
        expected = {}
        for layer, part in columns.items():
            z = (stats[i, part] - mean[part]) / np.maximum(sd[part], keras.backend.epsilon())
            expected[layer] = float(z @ kernel[part, e.class_index])
        assert e.contributions.keys() == expected.keys()
        for layer in expected:
            assert e.contributions[layer] == pytest.approx(expected[layer], rel=1e-3, abs=1e-3)
        assert e.layer == max(expected, key=lambda k: expected[k])


def test_a_model_without_a_softmax_head_is_refused() -> None:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)  # linear: no class probabilities
    with pytest.raises(explain.ExplainError, match="softmax"):
        explain.Explainer(keras.Model(inputs, outputs))


def test_a_model_without_a_spatial_layer_is_refused() -> None:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    with pytest.raises(explain.ExplainError, match="spatial"):
        explain.Explainer(keras.Model(inputs, outputs))
