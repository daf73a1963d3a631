"""What each depth of a trained network responds to (Zeiler & Fergus): top-9 image patches.

At five depths of a model (the last conv layer of each of its first five blocks, a block
being the conv layers that share one output resolution), the filters most active on average
over the validation images are chosen; validation and test images are scanned, and for each
filter the nine images where it fires hardest give one patch each: the receptive field of the
unit that fired, mapped back to input pixels and clipped at the image borders.

Receptive fields are computed from the layer graph (kernel, stride, padding and dilation of
every conv and pooling layer; TensorFlow's ``same`` padding, which puts the odd pixel at the
end). Elementwise layers (activations, batch norm, ``Add``) take the union of their inputs'
fields, so residual networks (ResNet50) work as well as plain chains (VGG16).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from artist_id import figures
from artist_id.images import per_pass

if TYPE_CHECKING:
    import keras

DEPTHS = 5  # layers 1-5, as in the seed deck
TOP = 9  # patches per filter: a 3 x 3 grid


class FiltersError(ValueError):
    """The model cannot be analysed this way (e.g. fewer than five conv blocks)."""


@dataclass(frozen=True)
class Axis:
    """Receptive field along one axis: unit ``u`` sees input pixels ``jump*u + start`` to
    ``jump*u + end`` (inclusive, before clipping at the borders)."""

    jump: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def span(self, u: int, length: int) -> tuple[int, int]:
        """Pixels ``[lo, hi)`` that unit ``u`` sees in an input of ``length``, clipped."""
        lo = self.jump * u + self.start
        hi = self.jump * u + self.end + 1
        return max(lo, 0), min(hi, length)

    def through(self, kernel: int, stride: int, pad_before: int) -> Axis:
        """The field after a window of ``kernel`` (dilated size), ``stride``, ``pad_before``."""
        return Axis(
            self.jump * stride,
            self.start - self.jump * pad_before,
            self.end + self.jump * (kernel - 1 - pad_before),
        )


@dataclass(frozen=True)
class Field:
    rows: Axis
    cols: Axis

    def box(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` (half-open) of unit ``(row, col)``, clipped."""
        top, bottom = self.rows.span(row, height)
        left, right = self.cols.span(col, width)
        return top, bottom, left, right


IDENTITY = Field(Axis(1, 0, 0), Axis(1, 0, 0))
# Layers that move data between positions; every other layer with a spatial output must be
# elementwise per position (activations, normalisation, Add, Concatenate, dropout, ...).
_WINDOWED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
_UNSUPPORTED = ("Resizing", "UpSampling2D", "Conv2DTranspose", "Cropping2D", "Reshape")


def _pairs(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def same_padding(length: int, kernel: int, stride: int) -> int:
    """Padding TensorFlow adds *before* an axis of ``length`` for ``padding="same"``.

    The total is whatever makes ``ceil(length / stride)`` outputs; when it is odd the extra
    pixel goes *after*, so with stride 2 on an even length the window starts at pixel 0.
    """
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2


def _parents(layer_config: dict[str, Any]) -> list[str]:
    """Names of the layers feeding a layer, read from its serialised config."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            history = node.get("config", {}).get("keras_history") if "config" in node else None
            if history:
                found.append(str(history[0]))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(layer_config.get("inbound_nodes", []))
    return found


def receptive_fields(model: keras.Model) -> dict[str, Field]:
    """The receptive field of every layer with a spatial (4-D) output, by layer name."""
    config = {c["name"]: c for c in model.get_config()["layers"]}
    fields: dict[str, Field] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        parents = [p for p in _parents(config[layer.name]) if p in fields]
        if not parents:
            if kind == "InputLayer" or not config[layer.name].get("inbound_nodes"):
                fields[layer.name] = IDENTITY
            continue
        shape = tuple(layer.output.shape)
        if len(shape) != 4:
            continue  # pooled / flattened: no positions any more
        if kind in _UNSUPPORTED:
            raise FiltersError(
                f"layer {layer.name!r} ({kind}) changes the pixel grid; receptive fields "
                "through it are not supported"
            )
        inputs = [fields[p] for p in parents]
        if len({(f.rows.jump, f.cols.jump) for f in inputs}) != 1:
            raise FiltersError(f"layer {layer.name!r} merges inputs of different resolutions")
        merged = Field(
            Axis(
                inputs[0].rows.jump,
                min(f.rows.start for f in inputs),
                max(f.rows.end for f in inputs),
            ),
            Axis(
                inputs[0].cols.jump,
                min(f.cols.start for f in inputs),
                max(f.cols.end for f in inputs),
            ),
        )
        fields[layer.name] = _through(layer, kind, merged)
    return fields


def _through(layer: Any, kind: str, field: Field) -> Field:
    if kind == "ZeroPadding2D":
        (top, _), (left, _) = layer.padding
        return Field(field.rows.through(1, 1, top), field.cols.through(1, 1, left))
    if kind not in _WINDOWED:
        return field
    if "Pooling" in kind:
        kernel, stride, dilation = _pairs(layer.pool_size), _pairs(layer.strides), (1, 1)
    else:
        kernel, stride = _pairs(layer.kernel_size), _pairs(layer.strides)
        dilation = _pairs(layer.dilation_rate)
    in_shape = tuple(layer.input.shape)
    axes = []
    for i, axis in enumerate((field.rows, field.cols)):
        k = dilation[i] * (kernel[i] - 1) + 1
        pad = 0
        if layer.padding == "same":
            length = in_shape[1 + i]
            if length is None:
                raise FiltersError(f"{layer.name}: 'same' padding needs a fixed input size")
            pad = same_padding(int(length), k, stride[i])
        axes.append(axis.through(k, stride[i], pad))
    return Field(axes[0], axes[1])


@dataclass(frozen=True)
class Depth:
    """One analysed depth: layer ``index`` (1-5) and the conv layer that stands for it."""

    index: int
    layer: str
    field: Field


def choose_depths(model: keras.Model, depths: int = DEPTHS) -> list[Depth]:
    """The last conv layer of each of the model's first ``depths`` blocks.

    A block is the conv layers that share one output resolution (one jump): VGG16 gives
    block1_conv2, block2_conv2, block3_conv3, block4_conv3, block5_conv3. A model with fewer
    blocks is a :class:`FiltersError`.
    """
    import keras

    fields = receptive_fields(model)
    last_by_jump: dict[tuple[int, int], str] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name in fields:
            f = fields[layer.name]
            last_by_jump[(f.rows.jump, f.cols.jump)] = layer.name
    blocks = [last_by_jump[j] for j in sorted(last_by_jump)]
    if len(blocks) < depths:
        raise FiltersError(
            f"model {model.name!r} has {len(blocks)} conv block(s) ({', '.join(blocks)}), "
            f"the filters stage needs {depths}: choose a model with {depths} blocks such as "
            "vgg16, style_stats or resnet50 (filters.model)"
        )
    return [Depth(i, name, fields[name]) for i, name in enumerate(blocks[:depths], start=1)]


@dataclass(frozen=True)
class Patch:
    image: int  # index into the scanned images
    value: float  # the unit's activation
    row: int  # unit position in the feature map
    col: int
    box: tuple[int, int, int, int]  # (top, bottom, left, right) in input pixels, half-open


def _batches(images: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(images), size):
        yield start, images[start : start + size]


def feature_model(model: keras.Model, layers: Sequence[str]) -> keras.Model:
    import keras

    return keras.Model(model.input, [model.get_layer(n).output for n in layers])


def mean_activations(
    features: keras.Model, images: np.ndarray, batch: int = 32
) -> list[np.ndarray]:
    """Per output of ``features``: each channel's activation averaged over images and positions."""
    sums: list[np.ndarray] | None = None
    for _, chunk in _batches(images, batch):
        outs = features(chunk.astype("float32"), training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        part = [np.asarray(o, dtype="float64").sum(axis=(0, 1, 2)) for o in outs]
        sums = part if sums is None else [s + p for s, p in zip(sums, part, strict=True)]
    if sums is None:
        raise FiltersError("no images to compute activations on")
    positions = [float(o.shape[1] * o.shape[2]) for o in features.outputs]
    return [s / (len(images) * n) for s, n in zip(sums, positions, strict=True)]


def most_active(means: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest means, largest first; ties go to the lower index."""
    order = np.lexsort((np.arange(len(means)), -means))
    return [int(i) for i in order[:k]]


def top_patches(
    features: keras.Model,
    images: np.ndarray,
    depths: Sequence[Depth],
    channels: Sequence[Sequence[int]],
    top: int = TOP,
    batch: int = 32,
) -> list[list[list[Patch]]]:
    """For each depth and chosen channel: the ``top`` images where it fires hardest.

    One patch per image (its strongest unit), images ranked by that activation (ties: the
    earlier image). Returns ``patches[depth][channel] -> list of Patch``.
    """
    height, width = images.shape[1:3]
    best: list[list[list[tuple[float, int, int, int]]]] = [[[] for _ in c] for c in channels]
    for start, chunk in _batches(images, batch):
        outs = features(chunk.astype("float32"), training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for d, (out, chans) in enumerate(zip(outs, channels, strict=True)):
            maps = np.asarray(out)[..., list(chans)]  # (b, h, w, k)
            b, h, w, k = maps.shape
            flat = maps.reshape(b, h * w, k)
            where = flat.argmax(axis=1)  # first maximum: deterministic
            values = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
            for c in range(k):
                for i in range(b):
                    row, col = divmod(int(where[i, c]), w)
                    best[d][c].append((float(values[i, c]), start + i, row, col))
    result = []
    for d, depth in enumerate(depths):
        per_channel = []
        for entries in best[d]:
            ranked = sorted(entries, key=lambda e: (-e[0], e[1]))[:top]
            per_channel.append(
                [Patch(i, v, r, c, depth.field.box(r, c, height, width)) for v, i, r, c in ranked]
            )
        result.append(per_channel)
    return result


@dataclass(frozen=True)
class LayerResult:
    depth: Depth
    channels: list[int]  # chosen filters, most active first
    means: list[float]  # their mean activation on the validation images
    patches: list[list[Patch]]  # per chosen filter, its top patches


def analyse(
    model: keras.Model, val: np.ndarray, scanned: np.ndarray, per_layer: int
) -> list[LayerResult]:
    """Choose ``per_layer`` filters per depth on ``val``; their top patches in ``scanned``."""
    depths = choose_depths(model)
    features = feature_model(model, [d.layer for d in depths])
    batch = per_pass(*val.shape[1:3])
    means = mean_activations(features, val, batch)
    channels = [most_active(m, per_layer) for m in means]
    patches = top_patches(features, scanned, depths, channels, batch=batch)
    return [
        LayerResult(d, chans, [float(m[c]) for c in chans], p)
        for d, m, chans, p in zip(depths, means, channels, patches, strict=True)
    ]


def summary(
    results: Sequence[LayerResult], model_name: str, paths: Sequence[str]
) -> dict[str, Any]:
    """JSON-ready description of the analysis (image paths as given, values rounded)."""
    return {
        "model": model_name,
        "images_scanned": len(paths),
        "layers": [
            {
                "index": r.depth.index,
                "layer": r.depth.layer,
                "receptive_field": [r.depth.field.rows.size, r.depth.field.cols.size],
                "jump": [r.depth.field.rows.jump, r.depth.field.cols.jump],
                "filters": [
                    {
                        "filter": c,
                        "mean_activation": round(m, 6),
                        "patches": [
                            {
                                "image": paths[p.image],
                                "activation": round(p.value, 6),
                                "unit": [p.row, p.col],
                                "box": list(p.box),
                            }
                            for p in patches
                        ],
                    }
                    for c, m, patches in zip(r.channels, r.means, r.patches, strict=True)
                ],
            }
            for r in results
        ],
    }


def render(
    out: Path, results: Sequence[LayerResult], images: np.ndarray, model_name: str
) -> list[Path]:
    """``layer_<k>.png`` for every depth and ``overview.png`` in ``out``; returns the paths."""
    written = []
    overview = []
    for r in results:
        rf = r.depth.field
        mosaics = [mosaic(images, p) for p in r.patches]
        labels = [f"filter {c} (mean {m:.3g})" for c, m in zip(r.channels, r.means, strict=True)]
        path = out / f"layer_{r.depth.index}.png"
        draw_layer(
            path,
            f"{model_name} layer {r.depth.index}: {r.depth.layer}, receptive field "
            f"{rf.rows.size} x {rf.cols.size} px (clipped to the {images.shape[1]} px image)",
            mosaics,
            labels,
        )
        written.append(path)
        overview.append((f"{r.depth.index}: {r.depth.layer}\nRF {rf.rows.size} px", mosaics))
    path = out / "overview.png"
    draw_overview(path, overview)
    written.append(path)
    return written


def load_images(paths: Sequence[str | Path]) -> np.ndarray:
    """Square RGB images (as the augment stage writes them) as one uint8 batch."""
    arrays = []
    for path in paths:
        with Image.open(path) as img:
            arrays.append(np.asarray(img.convert("RGB"), dtype="uint8"))
    if len({a.shape for a in arrays}) > 1:
        raise FiltersError("the scanned images differ in size; run the augment stage again")
    return np.stack(arrays)


# ------------------------------------------------------------------------------- drawing


def mosaic(
    images: np.ndarray, patches: Sequence[Patch], cell: int = 32, gap: int = 2
) -> np.ndarray:
    """A 3 x 3 grid (for nine patches) of the patches, each scaled to ``cell`` pixels."""
    side = math.ceil(math.sqrt(TOP))
    size = side * cell + (side + 1) * gap
    canvas = np.full((size, size, 3), 255, dtype="uint8")
    for n, patch in enumerate(patches):
        top, bottom, left, right = patch.box
        crop = Image.fromarray(images[patch.image][top:bottom, left:right])
        # nearest: a 5-pixel patch should look like 5 pixels, not a blur
        resample = Image.Resampling.NEAREST if crop.width < cell else Image.Resampling.LANCZOS
        crop = crop.resize((cell, cell), resample)
        r, c = divmod(n, side)
        y, x = gap + r * (cell + gap), gap + c * (cell + gap)
        canvas[y : y + cell, x : x + cell] = np.asarray(crop)
    return canvas


def draw_layer(
    path: Path,
    title: str,
    mosaics: Sequence[np.ndarray],
    labels: Sequence[str],
    columns: int = 3,
) -> None:
    """One PNG: the 3 x 3 patch grid of every chosen filter of one layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(mosaics) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.8 * columns, 1.95 * rows + 0.45), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, mosaics, labels, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    figures.save(fig, path, dpi=72)
    plt.close(fig)


def draw_overview(
    path: Path, rows: Sequence[tuple[str, Sequence[np.ndarray]]], per_row: int = 4
) -> None:
    """Layers 1-5 one per row, the first ``per_row`` filters' grids of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.5 * per_row + 1.3, 1.55 * len(rows) + 0.3), squeeze=False
    )
    for r, (label, mosaics) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(mosaics):
                ax.imshow(mosaics[c], interpolation="nearest")
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(
        "What each depth responds to: top-9 patches of the most active filters", fontsize=9
    )
    fig.tight_layout()
    figures.save(fig, path, dpi=72)
    plt.close(fig)
