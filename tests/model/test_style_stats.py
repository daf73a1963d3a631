"""style_stats: the statistics layer, the model's structure and weights, save/reload, training.

Everything runs at 32-48 px on a handful of images; nothing touches the network.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from artist_id.config import ModelParams, TrainParams
from artist_id.models import (
    IMAGENET_FILES,
    STYLE_LAYERS,
    ChannelCovariance,
    ChannelStats,
    ModelSpec,
    WeightsError,
    adapt_head_normalization,
    build_model,
    has_frozen_trunk,
    hed_weights_path,
    load_model,
    normalization_is_adapted,
    save_model,
    split_trunk_head,
)
from tests.conftest import run_on_two_cpus, split_images

SMALL = 32
# VGG16 channels of the default taps: 64, 128, 256, 512, 512 -> 2 x 1,472 statistics.
DEFAULT_FEATURES = 2 * (64 + 128 + 256 + 512 + 512)


def _images(n: int = 3, size: int = SMALL, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _np(x: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _spec(**kwargs: Any) -> ModelSpec:
    base: dict[str, Any] = {"name": "style_stats", "image_size": SMALL, "num_classes": 3}
    return ModelSpec(**{**base, **kwargs})


# ------------------------------------------------------------------------- statistics layer


def test_channel_stats_against_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (2, 5, 4, 3)).astype("float32")
    x[1, :, :, 2] = 7.0  # a constant channel: std is sqrt(epsilon), not NaN
    got = _np(ChannelStats(epsilon=1e-6)(x))

    mean = x.mean(axis=(1, 2))
    std = np.sqrt(x.var(axis=(1, 2)) + 1e-6)  # population variance over the 20 positions
    assert got.shape == (2, 6)
    np.testing.assert_allclose(got[:, :3], mean, rtol=1e-5)
    np.testing.assert_allclose(got[:, 3:], std, rtol=1e-5)
    assert got[1, 5] == pytest.approx(1e-3, rel=1e-3)

    # A hand-checkable case: one channel holding 0, 2, 4, 6 -> mean 3, std sqrt(5).
    small = np.array([0.0, 2.0, 4.0, 6.0], dtype="float32").reshape(1, 2, 2, 1)
    np.testing.assert_allclose(
        _np(ChannelStats(epsilon=0.0)(small)), [[3.0, np.sqrt(5.0)]], rtol=1e-6
    )


def test_channel_stats_config_and_shape() -> None:
    layer = ChannelStats(epsilon=1e-4, name="s")
    clone = ChannelStats.from_config(layer.get_config())
    assert clone.epsilon == pytest.approx(1e-4)
    assert clone.name == "s"
    assert layer.compute_output_shape((None, 7, 7, 64)) == (None, 128)
    symbolic = ChannelStats()(keras.Input((9, 9, 16)))
    assert tuple(symbolic.shape) == (None, 32)


def test_channel_covariance_by_hand() -> None:
    # Two channels over a 2 x 2 map: 0, 2, 4, 6 (mean 3) and 5, 1, 1, 1 (mean 2). Centred:
    # -3, -1, 1, 3 and 3, -1, -1, -1. Variances (9 + 1 + 1 + 9) / 4 = 5 and (9 + 1 + 1 + 1) / 4
    # = 3; covariance (-9 + 1 - 1 - 3) / 4 = -3. Upper triangle row by row: 5, -3, 3; the
    # signed square roots of those.
    x = np.array([[0.0, 5.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]], "float32").reshape(1, 2, 2, 2)
    got = _np(ChannelCovariance(epsilon=0.0)(x))
    np.testing.assert_allclose(got, [[np.sqrt(5.0), -np.sqrt(3.0), np.sqrt(3.0)]], rtol=1e-6)


def test_channel_covariance_against_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (3, 6, 5, 4)).astype("float32")
    x[2, :, :, 1] = 4.0  # a constant channel: its row of the covariance is 0, not NaN
    eps = 1e-4
    got = _np(ChannelCovariance(epsilon=eps)(x))
    assert got.shape == (3, 10)
    rows, cols = np.triu_indices(4)
    for i in range(3):
        cov = np.cov(x[i].reshape(-1, 4), rowvar=False, bias=True)  # population, 30 positions
        v = cov[rows, cols]
        want = np.sign(v) * (np.sqrt(np.abs(v) + eps) - np.sqrt(eps))
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)
    assert np.all(got[2, [1, 4, 5, 6]] == 0.0)  # channel 1: (0, 1), (1, 1), (1, 2), (1, 3)


def test_channel_covariance_config_and_shape() -> None:
    layer = ChannelCovariance(epsilon=1e-3, name="c")
    clone = ChannelCovariance.from_config(layer.get_config())
    assert (clone.epsilon, clone.name) == (pytest.approx(1e-3), "c")
    assert layer.compute_output_shape((None, 7, 7, 64)) == (None, 64 * 65 // 2)
    assert tuple(ChannelCovariance()(keras.Input((9, 9, 16))).shape) == (None, 136)


# ------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layers": ("block1_conv3",)},  # block1 has two convs
        {"layers": ("conv1",)},
        {"layers": ("block1_conv2", "block1_conv2")},
        {"stats_image_size": 16},
        {"l2": -0.1},
        {"name": "vgg16", "layers": ("block1_conv2",)},  # style settings on another model
        {"name": "vgg16", "stats_image_size": 64},
        {"name": "cnn_small", "l2": 0.01},
        {"covariance": ("block3_conv4",)},
        {"covariance": ("block1_conv2", "block1_conv2")},
        {"name": "vgg16", "covariance": ("block1_conv2",)},
    ],
)
def test_spec_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _spec(**kwargs)


def test_spec_defaults() -> None:
    spec = _spec(layers=("block3_conv3", "block1_conv2"))
    assert spec.style_layers == ("block1_conv2", "block3_conv3")  # network order
    assert _spec().style_layers == STYLE_LAYERS
    assert _spec().covariance_layers == ()
    assert _spec(covariance=("block3_conv3", "block1_conv1")).covariance_layers == (
        "block1_conv1",
        "block3_conv3",
    )
    assert _spec().working_size == SMALL
    assert _spec(stats_image_size=64).working_size == 64
    assert _spec().head_sizes == ()  # a linear softmax unless `dense` asks for more
    assert has_frozen_trunk(_spec())
    assert not has_frozen_trunk(_spec(trainable_trunk_layers=1))


# -------------------------------------------------------------------------- the model


def test_structure_default_taps() -> None:
    model = build_model(_spec(dropout=0.2, l2=0.01))
    names = [layer.name for layer in model.layers]
    assert "resize" not in names  # the working size is the input size
    assert names[1] == "preprocess"
    assert "block5_pool" not in names  # nothing after the last tap is built into the model
    assert [n for n in names if n.startswith("stats_")] == [f"stats_{n}" for n in STYLE_LAYERS]
    assert names[-4:] == ["style_features", "head_norm", "head_dropout", "head_probs"]
    assert model.get_layer("style_features").output.shape[1:] == (DEFAULT_FEATURES,)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.2)
    probs = model.get_layer("head_probs")
    assert isinstance(probs.kernel_regularizer, keras.regularizers.L2)
    assert probs.kernel_regularizer.l2 == pytest.approx(0.01)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    # Only the softmax trains: VGG16 is frozen, the Normalization is adapted, not trained.
    assert [w.path for w in model.trainable_weights] == ["head_probs/kernel", "head_probs/bias"]
    # Trunk params: the 13 VGG16 convs; head: norm (2 x 2,944 + count) + 2,944 x 3 + 3.
    head = (2 * DEFAULT_FEATURES + 1) + DEFAULT_FEATURES * 3 + 3
    assert model.count_params() == 14_714_688 + head


def test_structure_chosen_taps_resize_and_hidden_layer() -> None:
    model = build_model(
        _spec(layers=("block2_conv2", "block1_conv1"), stats_image_size=48, dense=(8,))
    )
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "resize", "preprocess"]
    assert model.get_layer("resize").output.shape[1:] == (48, 48, 3)
    assert model.input.shape[1:] == (SMALL, SMALL, 3)  # callers still feed image_size
    assert not any(n.startswith(("block3", "block4", "block5")) for n in names)
    assert model.get_layer("style_features").output.shape[1:] == (2 * (64 + 128),)
    assert model.get_layer("head_dense_1").units == 8
    assert model.get_layer("head_dense_1").kernel_regularizer is None  # l2 = 0
    assert model.output.shape[1:] == (3,)


def test_structure_with_covariance() -> None:
    model = build_model(
        _spec(layers=("block2_conv2",), covariance=("block2_conv1", "block1_conv2"))
    )
    names = [layer.name for layer in model.layers]
    reducers = [n for n in names if n.startswith(("stats_", "cov_"))]
    # the statistics first, then each covariance in network order
    assert reducers == ["stats_block2_conv2", "cov_block1_conv2", "cov_block2_conv1"]
    width = 2 * 128 + 64 * 65 // 2 + 128 * 129 // 2
    assert model.get_layer("style_features").output.shape[1:] == (width,)
    # the head: norm (2 x width + count) and the softmax (width x 3 + 3); the convs up to
    # block2_conv2 are the trunk
    trunk_params = sum(int(np.prod(w.shape)) for w in model.weights if "block" in w.path)
    assert model.count_params() == trunk_params + (2 * width + 1) + width * 3 + 3


def test_hed_weights_load_into_the_taps_it_has() -> None:
    model = build_model(_spec(layers=("block2_conv2",), weights="hed-bsds500"))
    with h5py.File(hed_weights_path(), "r") as f:
        for layer, key in [
            ("block1_conv1", "block1/layers/conv2d"),
            ("block2_conv2", "block2/layers/conv2d_1"),
        ]:
            kernel, bias = (_np(w) for w in model.get_layer(layer).weights)
            np.testing.assert_array_equal(kernel, f[f"{key}/vars/0"][()])
            np.testing.assert_array_equal(bias, f[f"{key}/vars/1"][()])


def test_weights_errors() -> None:
    with pytest.raises(WeightsError, match="only for vgg16 and style_stats"):
        build_model(ModelSpec("resnet50", SMALL, 3, weights="hed-bsds500"))
    with pytest.raises(WeightsError, match="not found"):
        build_model(_spec(weights="/nonexistent/vgg.weights.h5"))


def test_imagenet_offline_names_the_vgg16_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def offline(fname: str, origin: str, *args: Any, **kwargs: Any) -> str:
        calls.append(fname)
        raise Exception(f"URL fetch failure on {origin}: [Errno -3] name resolution")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsError) as info:
        build_model(_spec(weights="imagenet"))
    assert str(tmp_path / "kh" / "models" / IMAGENET_FILES["vgg16"]) in str(info.value)
    assert calls == [IMAGENET_FILES["vgg16"]]


@pytest.mark.slow
def test_vgg16_weights_file_loads_into_the_trunk(tmp_path: Path) -> None:
    keras.utils.set_random_seed(4)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    model = build_model(_spec(layers=("block3_conv1",), weights=str(path)))
    for name in ("block1_conv1", "block3_conv1"):
        for got, want in zip(
            model.get_layer(name).weights, source.get_layer(name).weights, strict=True
        ):
            np.testing.assert_array_equal(_np(got), _np(want))


# ------------------------------------------------------------------ normalization, round trip


def test_adapt_head_normalization_uses_the_features() -> None:
    model = build_model(_spec(layers=("block1_conv2", "block2_conv2")))
    trunk, head = split_trunk_head(model)
    assert not normalization_is_adapted(model.get_layer("head_norm"))
    features = _np(trunk(_images(4)))
    assert adapt_head_normalization(head, features)
    norm = model.get_layer("head_norm")  # shared with the head
    assert normalization_is_adapted(norm)
    np.testing.assert_allclose(_np(norm.adapt_mean), features.mean(axis=0), rtol=1e-4)
    variance = features.var(axis=0)
    variance[features.astype(np.float64).std(axis=0) < 1e-12] = 1.0  # constant: see below
    np.testing.assert_allclose(_np(norm.adapt_variance), variance, rtol=1e-3)
    assert not adapt_head_normalization(head, features * 0)  # already adapted: left alone


def test_a_statistic_constant_in_training_is_not_blown_up_on_new_images() -> None:
    # A channel no training image activates: Keras alone would divide by sqrt(0) -> 1e-7 and
    # send a test image's 0.5 to the head as 5,000,000.
    model = build_model(_spec(layers=("block1_conv2",)))
    trunk, head = split_trunk_head(model)
    features = _np(trunk(_images(4)))
    features[:, 0] = 0.001  # constant
    features[:, 1] = 0.0  # constant (dead)
    assert adapt_head_normalization(head, features)
    norm = model.get_layer("head_norm")
    variance = _np(norm.adapt_variance)
    assert variance[0] == 1.0 and variance[1] == 1.0
    np.testing.assert_allclose(variance[2:], features[:, 2:].var(axis=0), rtol=1e-3)
    new = features[:1].copy()
    new[0, 0], new[0, 1] = 0.5, 0.25
    z = _np(norm(new))
    np.testing.assert_allclose(z[0, :2], [0.5 - 0.001, 0.25], rtol=1e-5)


@pytest.mark.slow
def test_save_reload_safe_mode_and_trunk_head_equality(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build_model(
        _spec(weights="hed-bsds500", stats_image_size=48, dense=(8,), l2=1e-3, dropout=0.3)
    )
    trunk, head = split_trunk_head(model)
    x = _images(3)
    adapt_head_normalization(head, _np(trunk(x)))
    full = _np(model(x, training=False))
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(_np(head(trunk(x), training=False)), full, rtol=0, atol=1e-6)

    path = tmp_path / "style_stats.keras"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_allclose(_np(loaded(x, training=False)), full, rtol=0, atol=1e-6)
    # The adapted statistics travel inside the file.
    np.testing.assert_array_equal(
        _np(loaded.get_layer("head_norm").adapt_mean), _np(model.get_layer("head_norm").adapt_mean)
    )
    assert [la.trainable for la in loaded.layers] == [la.trainable for la in model.layers]
    trunk2, head2 = split_trunk_head(loaded)
    features = _np(trunk2(x, training=False))
    assert features.shape == (3, DEFAULT_FEATURES)
    np.testing.assert_allclose(_np(head2(features, training=False)), full, rtol=0, atol=1e-6)
    assert not adapt_head_normalization(head2, features)  # a reloaded model keeps its stats


# ----------------------------------------------------------------------------- training


def _model_params(**style: Any) -> ModelParams:
    return ModelParams(**style)


def _train_params(style: ModelParams, **overrides: Any) -> TrainParams:
    """TrainParams training only style_stats."""
    other = ModelParams(learning_rate=0.001)
    values: dict[str, Any] = {
        "models": ("style_stats",),
        "strategy": "default",
        "batch_size": 8,
        "epochs": 3,
        "patience": 2,
        "cache_features": True,
        **overrides,
    }
    kwargs = {
        f.name: values.get(f.name, other)
        for f in dataclasses.fields(TrainParams)
        if f.name != "style_stats"
    }
    return TrainParams(**kwargs, style_stats=style)


def _split(n: int, seed: int) -> Any:
    from tests.conftest import split_from_arrays

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 255, size=(n, SMALL, SMALL, 3)).astype("uint8")
    # A texture cue: class 1 is smooth (blurred noise), class 2 is striped.
    images[labels == 1] = (images[labels == 1] // 4 + 96).astype("uint8")
    images[labels == 2, ::2] = 0
    return split_from_arrays(images, labels)


@pytest.mark.slow
@pytest.mark.parametrize("use_cache", [True, False])
def test_train_model_adapts_on_training_features(use_cache: bool, tmp_path: Path) -> None:
    from artist_id.seeding import seed_everything
    from artist_id.training import extract_features, train_model

    seed_everything(0)
    style = _model_params(
        learning_rate=0.01,
        weights="hed-bsds500",
        dropout=0.2,
        l2=1e-3,
        layers=("block1_conv2", "block2_conv2", "block3_conv3"),
    )
    train, val = _split(18, 1), _split(6, 2)
    result = train_model(
        "style_stats",
        _train_params(style),
        train,
        val,
        3,
        None,
        seed=0,
        verbose=0,
        use_cache=use_cache,
    )
    assert result.used_feature_cache is use_cache
    model = result.model
    assert model.get_layer("head_probs").kernel_regularizer.l2 == pytest.approx(1e-3)

    trunk, _ = split_trunk_head(model)
    f_train = extract_features(trunk, train, 8)
    norm = model.get_layer("head_norm")
    np.testing.assert_allclose(_np(norm.adapt_mean), f_train.mean(axis=0), rtol=1e-4, atol=1e-3)

    path = tmp_path / "model.keras"
    save_model(model, path)
    reloaded = load_model(path)
    x = split_images(val)
    full = np.asarray(reloaded.predict(x, verbose=0))
    trunk2, head2 = split_trunk_head(reloaded)
    via_features = np.asarray(head2.predict(extract_features(trunk2, val, 4), verbose=0))
    np.testing.assert_allclose(full, via_features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, np.asarray(model.predict(x, verbose=0)), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("covariance", [(), ("block2_conv2",)])
def test_train_model_lbfgs_fits_the_head_with_sklearn_and_keeps_the_best_c(
    tmp_path: Path, covariance: tuple[str, ...]
) -> None:
    from artist_id.training import extract_features, train_model

    style = _model_params(
        learning_rate=0.01,
        weights="hed-bsds500",
        optimizer="lbfgs",
        c=(0.001, 0.1, 10.0),
        layers=("block1_conv2", "block2_conv2"),
        covariance=covariance,
    )
    train, val = _split(18, 1), _split(6, 2)
    result = train_model(
        "style_stats", _train_params(style), train, val, 3, None, seed=0, verbose=0
    )
    history = result.history
    assert history["c"] == [0.001, 0.1, 10.0] and result.epochs_run == 3
    assert result.used_feature_cache
    f1, loss = history["val_macro_f1"], history["val_loss"]
    assert result.best_epoch == 1 + max(range(3), key=lambda i: (f1[i], -loss[i]))
    # The saved model is the whole network; its probabilities are the fitted regression's.
    save_model(result.model, tmp_path / "model.keras")
    reloaded = load_model(tmp_path / "model.keras")
    proba = np.asarray(reloaded.predict(split_images(val), verbose=0))
    assert float(np.mean(proba.argmax(1) == val.labels)) == pytest.approx(
        history["val_accuracy"][result.best_epoch - 1]
    )
    trunk, _ = split_trunk_head(reloaded)
    norm = reloaded.get_layer("head_norm")
    f_train = extract_features(trunk, train, 8)
    # 2 x (64 + 128) statistics, and block2_conv2's 128 x 129 / 2 covariance when asked
    assert f_train.shape == (18, 384 + 8256 * len(covariance))
    np.testing.assert_allclose(_np(norm.adapt_mean), f_train.mean(axis=0), rtol=1e-4, atol=1e-3)


MIRRORED = """
import json
import numpy as np
from artist_id.training import train_model
from tests.model.test_style_stats import _model_params, _split, _train_params
style = _model_params(learning_rate=0.01, layers=("block1_conv2", "block2_conv2"))
result = train_model("style_stats", _train_params(style, strategy="mirrored", epochs=2),
                     _split(18, 1), _split(6, 2), 3, None, seed=0, verbose=0)
mean = result.model.get_layer("head_norm").adapt_mean.numpy()
print(json.dumps({"cache": result.used_feature_cache, "epochs": len(result.history["loss"]),
                  "adapted": bool(np.any(mean != 0))}))
"""


@pytest.mark.slow
def test_feature_cache_under_mirrored_strategy() -> None:
    # The head model must be created inside strategy.scope(), or its optimizer fails to build.
    result = run_on_two_cpus(MIRRORED)
    assert result == {"cache": True, "epochs": 2, "adapted": True}
