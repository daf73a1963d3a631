"""Training: tf.data input, class weights, early stopping, the frozen-trunk feature cache.

One entry point, :func:`train_model`, used by ``stages/train.py`` for every model of the zoo.
When a transfer model's trunk is frozen, the trunk runs once per image and only the head
trains, on the cached features (``cache_features``); the saved file is still the whole
model (trunk + head share layer objects), so evaluation and serving cannot tell.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artist_id.config import ModelParams, TrainParams

log = logging.getLogger(__name__)

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at module import


@dataclass(frozen=True)
class Split:
    """One split's images as arrays (small enough to hold in memory) plus labels."""

    images: np.ndarray  # (n, s, s, 3) uint8
    labels: np.ndarray  # (n,) int
    paths: list[str]


def load_split(index_csv: Path) -> Split:
    """Read a split written by the augment stage (PNG files listed in ``index.csv``)."""
    from PIL import Image

    index = pd.read_csv(index_csv, dtype={"path": str, "label": int})
    arrays = []
    for path in index["path"]:
        with Image.open(path) as img:
            arrays.append(np.asarray(img.convert("RGB"), dtype="uint8"))
    if not arrays:
        raise ValueError(f"{index_csv} lists no images")
    return Split(np.stack(arrays), index["label"].to_numpy(), list(index["path"]))


def dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int
) -> Any:
    """A ``tf.data`` pipeline: (optionally) seeded shuffle, batch, cache, prefetch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def make_strategy(name: str) -> Any:
    """``default`` (one device) or ``mirrored`` (all GPUs, else all logical CPUs)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    log.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices=devices)


def optimizer(name: str, learning_rate: float) -> Any:
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def _callbacks(patience: int, extra: list[Any]) -> list[Any]:
    import keras

    class LearningRateLogger(keras.callbacks.Callback):
        """Put the current learning rate into the epoch logs (dvclive plots it)."""

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None:
                logs["learning_rate"] = float(
                    keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
                )

    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, patience // 2), verbose=0
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True, verbose=0
        ),
        LearningRateLogger(),
        *extra,
    ]


@dataclass(frozen=True)
class TrainResult:
    model: Any  # keras.Model
    history: dict[str, list[float]]
    seconds: float
    used_feature_cache: bool
    epochs_run: int


def build(name: str, mp: ModelParams, image_size: int, num_classes: int) -> Any:
    """The zoo model for ``name`` with this recipe's weights and trainable trunk."""
    from artist_id.models import ModelSpec, build_model

    spec = ModelSpec(
        name=name,
        image_size=image_size,
        num_classes=num_classes,
        weights=mp.weights,
        dense=mp.dense,
        dropout=mp.dropout,
        trainable_trunk_layers=max(0, mp.trainable_trunk_layers),
        # style_stats settings; getattr so this also runs with a ModelParams without them
        layers=tuple(getattr(mp, "layers", ())),
        stats_image_size=getattr(mp, "image_size", None),
        l2=float(getattr(mp, "l2", 0.0)),
    )
    model = build_model(spec)
    if mp.trainable_trunk_layers < 0:
        for layer in model.layers:  # from random weights the whole network must learn
            layer.trainable = True
    return model


def frozen_trunk(name: str, mp: ModelParams) -> bool:
    from artist_id.models import TRANSFER_MODELS

    return name in TRANSFER_MODELS and mp.trainable_trunk_layers == 0


def _fit(
    model: Any,
    train: Any,
    val: Any,
    *,
    epochs: int,
    class_weight: dict[int, float] | None,
    callbacks: list[Any],
    verbose: int,
) -> dict[str, list[float]]:
    if epochs <= 0:
        return {}
    history = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train_model(
    name: str,
    tp: TrainParams,
    train: Split,
    val: Split,
    num_classes: int,
    class_weight: dict[int, float] | None,
    *,
    seed: int,
    callbacks: list[Any] | None = None,
    verbose: int = 2,
    use_cache: bool | None = None,
) -> TrainResult:
    """Build, compile and fit ``name``; return the best-on-validation model.

    ``use_cache`` overrides ``tp.cache_features`` (the benchmark compares both paths).
    """
    import keras

    mp = tp.model(name)
    image_size = int(train.images.shape[1])
    cache = tp.cache_features if use_cache is None else use_cache
    strategy = make_strategy(tp.strategy)
    with strategy.scope():
        model = build(name, mp, image_size, num_classes)
        model.compile(
            optimizer=optimizer(mp.optimizer, mp.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    extra = callbacks or []
    start = time.perf_counter()
    use_feature_cache = cache and frozen_trunk(name, mp)
    if use_feature_cache:
        history = _fit_head_on_features(
            model, tp, train, val, class_weight, seed=seed, callbacks=extra, verbose=verbose,
            strategy=strategy, learning_rate=mp.learning_rate, opt=mp.optimizer,
        )
    else:
        _adapt_normalization_on_trunk(model, train, tp.batch_size)
        history = _fit(
            model,
            dataset(train.images, train.labels, tp.batch_size, shuffle=True, seed=seed),
            dataset(val.images, val.labels, tp.batch_size, shuffle=False, seed=seed),
            epochs=tp.epochs,
            class_weight=class_weight,
            callbacks=_callbacks(tp.patience, extra),
            verbose=verbose,
        )
    if mp.fine_tune_layers and mp.fine_tune_epochs:
        history = _merge(history, _fine_tune(model, name, mp, tp, train, val, class_weight,
                                             seed=seed, callbacks=extra, verbose=verbose,
                                             strategy=strategy))
    seconds = time.perf_counter() - start
    epochs_run = len(history.get("loss", []))
    del keras
    return TrainResult(model, history, seconds, use_feature_cache, epochs_run)


def _merge(a: dict[str, list[float]], b: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: a.get(k, []) + b.get(k, []) for k in sorted(set(a) | set(b))}


def _fit_head_on_features(
    model: Any,
    tp: TrainParams,
    train: Split,
    val: Split,
    class_weight: dict[int, float] | None,
    *,
    seed: int,
    callbacks: list[Any],
    verbose: int,
    strategy: Any,
    learning_rate: float,
    opt: str,
) -> dict[str, list[float]]:
    """The fast path: trunk features once per image, then many epochs of the head alone."""
    from artist_id.models import adapt_head_normalization, split_trunk_head

    trunk, head = split_trunk_head(model)
    t0 = time.perf_counter()
    f_train = extract_features(trunk, train.images, tp.batch_size)
    f_val = extract_features(trunk, val.images, tp.batch_size)
    log.info(
        "feature cache: %d + %d images -> %s features in %.1f s",
        len(f_train), len(f_val), f_train.shape[1:], time.perf_counter() - t0,
    )
    if adapt_head_normalization(head, f_train):  # style_stats: standardise on TRAIN features
        log.info("head normalization adapted on %d training feature vectors", len(f_train))
    with strategy.scope():
        head.compile(
            optimizer=optimizer(opt, learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return _fit(
        head,
        dataset(f_train, train.labels, tp.batch_size, shuffle=True, seed=seed),
        dataset(f_val, val.labels, tp.batch_size, shuffle=False, seed=seed),
        epochs=tp.epochs,
        class_weight=class_weight,
        callbacks=_callbacks(tp.patience, callbacks),
        verbose=verbose,
    )


def _adapt_normalization_on_trunk(model: Any, train: Split, batch_size: int) -> None:
    """Without the feature cache, still adapt a head ``Normalization`` (style_stats) first.

    Costs one trunk pass over the training images; models without such a layer skip it.
    """
    import keras

    from artist_id.models import adapt_head_normalization, split_trunk_head

    if not any(isinstance(layer, keras.layers.Normalization) for layer in model.layers):
        return
    trunk, head = split_trunk_head(model)
    if adapt_head_normalization(head, extract_features(trunk, train.images, batch_size)):
        log.info("head normalization adapted on %d training images", len(train.labels))


def extract_features(trunk: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Run the frozen trunk once over ``images`` (inference mode)."""
    return np.asarray(trunk.predict(images.astype("float32"), batch_size=batch_size, verbose=0))


def _fine_tune(
    model: Any,
    name: str,
    mp: ModelParams,
    tp: TrainParams,
    train: Split,
    val: Split,
    class_weight: dict[int, float] | None,
    *,
    seed: int,
    callbacks: list[Any],
    verbose: int,
    strategy: Any,
) -> dict[str, list[float]]:
    """Phase 2: unfreeze the last ``fine_tune_layers`` conv layers, train at a lower rate."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer in convs[-mp.fine_tune_layers :]:
        layer.trainable = True
    log.info(
        "%s: fine-tuning the last %d conv layers for %d epochs at lr=%g",
        name, mp.fine_tune_layers, mp.fine_tune_epochs, mp.fine_tune_learning_rate,
    )
    with strategy.scope():
        model.compile(
            optimizer=optimizer(mp.optimizer, mp.fine_tune_learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return _fit(
        model,
        dataset(train.images, train.labels, tp.batch_size, shuffle=True, seed=seed + 1),
        dataset(val.images, val.labels, tp.batch_size, shuffle=False, seed=seed),
        epochs=mp.fine_tune_epochs,
        class_weight=class_weight,
        callbacks=_callbacks(tp.patience, callbacks),
        verbose=verbose,
    )


@contextlib.contextmanager
def timer() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
