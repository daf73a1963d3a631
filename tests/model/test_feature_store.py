"""The store's one-pass VGG16 gives exactly what each model's own trunk gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artist_id import features as fx
from artist_id.features import Consumer, FeatureStoreError, ImageRef
from artist_id.models import ModelSpec, build_model, build_tap_extractor, split_trunk_head
from artist_id.training import Split, predict, predict_from_store

pytestmark = pytest.mark.slow

SIZE = 32
STYLE = ("block1_conv2", "block3_conv3", "block5_conv3")


def images(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def style_model() -> object:
    return build_model(ModelSpec("style_stats", SIZE, 3, weights="hed-bsds500", layers=STYLE))


def test_one_extractor_gives_both_models_trunk_outputs(style_model: object) -> None:
    vgg = build_model(ModelSpec("vgg16", SIZE, 3, weights="hed-bsds500"))
    style_taps = fx.model_taps("style_stats", STYLE)
    assert style_taps is not None
    taps = (*style_taps, fx.GAP_TAP)
    extractor = build_tap_extractor("hed-bsds500", SIZE, SIZE, taps)
    x = images(3)
    both = np.asarray(extractor(x, training=False))
    style_trunk, _ = split_trunk_head(style_model)
    vgg_trunk, _ = split_trunk_head(vgg)
    ss = np.asarray(style_trunk(x, training=False))
    gap = np.asarray(vgg_trunk(x, training=False))
    assert both.shape == (3, ss.shape[1] + 512) and gap.shape == (3, 512)
    np.testing.assert_allclose(both[:, : ss.shape[1]], ss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(both[:, ss.shape[1] :], gap, rtol=1e-5, atol=1e-5)


def test_a_working_size_resizes_inside_like_the_model() -> None:
    model = build_model(
        ModelSpec("style_stats", SIZE, 3, weights="hed-bsds500", layers=STYLE, stats_image_size=48)
    )
    taps = fx.model_taps("style_stats", STYLE)
    assert taps is not None
    extractor = build_tap_extractor("hed-bsds500", SIZE, 48, taps)
    trunk, _ = split_trunk_head(model)
    x = images(2)
    np.testing.assert_allclose(
        np.asarray(extractor(x, training=False)),
        np.asarray(trunk(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_the_extractor_gives_the_covariance_as_the_model_does() -> None:
    covariance = ("block2_conv2", "block1_conv2")
    model = build_model(
        ModelSpec(
            "style_stats", SIZE, 3, weights="hed-bsds500", layers=STYLE, covariance=covariance
        )
    )
    taps = fx.model_taps("style_stats", STYLE, covariance)
    assert taps is not None and taps[-2:] == ("cov:block1_conv2", "cov:block2_conv2")
    # the store's extractor runs its taps in network order; a consumer's columns pick them back
    union = fx.network_order((*taps, fx.GAP_TAP))
    extractor = build_tap_extractor("hed-bsds500", SIZE, SIZE, union)
    x = images(2)
    out = np.asarray(extractor(x, training=False))
    where = Consumer("union", None, union).columns
    picked = out[:, np.concatenate([np.arange(*where[t]) for t in taps])]
    trunk, _ = split_trunk_head(model)
    np.testing.assert_allclose(picked, np.asarray(trunk(x, training=False)), rtol=1e-5, atol=1e-4)


def write_pngs(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    paths = []
    for i, array in enumerate(images(n, seed=1).astype("uint8")):
        path = folder / f"p{i}.png"
        Image.fromarray(array).save(path)
        paths.append(path.as_posix())
    return paths


def test_evaluation_from_the_store_equals_the_whole_model(
    tmp_path: Path, style_model: object
) -> None:
    paths = write_pngs(tmp_path / "img", 5)
    taps = fx.model_taps("style_stats", STYLE)
    assert taps is not None
    trunk = fx.trunk_spec("hed-bsds500", SIZE, None)
    assert trunk is not None
    refs = tuple(ImageRef(p, Path(p).stem, False) for p in paths)
    fx.build_store([Consumer("style_stats", trunk, taps, refs)], tmp_path / "store", batch_size=2)
    fs = fx.open_features("style_stats", tmp_path / "store")
    from artist_id.models import adapt_head_normalization

    _, head = split_trunk_head(style_model)
    adapt_head_normalization(head, fs.rows())  # a head with real statistics, as after training
    stored = predict_from_store(style_model, fs, paths, SIZE, check=2)
    whole = predict(style_model, Split(paths, np.zeros(5, dtype=int), SIZE))
    np.testing.assert_allclose(stored, whole, atol=1e-5)


def test_a_stale_store_is_refused(tmp_path: Path, style_model: object) -> None:
    paths = write_pngs(tmp_path / "img", 3)
    taps = fx.model_taps("style_stats", STYLE)
    assert taps is not None
    trunk = fx.trunk_spec("hed-bsds500", SIZE, None)
    assert trunk is not None
    refs = tuple(ImageRef(p, Path(p).stem, False) for p in paths)

    def wrong(trunk: object, taps: tuple[str, ...]) -> object:  # as if other weights wrote it
        width = sum(fx.tap_width(t) for t in taps)
        return lambda batch: np.full((len(batch), width), 3.0, dtype=np.float32)

    fx.build_store([Consumer("style_stats", trunk, taps, refs)], tmp_path / "s", 4, wrong)
    fs = fx.open_features("style_stats", tmp_path / "s")
    with pytest.raises(FeatureStoreError, match="stale"):
        predict_from_store(style_model, fs, paths, SIZE)
