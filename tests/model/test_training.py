"""Training: the frozen-trunk feature cache, determinism, MirroredStrategy on two CPUs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artist_id.config import ModelParams, TrainParams
from tests.conftest import run_on_two_cpus, split_from_arrays, split_images

pytestmark = pytest.mark.slow

SIZE = 32


def tiny_params(**overrides: object) -> TrainParams:
    cnn = ModelParams(learning_rate=0.001, dense=(16, 8), dropout=0.2)
    params = TrainParams(
        models=("cnn_small", "cnn_deep", "vgg16", "resnet50", "style_stats"),
        strategy="default",
        batch_size=8,
        epochs=2,
        patience=2,
        cache_features=True,
        cnn_small=cnn,
        cnn_deep=cnn,
        vgg16=ModelParams(learning_rate=0.001, weights="none", dense=(16,)),
        resnet50=ModelParams(learning_rate=0.001, weights="none", dense=(16, 8)),
        style_stats=ModelParams(learning_rate=0.001, weights="none", l2=0.001),
    )
    return dataclasses.replace(params, **overrides)  # type: ignore[arg-type]


def tiny_split(n: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 255, size=(n, SIZE, SIZE, 3)).astype("uint8")
    images[..., 0] = np.where(labels[:, None, None] == 0, 250, images[..., 0])  # learnable
    return split_from_arrays(images, labels)


def test_feature_cache_trains_the_head_of_the_full_model(tmp_path: Path) -> None:
    import keras

    from artist_id.models import split_trunk_head
    from artist_id.seeding import seed_everything
    from artist_id.training import extract_features, train_model

    seed_everything(0)
    train, val = tiny_split(24, 1), tiny_split(9, 2)
    result = train_model("vgg16", tiny_params(), train, val, 3, None, seed=0, verbose=0)
    assert result.used_feature_cache
    model = result.model
    trunk_before = [w.copy() for w in model.get_layer("block1_conv1").get_weights()]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    trunk, head = split_trunk_head(reloaded)
    x = split_images(val)
    via_features = np.asarray(head.predict(extract_features(trunk, val, 4), verbose=0))
    full = np.asarray(reloaded.predict(x, verbose=0))
    np.testing.assert_allclose(full, via_features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, np.asarray(model.predict(x, verbose=0)), atol=1e-6)
    # the trunk stayed frozen, the head learned
    for a, b in zip(trunk_before, reloaded.get_layer("block1_conv1").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(result.history["loss"]) == 2


def test_without_cache_the_same_model_trains_end_to_end_path(tmp_path: Path) -> None:
    from artist_id.seeding import seed_everything
    from artist_id.training import train_model

    seed_everything(0)
    result = train_model(
        "vgg16",
        tiny_params(),
        tiny_split(24, 1),
        tiny_split(9, 2),
        3,
        None,
        seed=0,
        verbose=0,
        use_cache=False,
    )
    assert not result.used_feature_cache
    assert len(result.history["val_loss"]) == 2


def run_once(out: Path) -> bytes:
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from artist_id.seeding import seed_everything
    from artist_id.training import train_model

    seed_everything(123)
    live = Live(dir=str(out), save_dvc_exp=False, dvcyaml=None)
    train_model(
        "cnn_small",
        tiny_params(),
        tiny_split(24, 1),
        tiny_split(9, 2),
        3,
        {0: 1.0, 1: 2.0, 2: 0.5},
        seed=123,
        callbacks=[DVCLiveCallback(live=live)],
        verbose=0,
    )
    live.end()
    return (out / "metrics.json").read_bytes()


def test_same_params_give_identical_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # dvclive looks for a git repo from the working directory
    first = run_once(tmp_path / "a")
    second = run_once(tmp_path / "b")
    assert first == second
    metrics = json.loads(first)
    assert set(metrics) >= {"train", "eval", "step"}
    assert (tmp_path / "a/plots/metrics/train/learning_rate.tsv").is_file()


MIRRORED = """
import json
import numpy as np
from artist_id.training import make_strategy, train_model
from tests.model.test_training import tiny_params, tiny_split
strategy = make_strategy("mirrored")
result = train_model("cnn_small", tiny_params(strategy="mirrored"), tiny_split(24, 1),
                     tiny_split(9, 2), 3, None, seed=0, verbose=0)
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "epochs": len(result.history["loss"]),
                  "finite": bool(np.isfinite(result.history["loss"]).all())}))
"""


def test_mirrored_strategy_on_two_logical_cpus() -> None:
    result = run_on_two_cpus(MIRRORED)
    assert result == {"replicas": 2, "epochs": 2, "finite": True}


def test_two_phase_fine_tuning_trains_only_the_last_convs() -> None:
    from artist_id.seeding import seed_everything
    from artist_id.training import train_model

    seed_everything(0)
    vgg = ModelParams(
        learning_rate=0.001,
        weights="none",
        dense=(16,),
        fine_tune_layers=1,
        fine_tune_epochs=1,
        fine_tune_learning_rate=0.01,
    )
    params = tiny_params(vgg16=vgg)
    from artist_id.training import build

    reference = build("vgg16", vgg, SIZE, 3)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in reference.layers}
    seed_everything(0)
    result = train_model(
        "vgg16", params, tiny_split(24, 1), tiny_split(9, 2), 3, None, seed=0, verbose=0
    )
    assert len(result.history["loss"]) == 2 + 1  # head phase, then one fine-tuning epoch
    after = result.model

    def changed(name: str) -> bool:
        return any(
            not np.array_equal(a, b)
            for a, b in zip(before[name], after.get_layer(name).get_weights(), strict=True)
        )

    assert changed("block5_conv3") and changed("head_probs")
    assert not changed("block5_conv2") and not changed("block1_conv1")


def test_minus_one_makes_the_whole_trunk_trainable() -> None:
    from artist_id.training import build, frozen_trunk

    mp = ModelParams(learning_rate=0.001, weights="none", dense=(8, 4), trainable_trunk_layers=-1)
    model = build("resnet50", mp, SIZE, 3)
    assert all(layer.trainable for layer in model.layers if layer.weights)
    assert not frozen_trunk("resnet50", mp)
    frozen = build("resnet50", dataclasses.replace(mp, trainable_trunk_layers=0), SIZE, 3)
    assert not frozen.get_layer("conv1_conv").trainable
    assert frozen_trunk("resnet50", dataclasses.replace(mp, trainable_trunk_layers=0))
