"""Model zoo: seed-deck parameter counts, preprocessing, weights, save/reload, trunk/head split.

Nothing here touches the network: ImageNet downloads are replaced by a function that fails
like an offline machine, and "cached" ImageNet files are written locally from random weights.
Models are built at 224 px only to count parameters; everything that runs data uses 32 px.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from artist_id.models import (
    IMAGENET_FILES,
    MODEL_NAMES,
    CaffePreprocess,
    ModelSpec,
    WeightsError,
    build_model,
    has_frozen_trunk,
    hed_weights_path,
    load_hed_weights,
    load_model,
    save_model,
    split_trunk_head,
    weights_digest,
)

SMALL = 32  # smallest size ResNet50 accepts; keeps every forward pass cheap on 2 cores


def _images(n: int = 2, size: int = SMALL, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout  # kernel + bias


def _bn(c: int) -> int:
    return 4 * c  # gamma, beta (trainable) + moving mean, moving variance


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("name", "total", "non_trainable"),
    [
        # 4 convs 612,160 + 4 BN 1,920 + Dense(14*14*256 -> 256) 12,845,312 + 16,448 + 195
        ("cnn_small", 13_476_035, 960),
        # 11 convs 646,848 + 1 BN 1,024 + the same dense tail 12,861,955
        ("cnn_deep", 13_509_827, 512),
        # VGG16 notop 14,714,688 + Dense(512 -> 512) 262,656 + Dense(512 -> 3) 1,539
        ("vgg16", 14_978_883, 14_714_688),
    ],
)
def test_seed_deck_param_counts(name: str, total: int, non_trainable: int) -> None:
    model = build_model(ModelSpec(name, 224, 3))
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == non_trainable


def test_cnn_conv_arithmetic_matches_the_deck() -> None:
    # The deck's hint for cnn_small's third conv, and the 'same'-padding Flatten size.
    assert _conv(5, 64, 128) == 204_928
    model = build_model(ModelSpec("cnn_deep", 224, 3))
    assert model.get_layer("flatten").output.shape[1:] == (14 * 14 * 256,)


def _resnet50_notop_params() -> int:
    # ResNet50 v1 as keras.applications builds it: convs with bias, BN after every conv.
    total = _conv(7, 3, 64) + _bn(64)  # stem: 9,472 + 256
    cin = 64
    for filters, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            out = 4 * filters
            total += _conv(1, cin, filters) + _bn(filters)
            total += _conv(3, filters, filters) + _bn(filters)
            total += _conv(1, filters, out) + _bn(out)
            if b == 0:  # projection shortcut
                total += _conv(1, cin, out) + _bn(out)
            cin = out
    return total


@pytest.mark.slow
def test_resnet50_param_count() -> None:
    # Trunk (derived above): 23,587,712, of which 53,120 BN moving statistics.
    # Head at 224 px: the trunk ends at 7 x 7 x 2048 = 100,352 features, then
    #   Dense 512:  100,352 * 512 + 512 = 51,380,736
    #   BN 512:     4 * 512             =      2,048
    #   Dense 16:   512 * 16 + 16       =      8,208
    #   BN 16:      4 * 16              =         64
    #   Dense 3:    16 * 3 + 3          =         51
    # Total: 23,587,712 + 51,380,736 + 2,048 + 8,208 + 64 + 51 = 74,978,819
    trunk = _resnet50_notop_params()
    assert trunk == 23_587_712
    head = (7 * 7 * 2048 * 512 + 512) + _bn(512) + (512 * 16 + 16) + _bn(16) + (16 * 3 + 3)
    assert trunk + head == 74_978_819

    model = build_model(ModelSpec("resnet50", 224, 3))
    assert model.count_params() == 74_978_819
    # Frozen trunk (all of it) + the head's BN moving statistics (2 * 512 + 2 * 16).
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert frozen == 23_587_712 + 1_056


def test_head_sizes_and_size_come_from_the_spec() -> None:
    model = build_model(ModelSpec("cnn_small", 64, 5, dense=(32,), dropout=0.2))
    assert model.input.shape[1:] == (64, 64, 3)
    assert model.output.shape[1:] == (5,)
    assert model.get_layer("dense_1").units == 32
    assert model.get_layer("dropout").rate == pytest.approx(0.2)
    with pytest.raises(ValueError):
        model.get_layer("dense_2")


# ------------------------------------------------------------------------------ preprocessing


def test_caffe_preprocess_equals_keras_preprocess_input() -> None:
    x = _images(3, 8)
    expected = keras.applications.vgg16.preprocess_input(x.copy())  # it works in place
    got = keras.ops.convert_to_numpy(CaffePreprocess()(x))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    clone = CaffePreprocess.from_config(CaffePreprocess(name="p").get_config())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), expected, atol=1e-4)


PREPROCESSING = {
    "cnn_small": keras.layers.Rescaling,
    "cnn_deep": keras.layers.Rescaling,
    "vgg16": CaffePreprocess,
    "resnet50": CaffePreprocess,
    "style_stats": CaffePreprocess,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_and_reload_with_safe_mode(name: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    model = build_model(ModelSpec(name, SMALL, 3, trainable_trunk_layers=2))
    # Preprocessing travels inside the model, and nothing would need unsafe deserialisation.
    assert isinstance(model.layers[1], PREPROCESSING[name])
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)

    x = _images()
    # Eager calls, not predict(): tracing a tf.function costs more than these tiny batches.
    before = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / f"{name}.keras"
    save_model(model, path)
    loaded = load_model(path, image_size=SMALL, num_classes=3)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    assert weights_digest(loaded) == weights_digest(model)
    assert [lay.trainable for lay in loaded.layers] == [lay.trainable for lay in model.layers]

    if name in ("vgg16", "resnet50"):  # the split also works on a reloaded model
        trunk, head = split_trunk_head(loaded)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(head(trunk(x, training=False), training=False)),
            before,
            rtol=0,
            atol=1e-6,
        )


# ------------------------------------------------------------------------------ trunk / head


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_split_trunk_head_shares_layers(name: str) -> None:
    model = build_model(ModelSpec(name, SMALL, 3))
    trunk, head = split_trunk_head(model)
    x = _images()
    full = keras.ops.convert_to_numpy(model(x, training=False))
    composed = keras.ops.convert_to_numpy(head(trunk(x, training=False), training=False))
    np.testing.assert_allclose(composed, full, rtol=0, atol=1e-6)
    assert trunk.get_layer("preprocess") is model.get_layer("preprocess")
    assert head.get_layer("head_probs") is model.get_layer("head_probs")


@pytest.mark.parametrize("name", ["cnn_small", "cnn_deep"])
def test_split_trunk_head_rejects_cnns(name: str) -> None:
    with pytest.raises(ValueError, match="no pretrained trunk"):
        split_trunk_head(build_model(ModelSpec(name, SMALL, 3)))


def _trainable_convs(model: keras.Model) -> list[str]:
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.trainable
    ]


def test_trainable_trunk_layers_unfreezes_last_convs_of_vgg() -> None:
    model = build_model(ModelSpec("vgg16", SMALL, 3, trainable_trunk_layers=3))
    assert _trainable_convs(model) == ["block5_conv1", "block5_conv2", "block5_conv3"]
    # 3 convs + 2 head Dense layers, kernel and bias each.
    assert len(model.trainable_weights) == 3 * 2 + 2 * 2

    frozen = build_model(ModelSpec("vgg16", SMALL, 3))
    assert _trainable_convs(frozen) == []
    assert [w.path for w in frozen.trainable_weights] == [
        "head_dense_1/kernel",
        "head_dense_1/bias",
        "head_probs/kernel",
        "head_probs/bias",
    ]


def test_has_frozen_trunk() -> None:
    assert has_frozen_trunk(ModelSpec("vgg16", SMALL, 3))
    assert has_frozen_trunk(ModelSpec("resnet50", SMALL, 3))
    assert not has_frozen_trunk(ModelSpec("vgg16", SMALL, 3, trainable_trunk_layers=3))
    assert not has_frozen_trunk(ModelSpec("cnn_small", SMALL, 3))


# ------------------------------------------------------------------------------- determinism


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.mark.parametrize("name", ["cnn_small", "vgg16"])
def test_same_seed_same_initial_weights(name: str) -> None:
    spec = ModelSpec(name, SMALL, 3)
    keras.utils.set_random_seed(11)
    first = _weights(build_model(spec))
    keras.utils.set_random_seed(11)
    second = _weights(build_model(spec))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    if name == "cnn_small":  # and the seed matters (one extra build is enough to show it)
        keras.utils.set_random_seed(12)
        other = _weights(build_model(spec))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


# ------------------------------------------------------------------------------------ weights


def _offline_get_file(calls: list[str]) -> Any:
    def fake(fname: str, origin: str, *args: Any, **kwargs: Any) -> str:
        calls.append(fname)
        # What keras.utils.get_file raises on a machine without network.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] name resolution")

    return fake


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Empty Keras cache and no network: downloads fail; returns the files asked for."""
    calls: list[str] = []
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    # keras.applications calls keras.src.utils.file_utils.get_file at run time.
    monkeypatch.setattr(file_utils, "get_file", _offline_get_file(calls))
    monkeypatch.setattr(keras.utils, "get_file", _offline_get_file(calls))

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the test tried to download something")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return calls


@pytest.mark.parametrize("name", ["vgg16", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_imagenet_offline_says_where_to_put_the_file(
    name: str, offline: list[str], tmp_path: Path
) -> None:
    with pytest.raises(WeightsError) as info:
        build_model(ModelSpec(name, SMALL, 3, weights="imagenet"))
    message = str(info.value)
    target = tmp_path / "keras_home" / "models" / IMAGENET_FILES[name]
    assert str(target) in message
    assert "hed-bsds500" in message
    assert "none" in message
    assert offline == [IMAGENET_FILES[name]]  # the real keras.applications path was taken


@pytest.mark.slow
def test_imagenet_uses_the_keras_cache_without_download(offline: list[str], tmp_path: Path) -> None:
    # A stand-in for the real file: random VGG16 weights in the same legacy HDF5 format.
    keras.utils.set_random_seed(5)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    with h5py.File(cache / IMAGENET_FILES["vgg16"], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)

    model = build_model(ModelSpec("vgg16", SMALL, 3, weights="imagenet"))
    assert offline == []
    for name in ("block1_conv1", "block5_conv3"):
        for got, want in zip(
            _weights(model.get_layer(name)), _weights(source.get_layer(name)), strict=True
        ):
            np.testing.assert_array_equal(got, want)


def test_hed_file_layout() -> None:
    with h5py.File(hed_weights_path(), "r") as f:
        assert f["block1/layers/conv2d/vars/0"].shape == (3, 3, 3, 64)
        assert f["block3/layers/conv2d_2/vars/0"].shape == (3, 3, 256, 256)
        assert f["block5/layers/conv2d_2/vars/1"].shape == (512,)


def test_hed_weights_load_into_vgg16_trunk() -> None:
    model = build_model(ModelSpec("vgg16", SMALL, 3, weights="hed-bsds500"))
    with h5py.File(hed_weights_path(), "r") as f:
        for layer, key in [
            ("block1_conv1", "block1/layers/conv2d"),
            ("block3_conv2", "block3/layers/conv2d_1"),
            ("block5_conv3", "block5/layers/conv2d_2"),
        ]:
            kernel, bias = _weights(model.get_layer(layer))
            np.testing.assert_array_equal(kernel, f[f"{key}/vars/0"][()])
            np.testing.assert_array_equal(bias, f[f"{key}/vars/1"][()])


def test_hed_weights_mismatch_is_refused_and_leaves_model_untouched(tmp_path: Path) -> None:
    model = build_model(ModelSpec("vgg16", SMALL, 3))
    before = _weights(model)

    wrong_shape = tmp_path / "wrong.weights.h5"
    with h5py.File(wrong_shape, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), "float32")
        f["block1/layers/conv2d/vars/1"] = np.zeros((32,), "float32")
        f["block1/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 32, 64), "float32")
        f["block1/layers/conv2d_1/vars/1"] = np.zeros((64,), "float32")
    with pytest.raises(WeightsError, match="block1_conv1 needs"):
        load_hed_weights(model, wrong_shape)

    missing_block = tmp_path / "short.weights.h5"
    with h5py.File(hed_weights_path(), "r") as src, h5py.File(missing_block, "w") as dst:
        for b in range(1, 5):  # no block5
            src.copy(src[f"block{b}"], dst, name=f"block{b}")
    with pytest.raises(WeightsError, match="block5 has 0 conv layers"):
        load_hed_weights(model, missing_block)

    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model), strict=True))


@pytest.mark.slow
def test_weights_file_loads_into_the_trunk(tmp_path: Path) -> None:
    keras.utils.set_random_seed(8)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "trunk.weights.h5"
    source.save_weights(path)

    model = build_model(ModelSpec("vgg16", SMALL, 3, weights=str(path)))
    np.testing.assert_array_equal(
        _weights(model.get_layer("block4_conv2"))[0], _weights(source.get_layer("block4_conv2"))[0]
    )

    with pytest.raises(WeightsError, match="not found"):
        build_model(ModelSpec("vgg16", SMALL, 3, weights=str(tmp_path / "nope.weights.h5")))


def test_weights_file_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cnn.weights.h5"
    build_model(ModelSpec("cnn_small", SMALL, 3)).save_weights(path)
    with pytest.raises(WeightsError, match="does not fit"):
        build_model(ModelSpec("vgg16", SMALL, 3, weights=str(path)))


def test_weights_file_for_a_cnn_loads_the_whole_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(9)
    source = build_model(ModelSpec("cnn_small", SMALL, 3))
    path = tmp_path / "cnn.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(10)
    model = build_model(ModelSpec("cnn_small", SMALL, 3, weights=str(path)))
    assert all(np.array_equal(a, b) for a, b in zip(_weights(source), _weights(model), strict=True))


@pytest.mark.parametrize(
    ("name", "weights", "match"),
    [
        ("vgg16", "imagenett", "unknown weights"),
        ("resnet50", "hed-bsds500", "only for vgg16"),
        ("cnn_small", "imagenet", "no ImageNet weights"),
        ("cnn_deep", "hed-bsds500", "only for vgg16"),
    ],
)
def test_bad_weights_values(name: str, weights: str, match: str) -> None:
    with pytest.raises(WeightsError, match=match):
        build_model(ModelSpec(name, SMALL, 3, weights=weights))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "alexnet"},
        {"image_size": 16},
        {"num_classes": 1},
        {"dropout": 1.0},
        {"dense": (0,)},
        {"trainable_trunk_layers": -1},
    ],
)
def test_spec_validation(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"name": "cnn_small", "image_size": SMALL, "num_classes": 3}
    with pytest.raises(ValueError):
        ModelSpec(**{**base, **kwargs})


def _shared_object_ids(node: Any) -> list[Any]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "shared_object_id"]
        return found + [i for v in node.values() for i in _shared_object_ids(v)]
    if isinstance(node, list):
        return [i for v in node for i in _shared_object_ids(v)]
    return []


def test_a_saved_model_file_depends_only_on_the_model(tmp_path: Path) -> None:
    """Same weights, same bytes: no save time, no zip times, no Python object addresses."""
    import time

    keras.utils.set_random_seed(3)
    model = build_model(ModelSpec("cnn_small", SMALL, 3, dense=(8,)))
    first = save_model(model, tmp_path / "a" / "model.keras").read_bytes()
    time.sleep(1.1)  # a zip entry time has a two-second resolution; the metadata one second
    second = save_model(model, tmp_path / "b" / "model.keras").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a" / "model.keras") as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "date_saved" not in json.loads(zf.read("metadata.json"))
        ids = _shared_object_ids(json.loads(zf.read("config.json")))
    # Keras writes id() of shared objects (a memory address, different in every process):
    # renumbered by first appearance, they are 1..k
    assert ids and set(ids) == set(range(1, len(set(ids)) + 1))


def test_load_model_checks_shapes_and_refuses_a_lambda(tmp_path: Path) -> None:
    from artist_id.models import ModelFileError

    keras.utils.set_random_seed(3)
    path = save_model(
        build_model(ModelSpec("cnn_small", SMALL, 3, dense=(8,))), tmp_path / "m.keras"
    )
    with pytest.raises(ModelFileError, match="takes input"):
        load_model(path, image_size=64)
    with pytest.raises(ModelFileError, match="3 outputs for 5 classes"):
        load_model(path, num_classes=5)
    inputs = keras.Input((4,))
    lam = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    lam.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="safe mode"):
        load_model(tmp_path / "lambda.keras")
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        load_model(tmp_path / "missing.keras")
