"""Receptive fields, filter choice and top patches (what each depth of a network sees)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from artist_id import filters
from artist_id.images import GRADIENT_PIXELS, per_pass
from artist_id.models import ModelSpec, build_model


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "before"),
    [
        (64, 3, 1, 1),  # 3x3 'same': one pixel each side
        (32, 3, 2, 0),  # even length, stride 2: TF pads 1 pixel, at the end only
        (33, 3, 2, 1),  # odd length: 2 pixels, one each side
        (224, 7, 2, 2),  # ResNet-like stem: 5 pixels, 2 before and 3 after
        (8, 1, 1, 0),
    ],
)
def test_same_padding_before(length: int, kernel: int, stride: int, before: int) -> None:
    assert filters.same_padding(length, kernel, stride) == before


def vgg16(size: int = 64) -> keras.Model:
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))


def test_vgg16_depths_and_receptive_fields_by_hand() -> None:
    depths = filters.choose_depths(vgg16())
    # 3x3 convs add 2 * jump, 2x2/2 pools add 1 * jump and double it:
    # block1_conv2 1+2+2 = 5; pool 6; block2 6+4+4 = 14; pool 16; block3 16+3*8 = 40;
    # pool 44; block4 44+3*16 = 92; pool 100; block5 100+3*32 = 196
    assert [(d.index, d.layer) for d in depths] == [
        (1, "block1_conv2"),
        (2, "block2_conv2"),
        (3, "block3_conv3"),
        (4, "block4_conv3"),
        (5, "block5_conv3"),
    ]
    assert [d.field.rows.size for d in depths] == [5, 14, 40, 92, 196]
    assert [d.field.cols.jump for d in depths] == [1, 2, 4, 8, 16]
    # the first unit of block1_conv2 is centred on pixel 0: it sees pixels -2..2
    assert (depths[0].field.rows.start, depths[0].field.rows.end) == (-2, 2)


def ones_model(size: tuple[int, int]) -> keras.Model:
    """Every kind of layer the arithmetic handles; all-ones kernels, no activations.

    Average rather than max pooling: max pooling sends the gradient to one pixel per window
    (same window arithmetic, so the same code path computes its field)."""
    ones = keras.initializers.Ones()
    inputs = keras.Input((*size, 1))
    x = keras.layers.ZeroPadding2D(((2, 1), (0, 3)), name="pad")(inputs)
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", kernel_initializer=ones, name="s2")(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(
        1, (3, 5), dilation_rate=2, padding="same", kernel_initializer=ones, name="dil"
    )(x)
    x = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="avg")(x)
    y = keras.layers.Conv2D(1, 1, kernel_initializer=ones, name="one")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.Conv2D(1, 3, padding="valid", kernel_initializer=ones, name="valid")(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("size", [(40, 40), (37, 45)])
def test_receptive_field_is_exactly_where_the_gradient_reaches(size: tuple[int, int]) -> None:
    # With positive kernels and no ReLU every pixel in a unit's field changes it, and no
    # pixel outside does: the gradient's support is the field, clipped at the borders.
    model = ones_model(size)
    fields = filters.receptive_fields(model)
    image = tf.ones((1, *size, 1))
    _, h, w, _ = model.output.shape
    for row, col in [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (1, w - 2)]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            unit = model(image)[0, row, col, 0]
        support = np.argwhere(np.asarray(tape.gradient(unit, image))[0, :, :, 0] != 0)
        top, bottom, left, right = fields["valid"].box(row, col, *size)
        assert (support.min(axis=0).tolist(), support.max(axis=0).tolist()) == (
            [top, left],
            [bottom - 1, right - 1],
        ), (row, col)


def pattern_model() -> keras.Model:
    """Layer "detect" fires on a 3x3 bright cross in the red channel; later layers pass the
    response on (stride, pooling, averaging), so the strongest deep unit sits over the cross."""
    inputs = keras.Input((32, 32, 3))
    detect = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="detect")
    x = detect(inputs)
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    smooth = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="smooth")
    x = smooth(x)
    model = keras.Model(inputs, x)
    cross = np.array([[-1, 1, -1], [1, 1, 1], [-1, 1, -1]], dtype="float32")
    kernel = np.zeros((3, 3, 3, 1), dtype="float32")
    kernel[..., 0, 0] = cross  # red channel only
    detect.set_weights([kernel, np.array([-4.0], dtype="float32")])  # only a full cross passes
    model.get_layer("down").set_weights([np.full((3, 3, 1, 1), 1 / 9, "float32"), np.zeros(1)])
    weights = np.full((3, 3, 1, 1), 0.05, "float32")
    weights[1, 1] = 1.0
    smooth.set_weights([weights, np.zeros(1, "float32")])
    return model


def plant(image: np.ndarray, row: int, col: int) -> None:
    for dr, dc in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]:
        image[row + dr, col + dc, 0] = 255


def test_top_patch_contains_the_planted_pattern() -> None:
    model = pattern_model()
    fields = filters.receptive_fields(model)
    depth = filters.Depth(1, "smooth", fields["smooth"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, size=(6, 32, 32, 3)).astype("uint8")  # dim noise
    where = {2: (20, 9), 4: (3, 28), 5: (30, 1)}  # image -> cross centre (near borders too)
    for i, (row, col) in where.items():
        plant(images[i], row, col)
    features = filters.feature_model(model, ["smooth"])
    [[patches]] = filters.top_patches(features, images, [depth], [[0]], top=3)
    assert sorted(p.image for p in patches) == sorted(where)
    # Batches of two images (image indices offset by each batch's start): the same patches,
    # and the same mean activations.
    assert filters.top_patches(features, images, [depth], [[0]], top=3, batch=2) == [[patches]]
    np.testing.assert_allclose(
        filters.mean_activations(features, images, batch=4)[0],
        filters.mean_activations(features, images, batch=32)[0],
        rtol=1e-12,
    )
    for p in patches:
        top, bottom, left, right = p.box
        row, col = where[p.image]
        assert top <= row - 1 and row + 1 < bottom, (p, row)
        assert left <= col - 1 and col + 1 < right, (p, col)
        assert top >= 0 and bottom <= 32 and left >= 0 and right <= 32  # clipped
        crop = images[p.image][top:bottom, left:right, 0]
        assert (crop == 255).sum() == 5  # the whole cross is in the patch


def test_batch_size_shrinks_with_the_image_area() -> None:
    assert per_pass(64, 64) == per_pass(224, 224) == 32
    assert per_pass(512, 512) == 6  # 32 x 224^2 / 512^2 = 6.1
    assert per_pass(4000, 4000) == 1
    # A gradient pass gets 4 x 512^2 pixels: 4 images at 512 px, 20 at 224 (4 x 5.2), 32 at 64.
    assert per_pass(512, 512, pixels=GRADIENT_PIXELS) == 4
    assert per_pass(224, 224, pixels=GRADIENT_PIXELS) == 20
    assert per_pass(64, 64, pixels=GRADIENT_PIXELS) == 32


def test_model_without_five_conv_blocks_is_refused() -> None:
    model = build_model(ModelSpec("cnn_small", 32, 3))
    with pytest.raises(filters.FiltersError, match=r"has 4 conv block\(s\) \(conv1, conv2, conv3"):
        filters.choose_depths(model)


@pytest.mark.slow
def test_resnet50_fields_through_residual_blocks() -> None:
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    depths = filters.choose_depths(model)
    assert depths[0].layer == "conv1_conv"
    # published ResNet50 receptive fields: conv1 7, res2c 35, res3d 99, res4f 291, res5c 483
    assert [d.field.rows.size for d in depths] == [7, 35, 99, 291, 483]


def test_most_active_breaks_ties_by_index() -> None:
    assert filters.most_active(np.array([1.0, 3.0, 3.0, 0.5, 2.0]), 3) == [1, 2, 4]


def five_block_model(size: int = 32) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for b in range(1, 6):
        for i in (1, 2):
            x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=f"b{b}c{i}")(x)
        if b < 5:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_analyse_and_render_every_layer(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = five_block_model()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(12, 32, 32, 3)).astype("uint8")
    results = filters.analyse(model, images[:5], images, per_layer=2)
    assert [r.depth.layer for r in results] == ["b1c2", "b2c2", "b3c2", "b4c2", "b5c2"]
    for r in results:
        assert len(r.channels) == 2 and r.means[0] >= r.means[1]
        for patches in r.patches:
            assert len(patches) == filters.TOP
            assert len({p.image for p in patches}) == filters.TOP  # nine different images
            values = [p.value for p in patches]
            assert values == sorted(values, reverse=True)
    written = filters.render(tmp_path, results, images, "tiny")
    assert [p.name for p in written] == [f"layer_{k}.png" for k in range(1, 6)] + ["overview.png"]
    for path in written:
        with Image.open(path) as img:
            assert img.width > 200 and img.height > 150  # a 3x3 grid of 32 px cells or more
    summary = filters.summary(results, "tiny", [f"img{i}.png" for i in range(12)])
    assert summary["layers"][0]["receptive_field"] == [5, 5]
    assert summary["layers"][4]["filters"][0]["patches"][0]["image"].startswith("img")
