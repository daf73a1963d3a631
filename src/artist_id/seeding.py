"""The one seeding helper: Python, NumPy and TensorFlow seeds plus deterministic ops."""

from __future__ import annotations

import os


def seed_everything(seed: int) -> None:
    """Seed every generator and make TensorFlow ops deterministic (CPU).

    ``keras.utils.set_random_seed`` seeds Python, NumPy and the backend; op determinism makes
    TensorFlow pick deterministic kernels, so the same params give byte-identical results.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
