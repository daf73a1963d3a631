"""The genre stage's statistics come from the feature store and its saved model matches them.

A tiny store of five paintings (HED weights, two taps, 32 px) is built with the features
stage's own code; the genre model built on the same trunk must give, from the image files,
what its head gives from the stored rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artist_id import features as fx
from artist_id import genre as gm
from artist_id import style_features as sf
from artist_id.models import load_model, save_model, split_trunk_head

# Listed out of network order on purpose: taps come out in network order whatever params say.
SPEC = sf.TrunkSpec(weights="hed-bsds500", layers=("block2_conv2", "block1_conv2"), image_size=32)
WIDTH = 2 * (64 + 128)


@pytest.fixture(scope="module")
def painting_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """A manifest of five raw paintings (varied shapes) and the store's ``paintings`` for it."""
    root = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    rows = []
    for i, (w, h) in enumerate([(60, 40), (32, 50), (45, 45), (80, 33), (40, 70)]):
        path = root / f"Ann_{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        rows.append({"image_id": f"Ann_{i}", "artist": "Ann", "path": path.as_posix()})
    rows.append({"image_id": "Bad_1", "artist": "Bo", "path": ""})
    manifest = pd.DataFrame(rows).assign(status=["ok"] * 5 + ["quarantined"])
    manifest_csv = root / "manifest.csv"
    manifest.to_csv(manifest_csv, index=False)
    trunk = fx.trunk_spec(SPEC.weights, SPEC.image_size, None)
    assert trunk is not None
    taps = (*(f"stats:{layer}" for layer in sf.tapped_layers(SPEC)), fx.GAP_TAP)
    consumer = fx.Consumer(fx.PAINTINGS, trunk, taps, fx.painting_images(manifest_csv))
    fx.build_store([consumer], root / "store", batch_size=2)
    return manifest, root / "store"


def test_statistics_are_the_stored_rows_of_the_trunk_on_the_service_transform(
    painting_store: tuple[pd.DataFrame, Path],
) -> None:
    manifest, store = painting_store
    got = sf.paintings_statistics(manifest, SPEC, store)
    assert list(got.index["image_id"]) == [f"Ann_{i}" for i in range(5)]  # usable rows only
    assert got.taps == ("block1_conv2", "block2_conv2")
    assert got.stats.dtype == np.float32 and got.stats.shape == (5, WIDTH)  # no block5 GAP
    # the service's transform (safe decode, centre crop, resize) through the genre trunk
    squares = np.stack([sf.load_square(p, 32) for p in got.index["path"]]).astype(np.float32)
    expected = np.asarray(sf.build_trunk(SPEC).predict(squares, verbose=0))
    np.testing.assert_allclose(got.stats, expected, rtol=1e-4, atol=1e-3)
    names = got.names
    assert len(names) == WIDTH
    assert names[0] == "block1_conv2/mean/0" and names[64] == "block1_conv2/std/0"
    assert names[128] == "block2_conv2/mean/0" and names[-1] == "block2_conv2/std/127"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (sf.TrunkSpec("hed-bsds500", ("block1_conv2",), 32), "other taps"),
        (sf.TrunkSpec("hed-bsds500", SPEC.layers, 32, 48), "another trunk"),
        (sf.TrunkSpec("none", SPEC.layers, 32), "no random trunk"),
    ],
)
def test_a_store_of_another_trunk_is_refused(
    painting_store: tuple[pd.DataFrame, Path], spec: sf.TrunkSpec, message: str
) -> None:
    manifest, store = painting_store
    with pytest.raises(sf.FeaturesError, match=message):
        sf.paintings_statistics(manifest, spec, store)
    with pytest.raises(sf.FeaturesError, match="dvc repro features"):
        sf.paintings_statistics(manifest, SPEC, store.parent / "missing")


@pytest.fixture(scope="module")
def fitted(
    painting_store: tuple[pd.DataFrame, Path],
) -> tuple[sf.StyleFeatures, gm.LinearHead, np.ndarray]:
    """The stored statistics, a genre head fitted on them, and the five paintings as the
    service feeds them (safe decode, centre crop, resize)."""
    manifest, store = painting_store
    got = sf.paintings_statistics(manifest, SPEC, store)
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1]])
    head = gm.fit_head(got.stats, y, ["a", "a", "b", "b", "c"], c=1.0, weighting="artist")
    squares = np.stack([sf.load_square(p, 32) for p in got.index["path"]]).astype(np.float32)
    return got, head, squares


def test_genre_model_is_trunk_plus_fitted_head_and_reloads_safely(
    fitted: tuple[sf.StyleFeatures, gm.LinearHead, np.ndarray], tmp_path: Path
) -> None:
    got, head, squares = fitted
    model = gm.build_genre_model(sf.build_trunk(SPEC), head, ["A", "B"])
    expected = head.predict(got.stats)
    np.testing.assert_allclose(model.predict_on_batch(squares), expected, atol=1e-3)

    save_model(model, tmp_path / "genre.keras")
    loaded = load_model(tmp_path / "genre.keras", image_size=32, num_classes=2)  # safe mode
    proba = np.asarray(loaded.predict_on_batch(squares))
    np.testing.assert_allclose(proba, expected, atol=1e-3)
    assert not np.allclose(proba.sum(axis=1), 1.0)  # sigmoids, not a softmax
    # it splits like every model of the zoo: the trunk's statistics, then the head
    _trunk, loaded_head = split_trunk_head(loaded)
    np.testing.assert_allclose(loaded_head.predict_on_batch(got.stats), expected, atol=1e-4)
    assert [layer.name for layer in loaded_head.layers[1:]] == ["head_norm", "head_genres"]
    with pytest.raises(gm.GenreError):
        gm.build_genre_model(sf.build_trunk(SPEC), head, ["A"])


def test_the_service_runs_one_trunk_pass_for_an_artist_and_a_genre_model_on_the_same_trunk(
    fitted: tuple[sf.StyleFeatures, gm.LinearHead, np.ndarray], tmp_path: Path
) -> None:
    from artist_id.models import build_model, shared_trunk_model

    got, head, squares = fitted
    artist = build_model(SPEC.model_spec(num_classes=3))
    _trunk, artist_head = split_trunk_head(artist)
    artist_head.get_layer("head_norm").adapt(got.stats)
    genre = gm.build_genre_model(sf.build_trunk(SPEC), head, ["A", "B"])
    for name, model in (("artist", artist), ("genre", genre)):  # as the service loads them
        save_model(model, tmp_path / f"{name}.keras")
    artist = load_model(tmp_path / "artist.keras", image_size=32, num_classes=3)
    genre = load_model(tmp_path / "genre.keras", image_size=32, num_classes=2)

    both = shared_trunk_model(artist, genre)
    assert both is not None
    # one trunk: the VGG16 convolutions appear once in the combined model
    convs = [layer for layer in both.layers if layer.name.startswith("block1_conv")]
    assert len(convs) == 2
    got_artist, got_genre = both.predict_on_batch(squares)
    np.testing.assert_allclose(got_artist, artist.predict_on_batch(squares), atol=1e-5)
    np.testing.assert_allclose(got_genre, genre.predict_on_batch(squares), atol=1e-5)

    # the same trunk with a covariance added to the artist model's statistics: two passes
    spec = SPEC.model_spec(num_classes=3)
    with_covariance = build_model(dataclasses.replace(spec, covariance=spec.style_layers[:1]))
    assert shared_trunk_model(with_covariance, genre) is None
    assert shared_trunk_model(build_model(spec), genre) is not None  # and only because of it

    # another trunk (one weight changed, or other taps): two passes, never a wrong shortcut
    conv = artist.get_layer("block1_conv1")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel, bias + 1e-3])
    assert shared_trunk_model(artist, genre) is None
    other = gm.build_genre_model(
        sf.build_trunk(sf.TrunkSpec("hed-bsds500", ("block1_conv2",), 32)),
        gm.LinearHead(np.zeros(128), np.ones(128), np.zeros((128, 2)), np.zeros(2)),
        ["A", "B"],
    )
    assert shared_trunk_model(genre, other) is None
