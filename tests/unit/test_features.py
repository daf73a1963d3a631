"""The feature store: keys, one pass per image, reuse between runs, streaming, reading."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artist_id import features as fx
from artist_id.features import Consumer, FeatureStoreError, ImageRef, TrunkSpec

SIZE = 8


def spec(**changes: object) -> TrunkSpec:
    fields: dict[str, object] = {
        "weights": "hed-bsds500",
        "weights_sha256": "a" * 64,
        "input_size": 64,
        "working_size": 64,
    }
    fields.update(changes)
    return TrunkSpec(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ keys


def test_trunk_key_is_stable_for_the_same_trunk() -> None:
    assert spec().key == spec().key
    assert len(spec().key) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"weights_sha256": "b" * 64},  # other weights file
        {"input_size": 128},  # other model input size
        {"working_size": 128},  # other working size inside the model
        {"backbone": "resnet50"},
    ],
)
def test_trunk_key_changes_with_what_determines_the_features(change: dict[str, object]) -> None:
    assert spec(**change).key != spec().key


def test_weights_name_alone_does_not_change_the_key() -> None:
    # the same file reached through a path or the keyword gives the same numbers
    assert spec(weights="/x/hed.weights.h5").key == spec().key


def test_pixel_hash_follows_the_pixels_not_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "a.bmp")
    with Image.open(tmp_path / "a.png") as p, Image.open(tmp_path / "a.bmp") as b:
        assert fx.pixels_sha256(np.asarray(p)) == fx.pixels_sha256(np.asarray(b))
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert fx.pixels_sha256(b) != fx.pixels_sha256(a)
    # same bytes, other shape: another image
    assert fx.pixels_sha256(a.reshape(SIZE * 2, SIZE // 2, 3)) != fx.pixels_sha256(a)


def test_tap_widths_and_columns() -> None:
    assert fx.tap_width("stats:block1_conv2") == 128  # 64 means + 64 stds
    assert fx.tap_width("stats:block4_conv3") == 1024
    assert fx.tap_width("gap:block5_pool") == 512
    assert fx.tap_width("cov:block1_conv2") == 64 * 65 // 2  # the upper triangle, diagonal in
    assert fx.tap_width("cov:block3_conv3") == 32_896
    with pytest.raises(ValueError, match="unknown tap"):
        fx.tap_width("max:block1_conv2")
    c = Consumer("x", spec(), ("stats:block1_conv2", "gap:block5_pool"))
    assert c.columns == {"stats:block1_conv2": (0, 128), "gap:block5_pool": (128, 640)}
    assert c.dim == 640


def test_model_taps_match_what_the_models_read() -> None:
    assert fx.model_taps("vgg16", ()) == ("gap:block5_pool",)
    # style_stats: network order whatever the order in params
    assert fx.model_taps("style_stats", ("block3_conv3", "block1_conv2")) == (
        "stats:block1_conv2",
        "stats:block3_conv3",
    )
    # covariance after every statistic, each in network order (as the model concatenates)
    assert fx.model_taps(
        "style_stats", ("block3_conv3", "block1_conv2"), ("block3_conv3", "block2_conv2")
    ) == (
        "stats:block1_conv2",
        "stats:block3_conv3",
        "cov:block2_conv2",
        "cov:block3_conv3",
    )
    assert fx.model_taps("cnn_small", ()) is None
    assert fx.network_order(
        ["gap:block5_pool", "cov:block1_conv2", "stats:block5_pool", "stats:block1_conv2"]
    ) == ("stats:block1_conv2", "cov:block1_conv2", "stats:block5_pool", "gap:block5_pool")


# ----------------------------------------------------------------------------- building


class FakeTrunk:
    """A cheap, deterministic stand-in for VGG16: each column a function of the pixels."""

    def __init__(self, batch_size: int) -> None:
        self.calls: list[int] = []
        self.batch_size = batch_size

    def factory(self, trunk: TrunkSpec, taps: tuple[str, ...]) -> object:
        width = sum(fx.tap_width(t) for t in taps)

        def run(batch: np.ndarray) -> np.ndarray:
            assert len(batch) <= self.batch_size  # never more than one batch in memory
            self.calls.append(len(batch))
            return np.stack([expected_row(image, width) for image in batch])

        return run

    @property
    def computed(self) -> int:
        return sum(self.calls)


def expected_row(image: np.ndarray, width: int) -> np.ndarray:
    """What FakeTrunk computes for one image: its mean, then 1, 2, ... scaled by it."""
    m = float(image.astype(np.float64).mean())
    return (m * (1 + np.arange(width, dtype=np.float64) / width)).astype(np.float32)


def write_images(folder: Path, n: int, seed: int = 0, prefix: str = "img") -> list[ImageRef]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    refs = []
    for i in range(n):
        path = folder / f"{prefix}_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        refs.append(ImageRef(path.as_posix(), f"{prefix}_{i:04d}", False))
    return refs


STATS = ("stats:block1_conv2",)
GAP = ("gap:block5_pool",)


def trunk8(**changes: object) -> TrunkSpec:
    return spec(input_size=SIZE, working_size=SIZE, **changes)


def test_one_pass_per_image_for_every_consumer(tmp_path: Path) -> None:
    refs = write_images(tmp_path / "img", 5)
    fake = FakeTrunk(batch_size=2)
    consumers = [
        Consumer("style_stats", trunk8(), STATS, tuple(refs)),
        Consumer("vgg16", trunk8(), GAP, tuple(refs[:3])),
        Consumer("cnn_small", None, reason="trains from images"),
    ]
    report = fx.build_store(
        consumers, tmp_path / "store", batch_size=2, extractor_factory=fake.factory
    )
    assert fake.computed == 5 and max(fake.calls) <= 2  # the union of images, once each
    assert (report.images, report.computed, report.reused) == (5, 5, 0)

    ss = fx.open_features("style_stats", tmp_path / "store")
    vgg = fx.open_features("vgg16", tmp_path / "store")
    assert list(ss.paths) == sorted(r.path for r in refs)
    assert ss.taps == STATS and vgg.taps == GAP
    union = 128 + 512  # stats of block1_conv2, then the block5 average
    for ref in refs:
        with Image.open(ref.path) as img:
            row = expected_row(np.asarray(img), union)
        np.testing.assert_array_equal(ss.rows([ref.path])[0], row[:128])
        if ref in refs[:3]:
            np.testing.assert_array_equal(vgg.rows([ref.path])[0], row[128:])
    meta = json.loads((tmp_path / "store/cnn_small/store.json").read_text())
    assert meta == {"consumer": "cnn_small", "reason": "trains from images", "stored": False}
    with pytest.raises(FeatureStoreError, match="trains from images"):
        fx.open_features("cnn_small", tmp_path / "store")


def test_identical_pixels_are_computed_once(tmp_path: Path) -> None:
    refs = write_images(tmp_path / "a", 3)
    copy = tmp_path / "b" / "same.png"
    copy.parent.mkdir()
    copy.write_bytes(Path(refs[0].path).read_bytes())
    fake = FakeTrunk(batch_size=8)
    all_refs = (*refs, ImageRef(copy.as_posix(), "same", False))
    fx.build_store([Consumer("m", trunk8(), STATS, all_refs)], tmp_path / "s", 8, fake.factory)
    assert fake.computed == 3
    fs = fx.open_features("m", tmp_path / "s")
    np.testing.assert_array_equal(fs.rows([copy.as_posix()]), fs.rows([refs[0].path]))


def test_a_second_run_reuses_rows_and_computes_only_new_images(tmp_path: Path) -> None:
    root = tmp_path / "store"
    refs = write_images(tmp_path / "img", 4)
    fx.build_store([Consumer("m", trunk8(), STATS, tuple(refs))], root, 4, FakeTrunk(4).factory)
    before = fx.open_features("m", root).rows()

    again = FakeTrunk(4)
    report = fx.build_store([Consumer("m", trunk8(), STATS, tuple(refs))], root, 4, again.factory)
    assert again.computed == 0 and report.reused == 4
    np.testing.assert_array_equal(fx.open_features("m", root).rows(), before)

    more = (*refs, *write_images(tmp_path / "new", 2, seed=1, prefix="new"))
    grown = FakeTrunk(4)
    fx.build_store([Consumer("m", trunk8(), STATS, more)], root, 4, grown.factory)
    assert grown.computed == 2
    fs = fx.open_features("m", root)
    np.testing.assert_array_equal(fs.rows([r.path for r in refs]), before)


def test_rows_of_another_trunk_or_tap_are_not_reused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    refs = tuple(write_images(tmp_path / "img", 3))
    fx.build_store([Consumer("m", trunk8(), STATS, refs)], root, 4, FakeTrunk(4).factory)
    other_weights = FakeTrunk(4)
    changed = trunk8(weights_sha256="c" * 64)
    fx.build_store([Consumer("m", changed, STATS, refs)], root, 4, other_weights.factory)
    assert other_weights.computed == 3
    assert fx.open_features("m", root).trunk["key"] == changed.key
    new_tap = FakeTrunk(4)
    fx.build_store([Consumer("m", changed, GAP, refs)], root, 4, new_tap.factory)
    assert new_tap.computed == 3


def test_consumers_no_longer_planned_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    refs = tuple(write_images(tmp_path / "img", 2))
    both = [Consumer("a", trunk8(), STATS, refs), Consumer("b", trunk8(), GAP, refs)]
    fx.build_store(both, root, 4, FakeTrunk(4).factory)
    (root / "not-ours").mkdir()  # a folder the store did not write is left alone
    fx.build_store(both[:1], root, 4, FakeTrunk(4).factory)
    assert sorted(p.name for p in root.iterdir()) == ["a", "not-ours"]


def test_writes_stream_to_disk(tmp_path: Path) -> None:
    """Peak memory stays far below the size of the features: rows go to memory-mapped files."""
    n, taps = 1500, ("stats:block4_conv3", "stats:block5_conv3")  # 2,048 columns
    refs = tuple(write_images(tmp_path / "img", n))
    total_bytes = n * 2048 * 4  # ~12 MB per copy of the features
    tracemalloc.start()
    try:
        fx.build_store(
            [Consumer("m", trunk8(), taps, refs)], tmp_path / "s", 16, FakeTrunk(16).factory
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < total_bytes / 2, f"peak {peak / 1e6:.1f} MB for {total_bytes / 1e6:.1f} MB"
    values = np.load(tmp_path / "s/m/features.npy", mmap_mode="r")
    assert values.shape == (n, 2048)


# ------------------------------------------------------------------------------ reading


def test_rows_follow_the_order_asked_and_name_missing_images(tmp_path: Path) -> None:
    refs = write_images(tmp_path / "img", 3)
    fx.build_store(
        [Consumer("m", trunk8(), STATS, tuple(refs))], tmp_path / "s", 4, FakeTrunk(4).factory
    )
    fs = fx.open_features("m", tmp_path / "s")
    rows = fs.rows([refs[2].path, refs[0].path], taps=STATS)
    np.testing.assert_array_equal(rows, fs.rows()[[2, 0]])
    with pytest.raises(FeatureStoreError, match=r"not in the feature store.*dvc repro features"):
        fs.rows([refs[0].path, "data/processed/train/x.png"])
    with pytest.raises(FeatureStoreError, match="no tap"):
        fs.rows(taps=GAP)


def test_open_features_says_how_to_build_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(FeatureStoreError, match="dvc repro features"):
        fx.open_features("paintings", tmp_path)


def test_a_store_for_other_taps_is_refused_for_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = tuple(write_images(tmp_path / "img", 2))
    trunk = trunk8()
    monkeypatch.setattr(fx, "trunk_spec", lambda weights, size, working: trunk)
    fx.build_store([Consumer("style_stats", trunk, STATS, refs)], tmp_path, 4, FakeTrunk(4).factory)
    ok = fx.stored_for_model("style_stats", "hed-bsds500", ("block1_conv2",), SIZE, None, tmp_path)
    assert ok is not None and ok.taps == STATS
    with pytest.raises(FeatureStoreError, match="another trunk or taps"):
        fx.stored_for_model("style_stats", "hed-bsds500", ("block2_conv2",), SIZE, None, tmp_path)
    # with a covariance: its tap comes after the statistics, though "cov:" sorts before "stats:"
    taps = fx.model_taps("style_stats", ("block1_conv2",), ("block1_conv2",))
    assert taps == ("stats:block1_conv2", "cov:block1_conv2")
    fx.build_store([Consumer("style_stats", trunk, taps, refs)], tmp_path, 4, FakeTrunk(4).factory)
    ok = fx.stored_for_model(
        "style_stats", "hed-bsds500", ("block1_conv2",), SIZE, None, tmp_path, ("block1_conv2",)
    )
    assert ok is not None and ok.taps == taps
    assert ok.columns == {"stats:block1_conv2": (0, 128), "cov:block1_conv2": (128, 128 + 2080)}
    with pytest.raises(FeatureStoreError, match="another trunk or taps"):  # without it: refused
        fx.stored_for_model("style_stats", "hed-bsds500", ("block1_conv2",), SIZE, None, tmp_path)


# --------------------------------------------------------------------------------- plan


def test_plan_stores_frozen_vgg16_models_and_says_why_not_for_the_others(tmp_path: Path) -> None:
    import dataclasses

    from artist_id.config import load_params
    from tests.conftest import REPO

    params = load_params(REPO / "params.yaml")
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "index.csv").write_text(f"path,image_id\np/{split}.png,{split}\n")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,image_id,status\nraw/a.jpg,a,ok\nraw/b.jpg,b,quarantined\n")
    consumers = {c.name: c for c in fx.plan(params, tmp_path, manifest)}
    assert set(consumers) == {*params.train.models, "paintings"}
    assert consumers["vgg16"].taps == ("gap:block5_pool",)
    assert [r.path for r in consumers["vgg16"].images] == ["p/test.png", "p/train.png", "p/val.png"]
    assert consumers["style_stats"].trunk == consumers["vgg16"].trunk  # one pass serves both
    assert (
        consumers["cnn_small"].trunk is None
        and "trains from images" in consumers["cnn_small"].reason
    )
    assert [r.path for r in consumers["paintings"].images] == ["raw/a.jpg"]  # usable only

    off = dataclasses.replace(
        params, features=dataclasses.replace(params.features, paintings=False)
    )
    paintings = {c.name: c for c in fx.plan(off, tmp_path, manifest)}["paintings"]
    assert paintings.trunk is None and "features.paintings is false" in paintings.reason
