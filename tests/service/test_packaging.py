"""The package stage's library: threshold, artist metadata, versions, params (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artist_id import packaging as pk
from artist_id import serving_metadata as sm
from artist_id.config import ConfigError
from artist_id.genre_serving import GenreInfo, GenreMetadata, GenreMetadataError, genres_answer
from tests.service.helpers import ARTISTS_CSV, CLASSES, REPO


def meta(threshold: float = 0.5, **changes: object) -> sm.ServingMetadata:
    base = sm.ServingMetadata(
        model="cnn_small",
        image_size=32,
        classes=tuple(sm.ArtistInfo(c, "G", "N", "1800 - 1900") for c in CLASSES),
        unknown=sm.UnknownThreshold(threshold, 0.9, 0.95, 0.8, 20, True),
        metrics={"chosen_by": "val/macro_f1", "val": {"macro_f1": 0.5}, "test": {}},
        limits=sm.Limits(1000, 1000, ("JPEG",), 2000, 4, 10.0, 1000),
        default_top_k=3,
        provenance={"params_sha256": "ab", "git": {"rev": "cd", "dirty": False}},
        model_sha256="ef",
    )
    return sm.ServingMetadata(**{**vars(base), **changes})


# ------------------------------------------------------------------------------ threshold


def test_threshold_is_the_lowest_confidence_reaching_the_precision() -> None:
    # Descending confidence: right, right, right, wrong, right, wrong.
    top1 = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    t = pk.unknown_threshold(top1, correct, 0.8)
    # At 0.6 precision is 4/5 = 0.8 (reached); at 0.5 it is 4/6.
    assert t.threshold == 0.6
    assert t.val_precision == 0.8
    assert t.val_coverage == pytest.approx(5 / 6, abs=1e-6)
    assert t.val_images == 6 and t.reached
    assert pk.unknown_threshold(top1, correct, 1.0).threshold == 0.8
    # Order of the inputs does not matter.
    perm = np.array([3, 0, 5, 1, 4, 2])
    assert pk.unknown_threshold(top1[perm], correct[perm], 0.8) == t


def test_threshold_when_everything_is_right_is_the_lowest_seen() -> None:
    t = pk.unknown_threshold(np.array([0.9, 0.4, 0.7]), np.ones(3, bool), 0.9)
    assert (t.threshold, t.val_precision, t.val_coverage) == (0.4, 1.0, 1.0)


def test_tied_confidences_are_answered_together() -> None:
    # Two images at 0.8, one right one wrong: the threshold cannot split them.
    t = pk.unknown_threshold(np.array([0.9, 0.8, 0.8]), np.array([True, True, False]), 0.9)
    assert t.threshold == 0.9 and t.val_coverage == pytest.approx(1 / 3, abs=1e-6)


def test_unreachable_precision_makes_everything_unknown() -> None:
    t = pk.unknown_threshold(np.array([0.9, 0.5]), np.array([False, True]), 0.9)
    assert not t.reached and t.threshold == 1.0 and t.val_coverage == 0.0


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5])
def test_threshold_target_must_be_a_precision(target: float) -> None:
    with pytest.raises(pk.PackagingError):
        pk.unknown_threshold(np.array([0.5]), np.array([True]), target)


def test_validation_confidence_reads_only_val_rows(tmp_path: Path) -> None:
    csv = tmp_path / "predictions.csv"
    header = "split,image_id,label,predicted,p_predicted,p_label"
    a, b, c = CLASSES[:3]
    csv.write_text(
        "\n".join(
            [
                header,
                f"val,a,{a},{a},0.7,0.7",  # right, top-1 0.7
                f"val,b,{c},{b},0.6,0.3",  # wrong, top-1 0.6
                f"test,c,{b},{b},1.0,1.0",  # test rows never count
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    top1, correct = pk.validation_confidence(csv, CLASSES)
    assert top1.tolist() == [0.7, 0.6] and correct.tolist() == [True, False]
    with pytest.raises(pk.PackagingError, match="not among the classes"):
        pk.validation_confidence(csv, CLASSES[:2])
    csv.write_text("split,path,label\nval,a.png,0\n", encoding="utf-8")
    with pytest.raises(pk.PackagingError, match="lacks column"):
        pk.validation_confidence(csv, CLASSES)


# -------------------------------------------------------------------------------- artists


def test_artist_infos_follow_label_order_and_normalise_years(tmp_path: Path) -> None:
    csv = tmp_path / "artists.csv"
    csv.write_text(ARTISTS_CSV, encoding="utf-8")
    infos = pk.artist_infos(csv, ["Vincent  van gogh", "Pablo Picasso"])
    assert [i.artist for i in infos] == ["Vincent  van gogh", "Pablo Picasso"]
    assert infos[0] == sm.ArtistInfo(
        "Vincent  van gogh", "Post-Impressionism", "Dutch", "1853 - 1890"
    )
    assert infos[1].genre == "Cubism,Surrealism" and infos[1].nationality == "Spanish"
    with pytest.raises(pk.PackagingError, match="Claude Monet"):
        pk.artist_infos(csv, ["Claude Monet"])


def test_artist_infos_read_the_real_csv() -> None:
    real = REPO.parent / "shared" / "real-sample" / "artists.csv"
    if not real.is_file():
        pytest.skip(f"{real} absent (../shared/real-sample is not part of a clone)")
    infos = pk.artist_infos(real, ["Albrecht Dürer", "Vincent van Gogh"])
    assert all(i.genre and i.nationality and " - " in i.years for i in infos)


# ------------------------------------------------------------------- metadata and versions


def test_metadata_round_trips_through_json() -> None:
    m = meta()
    again = sm.ServingMetadata.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m
    with pytest.raises(sm.MetadataError, match="format"):
        sm.ServingMetadata.from_json({**m.to_json(), "format": 99})
    # A package written before the read timeout and the pixel budget existed (format 1).
    old = m.to_json()
    old["format"] = 1
    del old["limits"]["read_timeout_s"], old["limits"]["pixel_budget"]
    with pytest.raises(sm.MetadataError, match="re-run the package stage"):
        sm.ServingMetadata.from_json(old)


def test_version_is_a_content_hash_that_ignores_provenance() -> None:
    v = pk.content_version(meta())
    assert len(v) == 16 and v == v.lower()
    assert pk.content_version(meta(provenance={"git": {"rev": "other"}})) == v
    assert pk.content_version(meta(threshold=0.6)) != v
    # the weights are the content; the file's own hash (Keras version, zip layout) is not
    assert pk.content_version(meta(weights_sha256="00")) != v
    assert pk.content_version(meta(model_sha256="00")) == v


GENRES_JSON = {  # what the genre stage writes to models/genre/genres.json
    "genres": ["Cubism", "Impressionism"],
    "thresholds": {"Cubism": 0.4, "Impressionism": 0.7},
    "fallback_top_k": 3,
    "image_size": 32,
    "trunk": {"weights": "none", "layers": ["block1_conv2"], "image_size": 32},
    "metrics": {
        "held_out_artists": {
            "macro": {"ap": 0.6, "prior_ap": 0.3},
            "per_genre": {"Impressionism": {"ap": 0.8, "f1": 0.7, "prior_ap": 0.4}},
        },
        "held_out_paintings": {
            "macro": {"ap": 0.9, "prior_ap": 0.3},
            "per_genre": {
                "Cubism": {"ap": 0.95, "f1": 0.9, "prior_ap": 0.2},
                "Impressionism": {"ap": 0.85, "f1": 0.8, "prior_ap": 0.4},
            },
        },
    },
    "excluded": ["Pointillism"],
}


def genre_meta(**changes: object) -> GenreMetadata:
    base = GenreMetadata.from_genre_stage(GENRES_JSON)
    return GenreMetadata(**{**vars(base), **changes})


def test_genre_metadata_from_the_genre_stage_and_back() -> None:
    g = genre_meta()
    assert g.names == ["Cubism", "Impressionism"] and g.thresholds.tolist() == [0.4, 0.7]
    # Cubism has one artist: it has no held-out-artist entry, only a held-out-painting one
    assert set(g.genres[0].metrics) == {"held_out_paintings"}
    assert g.genres[1].metrics["held_out_artists"]["ap"] == 0.8
    assert g.metrics["held_out_artists"] == {"ap": 0.6, "prior_ap": 0.3}
    assert g.excluded == ("Pointillism",)
    assert GenreMetadata.from_json(json.loads(json.dumps(g.to_json()))) == g
    with pytest.raises(GenreMetadataError, match="format"):
        GenreMetadata.from_json({**g.to_json(), "format": 99})
    with pytest.raises(GenreMetadataError, match="probabilities"):
        genre_meta(genres=(GenreInfo("Cubism", 1.5),))


def test_pair_version_follows_both_models_and_ignores_provenance() -> None:
    v = pk.pair_version(meta(), genre_meta())
    assert len(v) == 16 and v != pk.content_version(meta())
    assert pk.pair_version(meta(provenance={"git": {"rev": "x"}}), genre_meta()) == v
    assert pk.pair_version(meta(threshold=0.6), genre_meta()) != v  # the artist side
    assert pk.pair_version(meta(), genre_meta(weights_sha256="00")) != v  # the genre weights
    assert pk.pair_version(meta(), genre_meta(fallback_top_k=2)) != v
    assert pk.pair_version(meta(), genre_meta(model_sha256="00")) == v  # the file, not content


def test_genres_answer_checks_the_number_of_probabilities() -> None:
    g = genre_meta()
    assert [x["genre"] for x in genres_answer(np.array([0.5, 0.9]), g)] == [
        "Impressionism",
        "Cubism",
    ]
    assert genres_answer(np.array([0.3, 0.6]), g) == [  # none above: both, flagged
        {"genre": "Impressionism", "probability": 0.6, "above_threshold": False},
        {"genre": "Cubism", "probability": 0.3, "above_threshold": False},
    ]
    with pytest.raises(GenreMetadataError, match="for 2 genres"):
        genres_answer(np.array([0.1, 0.2, 0.3]), g)


def test_limits_refuse_caps_that_would_refuse_every_allowed_image() -> None:
    ok = {
        "max_bytes": 10,
        "max_pixels": 10,
        "formats": ("JPEG",),
        "max_request_bytes": 20,
        "max_images": 1,
        "read_timeout_s": 5.0,
        "pixel_budget": 10,
    }
    assert sm.Limits(**ok).pixel_budget == 10  # type: ignore[arg-type]
    with pytest.raises(sm.MetadataError, match="max_request_bytes"):
        sm.Limits(**{**ok, "max_request_bytes": 5})  # type: ignore[arg-type]
    with pytest.raises(sm.MetadataError, match="pixel_budget"):
        sm.Limits(**{**ok, "pixel_budget": 9})  # type: ignore[arg-type]
    with pytest.raises(sm.MetadataError, match="positive"):
        sm.Limits(**{**ok, "read_timeout_s": 0.0})  # type: ignore[arg-type]
    assert issubclass(pk.PackagingError, sm.MetadataError)


def test_params_hash_ignores_comments_and_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1  # one\ny: [1, 2]\n", encoding="utf-8")
    b.write_text("y: [1, 2]\nx: 1\n", encoding="utf-8")
    assert pk.params_hash(a) == pk.params_hash(b)


# ---------------------------------------------------------------------------- stage params


def test_package_params_parse_and_reject_unknown_keys() -> None:
    import copy

    import yaml

    from artist_id.config import parse_params
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    good = {
        "unknown_precision": 0.9,
        "top_k": 3,
        "max_bytes": 10,
        "max_pixels": 10,
        "formats": ["JPEG"],
        "max_request_bytes": 20,
        "max_images": 2,
        "read_timeout_s": 15,
        "pixel_budget": 10,
    }

    def parse(package: dict[str, object]) -> object:
        params = copy.deepcopy(raw)
        params["package"] = package
        return parse_params(params).package

    p = parse(good)
    assert p.formats == ("JPEG",) and p.unknown_precision == 0.9  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown key"):
        parse({**good, "typo": 1})
    with pytest.raises(ConfigError, match="max_request_bytes"):
        parse({**good, "max_request_bytes": 5})
    assert parse(good).read_timeout_s == 15.0  # type: ignore[attr-defined]
    for bad in (0, 60, -1):
        with pytest.raises(ConfigError, match="read_timeout_s"):
            parse({**good, "read_timeout_s": bad})
    with pytest.raises(ConfigError, match="pixel_budget"):
        parse({**good, "pixel_budget": 9})
    del raw["package"]
    with pytest.raises(ConfigError, match="missing key 'package'"):
        parse_params(raw)
