"""Style transfer: losses on known inputs, artist and painting choice, the style params."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from artist_id import style
from artist_id.config import ConfigError, parse_params
from tests.conftest import REPO

RAW: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())


def test_gram_matrix_of_a_known_feature_map() -> None:
    # 2 x 2 positions, 2 channels: (1, 2), (3, 0) / (0, 1), (2, 2)
    features = np.array([[[[1, 2], [3, 0]], [[0, 1], [2, 2]]]], dtype="float32")
    gram = np.asarray(style.gram_matrix(features))
    # G[c, d] = sum over positions of f_c * f_d, divided by the 4 positions
    want = np.array([[(1 + 9 + 0 + 4) / 4, (2 + 0 + 0 + 4) / 4], [1.5, (4 + 0 + 1 + 4) / 4]])
    np.testing.assert_allclose(gram[0], want, rtol=1e-6)


def test_gram_matrix_ignores_where_things_are() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1, 4, 5, 3)).astype("float32")
    shuffled = features.reshape(1, 20, 3)[:, rng.permutation(20)].reshape(1, 4, 5, 3)
    np.testing.assert_allclose(
        np.asarray(style.gram_matrix(features)), np.asarray(style.gram_matrix(shuffled)), rtol=1e-5
    )


def test_total_variation_of_a_known_image() -> None:
    image = np.array([[[[0.0], [1.0]], [[1.0], [1.0]]]], dtype="float32")  # 1 x 2 x 2 x 1
    # vertical pairs |1-0|, |1-1| -> mean 0.5; horizontal pairs |1-0|, |1-1| -> mean 0.5
    assert float(style.total_variation(image)) == pytest.approx(1.0)
    assert float(style.total_variation(np.full((1, 3, 3, 3), 0.4, "float32"))) == 0.0


def test_caffe_input_is_bgr_minus_the_imagenet_mean() -> None:
    image = np.array([[[[1.0, 0.0, 0.5]]]], dtype="float32")  # RGB in [0, 1]
    got = np.asarray(style.caffe_input(image))[0, 0, 0]
    np.testing.assert_allclose(got, [127.5 - 103.939, 0 - 116.779, 255 - 123.68], rtol=1e-5)


def test_working_size_keeps_the_aspect_ratio() -> None:
    assert style.working_size(640, 427, 128) == (128, 85)
    assert style.working_size(427, 640, 128) == (85, 128)


def test_style_painting_is_cropped_to_the_content_size() -> None:
    painting = Image.new("RGB", (300, 100), (10, 20, 30))
    out = style.prepare_style(painting, 128, 85)
    assert out.shape == (85, 128, 3)
    assert (out == (10, 20, 30)).all()


# ----------------------------------------------------------------------------- artists

AVAILABLE = ["Edgar Degas", "Pablo Picasso", "Salvador Dali", "Vincent van Gogh"]


def test_default_artists_are_the_decks_three_in_the_data() -> None:
    chosen = style.choose_artists((), AVAILABLE, ["Edgar Degas", "Vincent van Gogh"])
    assert chosen == ["Vincent van Gogh", "Pablo Picasso", "Salvador Dali"]
    assert style.choose_artists((), ["Vincent van Gogh", "X"], ["X"]) == ["Vincent van Gogh"]


def test_without_the_deck_artists_the_selected_classes_are_used() -> None:
    assert style.choose_artists((), ["A", "B", "C"], ["B", "C"]) == ["B", "C"]


def test_any_ingested_artist_may_be_named() -> None:
    # Dali is not a class of the classifier here, but he is in the data
    assert style.choose_artists(["Salvador Dali"], AVAILABLE, ["Edgar Degas"]) == ["Salvador Dali"]


def test_unknown_artist_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        style.choose_artists(["Vincent van Gohg", "Edgar Degas"], AVAILABLE, [])
    message = str(info.value)
    assert message.startswith("style.artists: 'Vincent van Gohg' not in the ingested data")
    assert "Edgar Degas, Pablo Picasso, Salvador Dali, Vincent van Gogh" in message
    assert "\n" not in message


def write_paintings(root: Path, artist: str, colours: list[tuple[int, int, int]]) -> pd.DataFrame:
    """One JPEG per colour: bands of it and of its complement, 8 px (wider than the JPEG
    chroma subsampling, which would average 1-px stripes to grey); as a manifest."""
    rows = []
    folder = root / artist.replace(" ", "_")
    folder.mkdir(parents=True)
    for i, colour in enumerate(colours, start=1):
        array = np.zeros((40, 60, 3), dtype="uint8")
        array[:] = colour
        for top in range(8, 40, 16):
            array[top : top + 8] = [255 - c for c in colour]
        path = folder / f"{folder.name}_{i}.jpg"
        Image.fromarray(array).save(path, quality=95)
        rows.append({"artist": artist, "path": str(path), "status": "ok"})
    return pd.DataFrame(rows)


def test_colourfulness_is_zero_for_grey_and_high_for_vivid(tmp_path: Path) -> None:
    frame = write_paintings(tmp_path, "A", [(128, 128, 128), (255, 0, 0), (200, 150, 120)])
    grey, red, sepia = (style.colourfulness(p) for p in frame["path"])
    assert grey < 2 < sepia < red


def test_painting_choice_is_seeded_and_skips_the_greyest_half(tmp_path: Path) -> None:
    greys = [(v, v, v) for v in range(60, 200, 20)]  # 7 grey paintings
    vivid = [(250, 30, 30), (30, 250, 30), (30, 30, 250), (250, 250, 0), (0, 250, 250)]
    frame = write_paintings(tmp_path, "A B", greys + vivid)
    other = write_paintings(tmp_path, "C", [(250, 0, 0)])
    both = pd.concat([frame, other])
    first = style.choose_paintings(both, "A B", 3, seed=1)
    assert first == style.choose_paintings(both.sample(frac=1, random_state=3), "A B", 3, seed=1)
    assert len(first) == 3 and all(p.artist == "A B" and p.slug == "A_B" for p in first)
    # the 6 most colourful of 12: the 5 vivid ones and one grey (all greys tie at 0)
    vivid_paths = set(frame["path"].iloc[len(greys) :])
    assert len({p.path for p in first} & vivid_paths) >= 2
    chosen = {p.path for p in style.choose_paintings(both, "A B", 6, seed=1)}
    assert vivid_paths <= chosen
    # more paintings asked than the colourful half: greyer ones make up the number
    assert len(style.choose_paintings(both, "A B", 10, seed=1)) == 10


# ------------------------------------------------------------------------------ params


def with_style(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw["style"].update(changes)
    return raw


def test_default_style_params() -> None:
    p = parse_params(copy.deepcopy(RAW)).style
    assert (p.backbone, p.weights) == ("vgg16", "hed-bsds500")  # the offline default
    assert p.iterations == p.checkpoints[-1]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbone": "vgg19"}, r"hed-bsds500 is a VGG16 trunk"),
        ({"backbone": "vgg11"}, r"style\.backbone: 'vgg11' is not one of"),
        ({"weights": "imagenet21k"}, r"style\.weights: 'imagenet21k' is not one of"),
        ({"content_layer": "block5_conv4"}, r"style\.content_layer: block5_conv4 not a conv"),
        ({"style_layers": ["block1_conv1", "block1_pool"]}, r"style\.style_layers: block1_pool"),
        ({"checkpoints": [100, 100]}, r"style\.checkpoints: positive iteration counts"),
        ({"checkpoints": []}, r"style\.checkpoints"),
        ({"photos": ["/etc/passwd.jpg"]}, r"neither a scikit-learn sample photo"),
        ({"photos": ["photos/../params.jpg"]}, r"neither a scikit-learn sample photo"),
        ({"photos": ["photos/notes.txt"]}, r"is not a \.jpg"),
        ({"per_artist": 0}, r"style\.per_artist must be at least 1"),
        ({"artists": "Vincent van Gogh"}, r"style\.artists: expected a list"),
    ],
)
def test_style_param_mistakes(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params(with_style(**changes))


def test_vgg19_layers_and_imagenet_are_accepted() -> None:
    p = parse_params(
        with_style(backbone="vgg19", weights="imagenet", content_layer="block5_conv4")
    ).style
    assert p.content_layer == "block5_conv4"
    assert parse_params(with_style(photos=["flower.jpg", "photos/me.png"])).style.photos == (
        "flower.jpg",
        "photos/me.png",
    )


def test_filters_model_must_be_trained() -> None:
    raw = copy.deepcopy(RAW)
    raw["filters"]["model"] = "alexnet"
    with pytest.raises(ConfigError, match=r"filters\.model: 'alexnet' is not one of train\.models"):
        parse_params(raw)


def test_headline_metrics_average_over_artists_and_skip_unknown_ones() -> None:
    def artist(style_loss: float, score: dict[str, Any]) -> dict[str, Any]:
        return {"losses": {"style": style_loss, "content": 2.0, "tv": 0.5}, "classifier": score}

    known = {
        "in_classes": True,
        "p_artist": {"photo": 0.1, "it10": 0.9, "it50": 0.7, "fast": 0.4},
        "attributed": {"photo": 0.0, "it10": 1.0, "it50": 1.0, "fast": 0.0},
    }
    other = {
        "in_classes": True,
        "p_artist": {"photo": 0.3, "it10": 0.2, "it50": 0.1, "fast": 0.8},
        "attributed": {"photo": 0.0, "it10": 0.0, "it50": 0.0, "fast": 1.0},
    }
    details = {
        "A": artist(10.0, known),
        "B": artist(20.0, other),
        "C": artist(60.0, {"in_classes": False, "note": "not a class"}),
    }
    assert style.headline(details, last=50) == {
        "style_loss": 30.0,  # (10 + 20 + 60) / 3: losses cover every artist
        "content_loss": 2.0,
        "tv_loss": 0.5,
        "p_artist_photo": 0.2,  # (0.1 + 0.3) / 2: scores only the artists it knows
        "p_artist_gatys": 0.4,  # the last checkpoint, it50: (0.7 + 0.1) / 2
        "attributed_gatys": 0.5,
        "p_artist_fast": 0.6,
        "attributed_fast": 0.5,
    }
    only_unknown = style.headline({"C": details["C"]}, last=50)
    assert set(only_unknown) == {"style_loss", "content_loss", "tv_loss"}
