"""Training: tf.data input, class weights, early stopping, the frozen-trunk feature cache.

One entry point, :func:`train_model`, used by ``stages/train.py`` for every model of the zoo.
When a transfer model's trunk is frozen, the trunk runs once per image and only the head
trains, on the cached features (``cache_features``); the saved file is still the whole
model (trunk + head share layer objects), so evaluation and serving cannot tell.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from artist_id.config import ModelParams, TrainParams

if TYPE_CHECKING:
    from artist_id.features import FeatureSet

log = logging.getLogger(__name__)

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at module import


@dataclass(frozen=True)
class Split:
    """One split: square RGB image files (as the augment stage writes them) and labels."""

    paths: list[str]
    labels: np.ndarray  # (n,) int
    image_size: int


def load_split(index_csv: Path) -> Split:
    """Read a split's ``index.csv`` (written by the augment stage)."""
    from PIL import Image

    index = pd.read_csv(index_csv, dtype={"path": str, "label": int})
    if index.empty:
        raise ValueError(f"{index_csv} lists no images")
    with Image.open(index["path"].iloc[0]) as first:
        size = first.width
    return Split(list(index["path"]), index["label"].to_numpy(), size)


def image_dataset(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    labels: bool = True,
    padding: Padding | None = None,
) -> Any:
    """``tf.data`` over the split's files: read, decode, cache, (seeded shuffle), batch, prefetch.

    Decoding runs in parallel but ``deterministic=True`` keeps the order, so training stays
    reproducible; ``cache()`` keeps decoded images in memory after the first epoch. With
    ``padding`` (several replicas) the elements are ``(image, label, sample weight)`` and the
    split is padded to whole batches (see :class:`Padding`).
    """
    import tensorflow as tf

    size = split.image_size

    def decode(path: Any) -> Any:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(tf.cast(image, tf.float32), (size, size, 3))

    paths = tf.data.Dataset.from_tensor_slices(split.paths)
    images = paths.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    if padding is not None:
        return padding.batches(images, split.labels, batch_size, shuffle=shuffle, seed=seed)
    ds = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(split.labels)))
    if not labels:
        ds = images
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(split.paths), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def feature_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    padding: Padding | None = None,
) -> Any:
    """``tf.data`` over cached trunk features: (seeded shuffle), batch, prefetch."""
    import tensorflow as tf

    if padding is not None:
        features = tf.data.Dataset.from_tensor_slices(x)
        return padding.batches(features, y, batch_size, shuffle=shuffle, seed=seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


@dataclass(frozen=True)
class Padding:
    """Whole batches for several replicas, with sample weights that ignore the padding.

    ``tf.distribute`` splits each global batch between the replicas; a last batch smaller
    than the number of replicas leaves a replica an *empty* batch, on which TensorFlow's
    BatchNormalization fails (``Incompatible shapes: [0,32,32,3] vs. [32]``), and a split
    smaller than the number of replicas has no full batch at all. So every batch is made
    full: the split is padded with repeats of its own elements up to a multiple of the global
    batch size (itself rounded up to a multiple of the replica count), and each element
    carries a sample weight, 0 for the padding. Keras divides a batch's weighted loss by the
    batch size and averages equal-sized batches, so the real images' weights are scaled by
    ``padded / n``: the epoch's loss is then exactly the mean over the real images, and the
    weighted accuracy (``sum(w * correct) / sum(w)``) counts only them. Predictions drop the
    padded rows. ``class_weight`` is folded into the weights of the real images (Keras would
    not combine it with sample weights). Training-mode BatchNormalization does see the padded
    repeats in the last batch of an epoch: a slight reweighting of those batch statistics.
    """

    replicas: int
    class_weight: tuple[float, ...] | None = None  # per label; None = all 1

    def global_batch(self, batch_size: int) -> int:
        """``batch_size`` rounded up to a multiple of the replica count."""
        return -(-batch_size // self.replicas) * self.replicas

    def padded_length(self, n: int, batch_size: int) -> int:
        """``n`` rounded up to whole global batches."""
        b = self.global_batch(batch_size)
        return -(-n // b) * b

    def weights(self, labels: np.ndarray) -> np.ndarray:
        if self.class_weight is None:
            return np.ones(len(labels), dtype=np.float32)
        return np.asarray(self.class_weight, dtype=np.float32)[np.asarray(labels, dtype=int)]

    def batches(
        self, elements: Any, labels: np.ndarray, batch_size: int, *, shuffle: bool, seed: int
    ) -> Any:
        """``(x, y, w)`` batches of the global size; the padding comes last, with weight 0."""
        import tensorflow as tf

        n = len(labels)
        if n == 0:
            raise ValueError("cannot batch an empty split")
        padded = self.padded_length(n, batch_size)
        y = tf.data.Dataset.from_tensor_slices(np.asarray(labels))
        w = tf.data.Dataset.from_tensor_slices(self.weights(labels) * np.float32(padded / n))
        real = tf.data.Dataset.zip((elements, y, w)).cache()
        if shuffle:
            real = real.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        pad = real.repeat().take(padded - n).map(lambda x, y, w: (x, y, tf.zeros_like(w)))
        b = self.global_batch(batch_size)
        return real.concatenate(pad).batch(b, drop_remainder=True).prefetch(AUTOTUNE)


def padding_for(strategy: Any, class_weight: dict[int, float] | None = None) -> Padding | None:
    """The :class:`Padding` a multi-replica ``strategy`` needs; None for a single replica."""
    replicas = int(strategy.num_replicas_in_sync)
    if replicas <= 1:
        return None
    weights = None
    if class_weight:
        weights = tuple(float(class_weight[i]) for i in range(max(class_weight) + 1))
    return Padding(replicas, weights)


def predict(
    model: Any,
    split: Split,
    batch_size: int = 32,
    padding: Padding | None = None,
    desc: str = "predict",
) -> np.ndarray:
    """Class probabilities (or trunk features) for every image of ``split``, in index order,
    with a progress bar (``desc``) that also reads well in a log.

    ``padding``: the model was built under a multi-replica strategy (see :class:`Padding`).
    """
    from artist_id.progress import keras_callback

    if padding is None:
        ds = image_dataset(split, batch_size, labels=False)
        bar = keras_callback(len(split.paths), batch_size, desc)
        return np.asarray(model.predict(ds, verbose=0, callbacks=[bar]))
    ds = image_dataset(split, batch_size, padding=padding).map(lambda x, y, w: x)
    n = padding.padded_length(len(split.paths), batch_size)
    bar = keras_callback(n, padding.global_batch(batch_size), desc)
    return np.asarray(model.predict(ds, verbose=0, callbacks=[bar]))[: len(split.labels)]


@functools.cache
def make_strategy(name: str) -> Any:
    """``default`` (one device) or ``mirrored`` (all GPUs, else all logical CPUs).

    One strategy per name and process: a second ``MirroredStrategy`` restarts TensorFlow's
    collective instance keys, and training a second model in the same process then fails
    with "Shape mismatch in the collective instance" (seen with TF 2.21).
    """
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


def compile_for_training(model: Any, name: str, learning_rate: float, strategy: Any) -> None:
    """Compile for sparse-label classification under ``strategy`` (variables live there).

    With several replicas the batches carry sample weights (0 for padding, see
    :class:`Padding`), so accuracy is a *weighted* metric there: it then counts only real
    images. On one replica it stays the plain metric, unaffected by ``class_weight``.
    """
    accuracy = ["accuracy"]
    padded = padding_for(strategy) is not None
    with strategy.scope():
        model.compile(
            optimizer=optimizer(name, learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=None if padded else accuracy,
            weighted_metrics=accuracy if padded else None,
        )


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
    best_epoch: int  # 1-based epoch of ``history`` whose weights the model holds


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
        layers=mp.layers,  # the style_stats settings (ModelSpec rejects them elsewhere)
        stats_image_size=mp.image_size,
        l2=mp.l2,
        covariance=mp.covariance,
    )
    model = build_model(spec)
    if mp.trainable_trunk_layers < 0:
        for layer in model.layers:  # from random weights the whole network must learn
            layer.trainable = True
    return model


def frozen_trunk(name: str, mp: ModelParams) -> bool:
    from artist_id.models import TRANSFER_MODELS

    return name in TRANSFER_MODELS and mp.trainable_trunk_layers == 0


@dataclass(frozen=True)
class _Fitter:
    """What every ``fit`` of one training run shares (head phase, end to end, fine-tuning)."""

    batch_size: int
    class_weight: dict[int, float] | None
    seed: int
    callbacks: list[Any]
    verbose: int
    strategy: Any
    patience: int

    @property
    def padding(self) -> Padding | None:
        return padding_for(self.strategy, self.class_weight)

    def images(self, split: Split, *, train: bool, seed_offset: int = 0) -> Any:
        """The split's image batches; training batches are shuffled (seeded)."""
        return image_dataset(
            split,
            self.batch_size,
            shuffle=train,
            seed=self.seed + seed_offset,
            padding=self._padding(train),
        )

    def features(self, x: np.ndarray, y: np.ndarray, *, train: bool) -> Any:
        """Batches of cached trunk features; training batches are shuffled (seeded)."""
        return feature_dataset(
            x, y, self.batch_size, shuffle=train, seed=self.seed, padding=self._padding(train)
        )

    def _padding(self, train: bool) -> Padding | None:
        padding = self.padding
        if padding is None or train:
            return padding
        return Padding(padding.replicas)  # validation: class weights do not apply

    def fit(self, model: Any, train: Any, val: Any, epochs: int) -> dict[str, list[float]]:
        """``model.fit`` on ready ``tf.data`` pipelines; the history as plain floats."""
        if epochs <= 0:
            return {}
        history = model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            # with several replicas the class weights are inside the sample weights
            class_weight=self.class_weight if self.padding is None else None,
            callbacks=_callbacks(self.patience, self.callbacks),
            verbose=self.verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def schedule(tp: TrainParams, mp: ModelParams) -> tuple[int, int]:
    """Epochs and early-stopping patience: the model's own values where set (0 included)."""
    epochs = tp.epochs if mp.epochs is None else mp.epochs
    patience = tp.patience if mp.patience is None else mp.patience
    return epochs, patience


def kept_epoch(val_loss: list[float]) -> int:
    """0-based epoch whose weights ``EarlyStopping(restore_best_weights=True)`` keeps.

    Keras keeps the first epoch with the lowest ``val_loss`` (strict improvements only; the
    first epoch if every value is NaN).
    """
    values = np.asarray(val_loss, dtype=np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return 0
    return int(np.nanargmin(values))


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
    stored: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Build, compile and fit ``name``; return the best-on-validation model.

    ``use_cache`` overrides ``tp.cache_features`` (the benchmark compares both paths). With
    fine-tuning, the model keeps the best weights *of the fine-tuning phase* (early stopping
    restores within each ``fit``), and ``best_epoch`` says so.
    ``stored``: the trunk features of ``train`` and ``val`` from the feature store
    (:mod:`artist_id.features`), rows in split order; the head then trains on them and the
    trunk does not run at all.
    """

    mp = tp.model(name)
    epochs, patience = schedule(tp, mp)
    cache = tp.cache_features if use_cache is None else use_cache
    strategy = make_strategy(tp.strategy)
    with strategy.scope():
        model = build(name, mp, train.image_size, num_classes)
    if mp.optimizer != "lbfgs":  # scikit-learn fits that head: Keras never trains it
        compile_for_training(model, mp.optimizer, mp.learning_rate, strategy)
    run = _Fitter(
        batch_size=tp.batch_size,
        class_weight=class_weight,
        seed=seed,
        callbacks=callbacks or [],
        verbose=verbose,
        strategy=strategy,
        patience=patience,
    )
    start = time.perf_counter()
    use_feature_cache = cache and frozen_trunk(name, mp)
    if mp.optimizer == "lbfgs":  # config guarantees a frozen trunk and the feature cache
        f_train, f_val, head = _head_and_features(model, run, train, val, stored)
        fitted = fit_linear_head(
            head, mp.c, (f_train, train.labels), (f_val, val.labels), class_weight, run.callbacks
        )
        history, best = fitted.history, fitted.best
    elif use_feature_cache:
        history = _fit_head_on_features(model, mp, run, train, val, epochs, stored)
        best = kept_epoch(history.get("val_loss", []))
    else:
        _adapt_normalization_on_trunk(model, train, run)
        history = run.fit(
            model, run.images(train, train=True), run.images(val, train=False), epochs
        )
        best = kept_epoch(history.get("val_loss", []))
    if mp.fine_tune_layers and mp.fine_tune_epochs:
        tuned = _fine_tune(model, name, mp, run, train, val)
        if tuned:
            best = len(history.get("loss", [])) + kept_epoch(tuned.get("val_loss", []))
        history = _merge(history, tuned)
    seconds = time.perf_counter() - start
    epochs_run = len(history.get("loss", []))
    return TrainResult(model, history, seconds, use_feature_cache, epochs_run, best + 1)


def _merge(a: dict[str, list[float]], b: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: a.get(k, []) + b.get(k, []) for k in sorted(set(a) | set(b))}


def _head_and_features(
    model: Any,
    run: _Fitter,
    train: Split,
    val: Split,
    stored: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Trunk features of train and val (from the store, or one trunk pass) and the head.

    The head's ``Normalization`` (style_stats) is adapted on the training features here.
    """
    from artist_id.models import adapt_head_normalization, split_trunk_head

    with run.strategy.scope():  # Keras models bind the strategy they are created under
        trunk, head = split_trunk_head(model)
    t0 = time.perf_counter()
    if stored is not None:
        f_train, f_val = stored
        want = tuple(trunk.output.shape[1:])
        for what, f, split in (("train", f_train, train), ("val", f_val, val)):
            if f.shape != (len(split.paths), *want):
                raise ValueError(f"stored {what} features are {f.shape}, the trunk gives {want}")
    else:
        f_train = extract_features(trunk, train, run.batch_size, run.padding)
        f_val = extract_features(trunk, val, run.batch_size, run.padding)
    log.info(
        "feature %s: %d + %d images -> %s features in %.1f s",
        "store" if stored is not None else "cache",
        len(f_train),
        len(f_val),
        f_train.shape[1:],
        time.perf_counter() - t0,
    )
    if adapt_head_normalization(head, f_train):  # style_stats: standardise on TRAIN features
        log.info("head normalization adapted on %d training feature vectors", len(f_train))
    return f_train, f_val, head


def _fit_head_on_features(
    model: Any,
    mp: ModelParams,
    run: _Fitter,
    train: Split,
    val: Split,
    epochs: int,
    stored: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, list[float]]:
    """The fast path: trunk features once per image (or from the store), then the head alone."""
    f_train, f_val, head = _head_and_features(model, run, train, val, stored)
    compile_for_training(head, mp.optimizer, mp.learning_rate, run.strategy)
    return run.fit(
        head,
        run.features(f_train, train.labels, train=True),
        run.features(f_val, val.labels, train=False),
        epochs,
    )


class HeadFitError(RuntimeError):
    """scikit-learn could not fit the linear head (e.g. L-BFGS did not converge)."""


@dataclass(frozen=True)
class LinearFit:
    history: dict[str, list[float]]  # one entry per C, in the order tried
    best: int  # 0-based index of the C whose coefficients the head holds


def fit_linear_head(
    head: Any,
    c_values: Sequence[float],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    class_weight: dict[int, float] | None,
    callbacks: Sequence[Any] = (),
) -> LinearFit:
    """Fit a linear softmax head with scikit-learn's L-BFGS logistic regression.

    ``head``: features -> [Normalization, Dropout] -> ``head_probs`` (Dense, softmax), the
    ``style_stats`` head with ``dense: []``. The layers before ``head_probs`` run in inference
    mode (standardisation; dropout is the identity), one multinomial L2 logistic regression is
    fitted per ``C`` of ``c_values`` (class weights as sample weights), and the one with the
    highest validation macro-F1 (ties: the lowest validation log loss, then the first listed)
    is copied into ``head_probs``: the Keras model then computes exactly
    scikit-learn's probabilities. Unlike Adam with early stopping, the optimum is unique
    (the problem is strictly convex), so the head does not depend on the CPU or the seed.

    Each C is one step of the history, handed to ``callbacks`` as an epoch: ``loss``
    (weighted like training, as Keras reports it), ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``val_macro_f1`` and ``c``.
    """
    import keras
    from scipy.special import softmax
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, log_loss
    from threadpoolctl import threadpool_limits

    chain = [la for la in head.layers if not isinstance(la, keras.layers.InputLayer)]
    if not chain or chain[-1].name != "head_probs" or not isinstance(chain[-1], keras.layers.Dense):
        raise ValueError("fit_linear_head needs a head ending in the Dense layer 'head_probs'")
    dense = chain[-1]

    def before(x: np.ndarray) -> np.ndarray:  # the layers before head_probs, inference mode
        out = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
        for layer in chain[:-1]:
            out = layer(out, training=False)
        return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)

    x_train, x_val = before(train[0]), before(val[0])
    y_train, y_val = np.asarray(train[1]), np.asarray(val[1])
    k = int(dense.units)
    labels = np.arange(k)
    weights = (
        np.asarray([class_weight[int(y)] for y in y_train], dtype=np.float64)
        if class_weight
        else np.ones(len(y_train))
    )
    history: dict[str, list[float]] = {}
    fits: list[tuple[np.ndarray, np.ndarray]] = []
    for cb in callbacks:
        cb.set_model(head)
        cb.on_train_begin()
    for step, c in enumerate(c_values):
        model = LogisticRegression(C=float(c), max_iter=5000, tol=1e-6)
        # One BLAS thread: small problems, and threads fighting over two cores slow them down.
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            try:
                model.fit(x_train, y_train, sample_weight=weights)
            except ConvergenceWarning as exc:
                raise HeadFitError(
                    f"the linear head did not converge at C={c:g} ({exc}); use smaller c values"
                ) from exc
        kernel, bias = _softmax_weights(model, k, x_train.shape[1])
        fits.append((kernel, bias))
        p_train = softmax(x_train @ kernel + bias, axis=1)
        p_val = softmax(x_val @ kernel + bias, axis=1)
        logs = {
            "loss": float(log_loss(y_train, p_train, sample_weight=weights, labels=labels)),
            "accuracy": float(accuracy_score(y_train, p_train.argmax(1))),
            "val_loss": float(log_loss(y_val, p_val, labels=labels)),
            "val_accuracy": float(accuracy_score(y_val, p_val.argmax(1))),
            "val_macro_f1": float(
                f1_score(y_val, p_val.argmax(1), average="macro", labels=labels, zero_division=0)
            ),
            "c": float(c),
        }
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        log.info(
            "lbfgs C=%g: loss %.4f  val_loss %.4f  val_accuracy %.3f  val_macro_f1 %.3f",
            c,
            logs["loss"],
            logs["val_loss"],
            logs["val_accuracy"],
            logs["val_macro_f1"],
        )
        for cb in callbacks:
            cb.on_epoch_end(step, dict(logs))
    best = kept_c(history["val_macro_f1"], history["val_loss"])
    dense.set_weights([fits[best][0].astype("float32"), fits[best][1].astype("float32")])
    for cb in callbacks:
        cb.on_train_end()
    log.info(
        "lbfgs: kept C=%g (validation macro-F1 %.3f)", c_values[best], history["val_macro_f1"][best]
    )
    return LinearFit(history, best)


def kept_c(val_macro_f1: Sequence[float], val_loss: Sequence[float]) -> int:
    """Index of the C an lbfgs head keeps: best validation macro-F1, ties by lowest log loss.

    Macro-F1 moves in steps of one image, so on a small validation set several C often tie
    (all at 1.0 on the embedded sample); the log loss then prefers the better-calibrated fit.
    """
    order = sorted(range(len(val_macro_f1)), key=lambda i: (-val_macro_f1[i], val_loss[i], i))
    return order[0]


def _softmax_weights(model: Any, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's coefficients as a softmax Dense layer's ``(kernel (d, k), bias (k,))``.

    With two classes scikit-learn fits one logit ``w.x + b`` for class 1 (a sigmoid); the
    softmax over ``(0, w.x + b)`` gives the same probabilities. A class missing from the
    training labels keeps a logit of minus infinity's stand-in (-1e4: never predicted).
    """
    kernel = np.zeros((d, k))
    bias = np.full(k, -1e4)
    classes = np.asarray(model.classes_, dtype=int)
    coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
    if len(classes) == 2 and coef.shape[0] == 1:
        kernel[:, classes[1]], bias[classes[1]] = coef[0], intercept[0]
        bias[classes[0]] = 0.0
    else:
        kernel[:, classes] = coef.T
        bias[classes] = intercept
    return kernel, bias


def _adapt_normalization_on_trunk(model: Any, train: Split, run: _Fitter) -> None:
    """Without the feature cache, still adapt a head ``Normalization`` (style_stats) first.

    Costs one trunk pass over the training images; models without such a layer skip it.
    """
    import keras

    from artist_id.models import adapt_head_normalization, split_trunk_head

    if not any(isinstance(layer, keras.layers.Normalization) for layer in model.layers):
        return
    trunk, head = split_trunk_head(model)
    if adapt_head_normalization(head, extract_features(trunk, train, run.batch_size, run.padding)):
        log.info("head normalization adapted on %d training images", len(train.labels))


def extract_features(
    trunk: Any, split: Split, batch_size: int, padding: Padding | None = None
) -> np.ndarray:
    """Run the frozen trunk once over the split's images (inference mode)."""
    return predict(trunk, split, batch_size, padding, desc="trunk features")


def _fine_tune(
    model: Any, name: str, mp: ModelParams, run: _Fitter, train: Split, val: Split
) -> dict[str, list[float]]:
    """Phase 2: unfreeze the last ``fine_tune_layers`` conv layers, train at a lower rate."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer in convs[-mp.fine_tune_layers :]:
        layer.trainable = True
    log.info(
        "%s: fine-tuning the last %d conv layers for %d epochs at lr=%g",
        name,
        mp.fine_tune_layers,
        mp.fine_tune_epochs,
        mp.fine_tune_learning_rate,
    )
    compile_for_training(model, mp.optimizer, mp.fine_tune_learning_rate, run.strategy)
    return run.fit(
        model,
        run.images(train, train=True, seed_offset=1),
        run.images(val, train=False),
        mp.fine_tune_epochs,
    )


def predict_from_store(
    model: Any, fs: FeatureSet, paths: Sequence[str], image_size: int, check: int = 4
) -> np.ndarray:
    """Probabilities of a frozen-trunk ``model`` from stored features: its head alone.

    The first ``check`` images also go through the whole model; if the two disagree (a store
    computed with other weights, a model whose trunk was fine-tuned) this raises
    :class:`FeatureStoreError` instead of reporting metrics of a different model.
    """
    from artist_id.features import CHECK_TOLERANCE, FeatureStoreError
    from artist_id.models import split_trunk_head

    _, head = split_trunk_head(model)
    proba = np.asarray(head.predict(fs.rows(paths), batch_size=256, verbose=0))
    k = min(check, len(paths))
    if k:
        sample = Split(list(paths[:k]), np.zeros(k, dtype=int), image_size)
        full = predict(model, sample, batch_size=k, desc="store check")
        gap = float(np.max(np.abs(full - proba[:k])))
        if gap > CHECK_TOLERANCE:
            raise FeatureStoreError(
                f"{fs.name}: the whole model and its head on stored features disagree by {gap:.2g} "
                f"on {paths[0]}: the store is stale (run `dvc repro features`)"
            )
    return proba
