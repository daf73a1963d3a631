"""Where the model looked: class-activation heat maps for every model of the zoo.

:class:`Explainer` works from a loaded ``.keras`` model alone (no training code, no params):

- Models whose head sees a spatial feature map (``cnn_small``, ``cnn_deep``, ``vgg16``,
  ``resnet50``, or any Keras model ending in a softmax ``Dense``): **Grad-CAM** (Selvaraju et
  al., 2017) on the trunk's last spatial layer, i.e. the last layer with a 4-D output that is
  not a pooling or dropout layer (``conv4_bn``, ``conv11_bn``, ``block5_conv3``,
  ``conv5_block3_out``). Channel weights are the spatial mean of the gradient of the class
  score (the logit, before the softmax saturates) with respect to that layer's output.
- ``style_stats``, whose head sees only the per-channel mean and standard deviation of several
  VGG16 layers (:class:`artist_id.models.ChannelStats`; with ``covariance``, also the channel
  covariance of some, :class:`artist_id.models.ChannelCovariance`): Grad-CAM's channel
  weights would lose the standard deviations (the gradient of a std with respect to the
  feature map sums to zero over positions), so the map is the gradient times the activation,
  summed over the channels, at each tapped layer (HiResCAM, Draelos & Carin, 2020): summed
  over the positions it gives back the class score's dependence on that layer's means and
  standard deviations (exactly, for a linear head on the statistics alone). Every tap gets a
  map; the one shown is the tap whose statistics add most to the class score, measured by
  replacing that tap's statistics (a layer's covariance with its mean and std) with their
  training mean (the head's ``Normalization`` layer holds it).
  :attr:`Explanation.contributions` lists every tap's share, so the answer says which layer
  the map comes from and why.

Maps are ReLU'd (only evidence *for* the class), scaled to [0, 1] and upsampled (bilinear) to
the model's input size. :func:`overlay` draws one over the picture; :func:`plot_overlays` makes
the evaluate stage's sheets. The service sends batches through :meth:`Explainer.explain_array`,
whose packed float array crosses BentoML's batching (:class:`ExplanationBatch`).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from artist_id import figures

log = logging.getLogger(__name__)

GRAD_CAM = "grad-cam"
HIRES_CAM = "hires-cam"

# Layers that never hold the map: they only subsample or pass activations through.
_SKIPPED_KINDS = ("Pooling", "Dropout", "InputLayer", "Resizing", "Rescaling")

OVERLAY_SIZE = 384  # px, side of the overlay the service returns
OVERLAY_ALPHA = 0.55  # opacity of the colour at the hottest point (it fades with the heat)
OVERLAY_DIM = 0.45  # brightness kept where the heat is 0: where the model looked stands out

# A perceptually ordered dark-to-bright colour ramp ("inferno"-like), as anchor colours: a
# 256-entry lookup table is interpolated from them, so matplotlib is not needed to serve.
_RAMP = np.array(
    [
        (0, 0, 4),
        (40, 11, 84),
        (101, 21, 110),
        (159, 42, 99),
        (212, 72, 66),
        (245, 125, 21),
        (250, 193, 39),
        (252, 255, 164),
    ],
    dtype=np.float64,
)


class ExplainError(ValueError):
    """The model cannot be explained (no spatial layer, no softmax head); says why."""


@dataclass(frozen=True)
class Explanation:
    """Where the model looked for one class in one image."""

    class_index: int  # the class explained (the prediction unless asked otherwise)
    probabilities: npt.NDArray[np.float32]  # (classes,) the model's softmax output
    layer: str  # the layer the heat map comes from
    method: str  # GRAD_CAM or HIRES_CAM
    heatmap: npt.NDArray[np.float32]  # (size, size) in [0, 1], at the model's input size
    # style_stats: each tap's contribution to the class logit against the training mean
    contributions: dict[str, float] = field(default_factory=dict)

    @property
    def peak(self) -> tuple[float, float]:
        """``(x, y)`` of the hottest point, as fractions of the input's width and height."""
        h, w = self.heatmap.shape
        row, col = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return ((col + 0.5) / w, (row + 0.5) / h)


@dataclass(frozen=True)
class ExplanationBatch:
    """Explanations of a batch as arrays; packs into one float32 array per image.

    BentoML's adaptive batching splits and merges a batchable API's output along the first
    axis of one array, so everything an explanation holds goes into one row:
    ``[class, layer index, probabilities..., contributions..., heat map...]``.
    """

    classes: npt.NDArray[np.int64]  # (n,)
    layer_index: npt.NDArray[np.int64]  # (n,) into the explainer's layers
    probabilities: npt.NDArray[np.float32]  # (n, classes)
    contributions: npt.NDArray[np.float32]  # (n, layers); zeros for single-layer models
    heatmaps: npt.NDArray[np.float32]  # (n, size, size)

    def pack(self) -> npt.NDArray[np.float32]:
        n = self.classes.shape[0]
        return np.concatenate(
            [
                self.classes.reshape(n, 1).astype(np.float32),
                self.layer_index.reshape(n, 1).astype(np.float32),
                self.probabilities.astype(np.float32),
                self.contributions.astype(np.float32),
                self.heatmaps.reshape(n, -1).astype(np.float32),
            ],
            axis=1,
        )

    @classmethod
    def unpack(
        cls, packed: npt.ArrayLike, num_classes: int, num_layers: int, size: int
    ) -> ExplanationBatch:
        array = np.asarray(packed, dtype=np.float32)
        width = 2 + num_classes + num_layers + size * size
        if array.ndim != 2 or array.shape[1] != width:
            raise ExplainError(
                f"packed explanations have shape {array.shape}, expected (n, {width})"
            )
        c0, c1 = 2, 2 + num_classes
        return cls(
            classes=np.rint(array[:, 0]).astype(np.int64),
            layer_index=np.rint(array[:, 1]).astype(np.int64),
            probabilities=array[:, c0:c1],
            contributions=array[:, c1 : c1 + num_layers],
            heatmaps=array[:, c1 + num_layers :].reshape(-1, size, size),
        )

    def explanations(self, layers: Sequence[str], method: str) -> list[Explanation]:
        out = []
        for i in range(self.classes.shape[0]):
            contributions = (
                {
                    name: round(float(v), 4)
                    for name, v in zip(layers, self.contributions[i], strict=True)
                }
                if len(layers) > 1
                else {}
            )
            out.append(
                Explanation(
                    class_index=int(self.classes[i]),
                    probabilities=self.probabilities[i],
                    layer=layers[int(self.layer_index[i])],
                    method=method,
                    heatmap=self.heatmaps[i],
                    contributions=contributions,
                )
            )
        return out


# ------------------------------------------------------------------------- the model's graph


def _producer(tensor: Any) -> Any:
    """The layer that produced a symbolic tensor of a functional model."""
    return tensor._keras_history[0]


def _kind(layer: Any) -> str:
    return type(layer).__name__


# The layers of artist_id.models that reduce a feature map to statistics for the head.
_REDUCERS = ("ChannelStats", "ChannelCovariance")


def _reducers(model: Any) -> tuple[list[Any], Any]:
    """The layers reducing feature maps to the head's statistics, in the order the head's
    ``Concatenate`` lists them, and the layer whose output is that vector (``([], None)`` for
    models without them)."""
    reducers = [layer for layer in model.layers if _kind(layer) in _REDUCERS]
    if not reducers:
        return [], None
    concat = next(
        (
            layer
            for layer in model.layers
            if _kind(layer) == "Concatenate"
            and all(_kind(_producer(t)) in _REDUCERS for t in layer.input)
        ),
        None,
    )
    if concat is None:  # a single tap: its output is the feature vector
        return reducers[:1], reducers[0]
    return [_producer(t) for t in concat.input], concat


def stats_taps(model: Any) -> list[tuple[str, Any]]:
    """``(name, tensor)`` of the feature maps that ``ChannelStats`` (and ``ChannelCovariance``)
    layers reduce, each map once, in the order the head first reads it; empty for models
    without them."""
    taps: dict[str, Any] = {}
    for layer in _reducers(model)[0]:
        taps.setdefault(_producer(layer.input).name, layer.input)
    return list(taps.items())


def last_spatial_layer(model: Any) -> Any:
    """The trunk's last layer with a spatial (4-D) output, pooling and dropout excluded."""
    for layer in reversed(model.layers):
        shape = getattr(layer.output, "shape", None)
        if shape is None or len(shape) != 4:
            continue
        if any(kind in _kind(layer) for kind in _SKIPPED_KINDS):
            continue
        return layer
    raise ExplainError(
        f"model {model.name!r} has no layer with a spatial output: nothing to map back onto "
        "the image"
    )


def _softmax_dense(model: Any) -> Any:
    import keras

    final = model.layers[-1]
    activation = getattr(final, "activation", None)
    if not isinstance(final, keras.layers.Dense) or getattr(activation, "__name__", "") != (
        "softmax"
    ):
        raise ExplainError(
            f"model {model.name!r} does not end in a softmax Dense layer (found "
            f"{_kind(final)} {final.name!r}): the class score (logit) cannot be read"
        )
    return final


# ----------------------------------------------------------------------------- the explainer


class Explainer:
    """Heat maps for a loaded Keras classifier (see the module docstring for the method)."""

    def __init__(self, model: Any, *, traced: bool = True) -> None:
        """``traced``: compile the gradient pass with ``tf.function`` (a server explaining
        many batches); False runs it eagerly, cheaper for a few one-off calls (tracing the
        gradient graph of ResNet50 takes seconds)."""
        import keras
        import tensorflow as tf

        self.model = model
        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ExplainError(f"expected square RGB input (None, s, s, 3), got {shape}")
        self.size = int(shape[1])
        self.final = _softmax_dense(model)
        self.num_classes = int(self.final.units)
        taps = stats_taps(model)
        self._head: _StatsHead | None = None
        if taps:
            self.method = HIRES_CAM
            self.layers = tuple(name for name, _ in taps)
            tensors = [t for _, t in taps]
            self._head = _StatsHead(model, self.layers)
            outputs = [*tensors, self._head.features_tensor, self.final.input]
        else:
            self.method = GRAD_CAM
            target = last_spatial_layer(model)
            self.layers = (target.name,)
            outputs = [target.output, self.final.input]
        self._graph = keras.Model(model.inputs, outputs, name=f"{model.name}_explain")
        self._maps = tf.function(self._compute, reduce_retracing=True) if traced else self._compute

    # The traced function: one forward and one backward pass for the whole batch.
    def _compute(self, images: Any, wanted: Any) -> tuple[Any, ...]:
        import tensorflow as tf

        n_taps = len(self.layers)
        with tf.GradientTape() as tape:
            outputs = self._graph(images, training=False)
            acts = list(outputs[:n_taps])
            penultimate = outputs[-1]
            logits = tf.matmul(penultimate, self.final.kernel) + self.final.bias
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            classes = tf.where(wanted >= 0, wanted, predicted)
            score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
        grads = tape.gradient(score, acts)
        maps = []
        for a, g in zip(acts, grads, strict=True):
            if self.method == GRAD_CAM:
                weights = tf.reduce_mean(g, axis=(1, 2), keepdims=True)
                cam = tf.reduce_sum(weights * a, axis=-1)
            else:
                cam = tf.reduce_sum(g * a, axis=-1)
            cam = tf.nn.relu(cam)
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            cam = tf.math.divide_no_nan(cam, peak)
            resized = tf.image.resize(cam[..., None], (self.size, self.size), method="bilinear")
            maps.append(tf.clip_by_value(resized[..., 0], 0.0, 1.0))
        features = outputs[n_taps] if self._head is not None else penultimate
        return tf.stack(maps, axis=1), tf.nn.softmax(logits), classes, logits, features

    def explain_batch(
        self, images: npt.ArrayLike, classes: Sequence[int] | None = None
    ) -> ExplanationBatch:
        """Explain each image's predicted class (or ``classes[i]``, -1 = predicted)."""
        import tensorflow as tf

        x = np.asarray(images)
        if x.ndim != 4 or x.shape[1:] != (self.size, self.size, 3):
            raise ExplainError(f"expected images (n, {self.size}, {self.size}, 3), got {x.shape}")
        n = x.shape[0]
        wanted = np.full(n, -1, dtype=np.int32) if classes is None else np.asarray(classes)
        if wanted.shape != (n,) or np.any(wanted >= self.num_classes) or np.any(wanted < -1):
            raise ExplainError(f"classes must be {n} indices below {self.num_classes} (or -1)")
        maps, proba, chosen, logits, features = self._maps(
            tf.convert_to_tensor(x, dtype=tf.float32), tf.convert_to_tensor(wanted, tf.int32)
        )
        maps = maps.numpy()
        chosen = chosen.numpy().astype(np.int64)
        if self._head is not None:
            contributions = self._head.contributions(features.numpy(), logits.numpy(), chosen)
            layer_index = np.argmax(contributions, axis=1)
        else:
            contributions = np.zeros((n, 1), dtype=np.float32)
            layer_index = np.zeros(n, dtype=np.int64)
        heatmaps = maps[np.arange(n), layer_index]
        return ExplanationBatch(
            classes=chosen,
            layer_index=layer_index.astype(np.int64),
            probabilities=proba.numpy().astype(np.float32),
            contributions=contributions.astype(np.float32),
            heatmaps=heatmaps.astype(np.float32),
        )

    def explain(
        self,
        images: npt.ArrayLike,
        classes: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> list[Explanation]:
        """One :class:`Explanation` per image (see :meth:`explain_batch`).

        ``batch_size`` images per gradient pass; ``None`` sizes it from the image size
        (:func:`artist_id.images.per_pass` with the gradient budget: 4 images at 512 px, where
        a pass through VGG16 keeps about 0.5 GB of activations per image).
        """
        x = np.asarray(images)
        wanted = None if classes is None else list(classes)
        out: list[Explanation] = []
        for start, stop in self._passes(len(x), batch_size):
            part = None if wanted is None else wanted[start:stop]
            out += self.explain_batch(x[start:stop], part).explanations(self.layers, self.method)
        return out

    def explain_array(self, images: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The packed form of :meth:`explain_batch` (the service's batchable API), in passes
        of :meth:`explain`'s default size."""
        x = np.asarray(images)
        passes = self._passes(len(x), None) or [(0, 0)]  # no images: one empty pass, as before
        return np.concatenate([self.explain_batch(x[a:b]).pack() for a, b in passes])

    def _passes(self, n: int, batch_size: int | None) -> list[tuple[int, int]]:
        from artist_id.images import GRADIENT_PIXELS, per_pass

        step = max(1, batch_size or per_pass(self.size, self.size, pixels=GRADIENT_PIXELS))
        return [(start, min(n, start + step)) for start in range(0, n, step)]

    def describe(self) -> dict[str, Any]:
        """What :meth:`ExplanationBatch.unpack` needs, and what the answers mention."""
        return {
            "method": self.method,
            "layers": list(self.layers),
            "num_classes": self.num_classes,
            "size": self.size,
        }


class _StatsHead:
    """The head of a ``style_stats`` model, run on edited statistics to weigh each tap."""

    def __init__(self, model: Any, taps: Sequence[str]) -> None:
        import keras

        reducers, boundary = _reducers(model)
        self.features_tensor = boundary.output
        layers = model.layers
        self.chain = layers[layers.index(boundary) + 1 : -1]
        self.final = layers[-1]
        first = self.chain[0] if self.chain else None
        width = int(boundary.output.shape[-1])
        if isinstance(first, keras.layers.Normalization) and first.mean is not None:
            self.baseline = np.asarray(keras.ops.convert_to_numpy(first.mean)).reshape(-1)
        else:
            self.baseline = np.zeros(width, dtype=np.float32)
        # Each reducer's numbers, concatenated in order, belong to the map it reduces: a
        # layer's mean/std and its covariance (when the model reads both) are one tap.
        columns: dict[str, list[int]] = {tap: [] for tap in taps}
        start = 0
        for layer in reducers:
            stop = start + int(layer.output.shape[-1])
            columns[_producer(layer.input).name] += range(start, stop)
            start = stop
        if start != width:
            raise ExplainError(f"statistics of width {start} do not match features {width}")
        self.slices = [np.array(columns[tap], dtype=np.int64) for tap in taps]

    def logits(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import keras

        x: Any = features
        for layer in self.chain:
            x = layer(x, training=False)
        x = keras.ops.convert_to_numpy(x)
        kernel = keras.ops.convert_to_numpy(self.final.kernel)
        bias = keras.ops.convert_to_numpy(self.final.bias)
        return np.asarray(x @ kernel + bias, dtype=np.float32)

    def contributions(
        self, features: npt.NDArray[np.float32], logits: npt.NDArray[np.float32], chosen: np.ndarray
    ) -> npt.NDArray[np.float32]:
        """(n, taps): the class logit minus the logit with that tap's statistics at the mean."""
        n = features.shape[0]
        rows = np.arange(n)
        out = np.zeros((n, len(self.slices)), dtype=np.float32)
        for j, part in enumerate(self.slices):
            edited = features.copy()
            edited[:, part] = self.baseline[part]
            out[:, j] = logits[rows, chosen] - self.logits(edited)[rows, chosen]
        return out


# ---------------------------------------------------------------------------------- drawing


def colour_lut() -> npt.NDArray[np.uint8]:
    """(256, 3) uint8: the heat colour ramp, dark (0) to bright (1)."""
    positions = np.linspace(0.0, 1.0, len(_RAMP))
    t = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(t, positions, _RAMP[:, c]) for c in range(3)], axis=1)
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


_LUT = colour_lut()


def square_crop(img: Image.Image) -> Image.Image:
    """The centred square :func:`artist_id.images.fit_square` feeds the model, uncropped size."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def overlay(
    img: Image.Image,
    heatmap: npt.ArrayLike,
    size: int = OVERLAY_SIZE,
    alpha: float = OVERLAY_ALPHA,
    dim: float = OVERLAY_DIM,
) -> Image.Image:
    """The heat map over the part of ``img`` the model saw (its centred square), ``size`` px.

    Cold regions are dimmed to ``dim`` of their brightness and hot ones tinted with the colour
    ramp (opacity up to ``alpha``), so the picture stays readable under the map.
    """
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if heat.ndim != 2:
        raise ExplainError(f"heatmap must be 2-D, got shape {heat.shape}")
    base = square_crop(img.convert("RGB")).resize((size, size), Image.Resampling.LANCZOS)
    big = Image.fromarray(heat, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    h = np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)
    colour = _LUT[np.rint(h * 255).astype(np.uint8)].astype(np.float32)
    light = (dim + (1.0 - dim) * np.sqrt(h))[..., None]
    a = (alpha * h)[..., None]
    mixed = (1.0 - a) * light * np.asarray(base, dtype=np.float32) + a * colour
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8), mode="RGB")


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding (no metadata): the overlay the service sends."""
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


@dataclass(frozen=True)
class SheetItem:
    """One cell of an overlay sheet."""

    image_path: str
    explanation: Explanation
    title: str


def plot_overlays(items: Sequence[SheetItem], path: Path, title: str, columns: int = 4) -> int:
    """A grid of overlays (picture | heat map) with titles; returns the number of cells."""
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    if not items:
        fig = Figure(figsize=(5, 1.6), layout="constrained")
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
        fig.suptitle(title, fontsize=11)
        figures.save(fig, path)
        return 0
    cols = min(columns, len(items))
    rows = math.ceil(len(items) / cols)
    fig = Figure(figsize=(2.7 * cols, 3.0 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, item in zip(axes, items, strict=False):
        with Image.open(item.image_path) as im:
            shown = overlay(im, item.explanation.heatmap, size=160)
        ax.imshow(np.asarray(shown), interpolation="none")
        ax.set_title(item.title, fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    figures.save(fig, path)
    return len(items)


def pick_examples(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, mistakes: int, correct_per_class: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Indices to explain: the ``mistakes`` most confident wrong answers (most confident
    first), and the ``correct_per_class`` most confident right answers of each true class (by
    class, then confidence). Confidence is the predicted class's probability; ties keep the
    input order."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    predicted = p.argmax(axis=1)
    confidence = p.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    wrong = order[t[order] != predicted[order]][: max(mistakes, 0)]
    right = [
        order[(t[order] == predicted[order]) & (t[order] == c)][: max(correct_per_class, 0)]
        for c in range(p.shape[1])
    ]
    return wrong.astype(np.int64), np.concatenate([wrong[:0], *right]).astype(np.int64)


def explain_sheets(
    explainer: Explainer,
    paths: Sequence[str],
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    out_dir: Path,
    mistakes: int,
    correct_per_class: int,
) -> dict[str, int]:
    """``explain_mistakes.png`` and ``explain_correct.png`` in ``out_dir``; returns the counts.

    ``paths`` are the model-input images (the augment stage's squares); each overlay explains
    the predicted class and its title names the true and predicted artists and the layer.
    """
    t = np.asarray(y_true, dtype=np.int64)
    wrong, right = pick_examples(t, proba, mistakes, correct_per_class)
    chosen = np.concatenate([wrong, right])
    found: list[Explanation] = []
    if chosen.size:  # one gradient pass for both sheets
        x = np.stack([np.asarray(Image.open(paths[i]).convert("RGB"), np.uint8) for i in chosen])
        found = explainer.explain(x)
    counts = {}
    for name, part, what in (
        ("explain_mistakes", slice(0, wrong.size), "most confident mistakes"),
        (
            "explain_correct",
            slice(wrong.size, None),
            f"most confident right answers ({correct_per_class} per class)",
        ),
    ):
        items = []
        for i, e in zip(chosen[part], found[part], strict=True):
            title = (
                f"true: {classes[t[i]]}\npred: {classes[e.class_index]} "
                f"({float(e.probabilities[e.class_index]):.2f})\nmap: {e.layer}"
            )
            items.append(SheetItem(paths[i], e, title))
        counts[name] = plot_overlays(
            items, out_dir / f"{name}.png", f"Where the model looked ({explainer.method}): {what}"
        )
    return counts
