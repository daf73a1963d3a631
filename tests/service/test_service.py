"""The service in-process: the entry service's real ASGI app (middlewares, routes, the model
service as a local dependency) over Starlette's TestClient, and its answer logic directly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from artist_id import serving_metadata as sm
from artist_id.api import RequestError
from artist_id.genre_serving import GenreInfo, GenreMetadata
from artist_id.predictor import Predictor
from tests.service.helpers import (
    CLASSES,
    GENRE_THRESHOLDS,
    GENRES,
    MAX_IMAGES,
    MAX_REQUEST_BYTES,
    Project,
    bad_inputs,
    encode,
    form,
    good_inputs,
    painting,
    png_of,
    raw,
    small_real_jpeg,
)

ANSWER_KEYS = {"artist", "probability", "unknown", "top_k", "genres", "model"}
TOP_KEYS = {"artist", "probability", "genre", "nationality", "years"}
GENRE_KEYS = {"genre", "probability", "above_threshold"}


def check_genres(genres: list[dict[str, Any]]) -> None:
    """Genres at or above their threshold, most probable first (else the most probable)."""
    assert genres and all(set(g) == GENRE_KEYS for g in genres)
    probs = [g["probability"] for g in genres]
    assert probs == sorted(probs, reverse=True) and all(0.0 <= p <= 1.0 for p in probs)
    for g in genres:
        assert g["genre"] in GENRES
        assert g["above_threshold"] == (g["probability"] >= GENRE_THRESHOLDS[g["genre"]])
    # the tiny model's Impressionism threshold is 0: always listed, always above
    assert "Impressionism" in {g["genre"] for g in genres}
    assert all(g["above_threshold"] for g in genres)


def check_answer(answer: dict[str, Any], project: Project, k: int = 3) -> None:
    """The documented shape, and internal consistency of one answer."""
    assert set(answer) == ANSWER_KEYS
    top = answer["top_k"]
    assert len(top) == k and all(set(t) == TOP_KEYS for t in top)
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True) and all(0.0 <= p <= 1.0 for p in probs)
    assert answer["probability"] == probs[0]
    assert answer["artist"] == (None if answer["unknown"] else top[0]["artist"])
    assert {t["artist"] for t in top} <= set(CLASSES)
    version = project.tag.split(":")[1]
    assert answer["model"] == {"name": "cnn_small", "version": version, "tag": project.tag}
    check_genres(answer["genres"])


def post(client: Any, path: str, **kwargs: Any) -> Any:
    return client.post(path, **kwargs)


# ----------------------------------------------------------------------------- good input


@pytest.mark.parametrize("name", list(good_inputs()))
def test_every_accepted_format_and_mode_is_answered(
    client: Any, project: Project, name: str
) -> None:
    r = post(client, "/predict", **form(good_inputs()[name], f"{name}.img"))
    assert r.status_code == 200, r.text
    check_answer(r.json(), project)


def test_raw_body_and_multipart_give_the_same_answer(client: Any) -> None:
    data = good_inputs()["jpeg"]
    a = post(client, "/predict", **form(data)).json()
    b = post(client, "/predict", **raw(data)).json()
    c = post(client, "/predict", **raw(data, "application/octet-stream")).json()
    d = post(client, "/predict", content=data).json()  # no Content-Type: raw bytes
    assert a == b == c == d


def test_the_decoder_not_the_content_type_decides_the_format(client: Any) -> None:
    png = good_inputs()["png"]
    assert (
        post(client, "/predict", **raw(png, "image/jpeg")).json()
        == post(client, "/predict", **raw(png, "image/png")).json()
    )


def test_exif_orientation_is_applied(client: Any) -> None:
    data = good_inputs()["exif_rotated_jpeg"]
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        upright = ImageOps.exif_transpose(im)
        as_stored = im.convert("RGB")
    assert upright.size == (48, 96)  # portrait once rotated
    answer = post(client, "/predict", **form(data)).json()
    assert answer == post(client, "/predict", **form(png_of(upright))).json()
    assert answer != post(client, "/predict", **form(png_of(as_stored))).json()


def test_greyscale_and_transparency_become_rgb_like_ingest(client: Any) -> None:
    grey = painting(2, mode="L")
    assert (
        post(client, "/predict", **form(png_of(grey))).json()
        == post(client, "/predict", **form(png_of(grey.convert("RGB")))).json()
    )
    rgba = painting(4).convert("RGBA")
    rgba.putalpha(128)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    on_white = Image.alpha_composite(white, rgba).convert("RGB")
    assert (
        post(client, "/predict", **form(png_of(rgba))).json()
        == post(client, "/predict", **form(png_of(on_white))).json()
    )


def test_a_real_painting(client: Any, project: Project) -> None:
    r = post(client, "/predict", **form(small_real_jpeg(), "painting.jpg"))
    assert r.status_code == 200, r.text
    check_answer(r.json(), project)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_from_query_or_form(client: Any, project: Project, k: int) -> None:
    data = good_inputs()["jpeg"]
    by_query = post(client, "/predict", **raw(data, top_k=str(k))).json()
    by_form = post(client, "/predict", **form(data, top_k=str(k))).json()
    assert by_query == by_form
    check_answer(by_query, project, k)


def test_top_k_defaults_to_the_packaged_value(client: Any) -> None:
    assert len(post(client, "/predict", **raw(good_inputs()["png"])).json()["top_k"]) == 3


def test_predict_batch_answers_in_order_like_predict(client: Any) -> None:
    inputs = list(good_inputs().values())[:MAX_IMAGES]
    files = [("images", (f"{i}.img", data)) for i, data in enumerate(inputs)]
    r = post(client, "/predict_batch", files=files, data={"top_k": "2"})
    assert r.status_code == 200, r.text
    singles = [post(client, "/predict", **raw(d, top_k="2")).json() for d in inputs]
    assert r.json() == singles


def test_predict_batch_limits_and_names_the_bad_image(client: Any) -> None:
    jpeg = good_inputs()["jpeg"]
    too_many = [("images", (f"{i}.jpg", jpeg)) for i in range(MAX_IMAGES + 1)]
    r = post(client, "/predict_batch", files=too_many)
    assert r.status_code == 413 and r.json()["error"] == "too_many_images"
    mixed = [("images", ("good.jpg", jpeg)), ("images", ("bad.jpg", b"not an image"))]
    r = post(client, "/predict_batch", files=mixed)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "not_an_image" and r.json()["detail"].startswith("images[1]: ")


@pytest.mark.parametrize("extra", [1, 2, 7])
def test_predict_batch_has_one_limit_one_status_one_message(client: Any, extra: int) -> None:
    jpeg = good_inputs()["jpeg"]
    files = [("images", (f"{i}.jpg", jpeg)) for i in range(MAX_IMAGES + extra)]
    r = post(client, "/predict_batch", files=files)
    assert (r.status_code, r.json()) == (
        413,
        {
            "error": "too_many_images",
            "detail": f"/predict_batch takes at most {MAX_IMAGES} images per request",
        },
    )
    r = post(client, "/predict_batch", files=files[:MAX_IMAGES])
    assert r.status_code == 200 and len(r.json()) == MAX_IMAGES


def test_metadata(client: Any, project: Project) -> None:
    meta = client.get("/metadata").json()
    assert [c["artist"] for c in meta["classes"]] == CLASSES
    assert meta["classes"][2] == {
        "artist": "Vincent van Gogh",
        "genre": "Post-Impressionism",
        "nationality": "Dutch",
        "years": "1853 - 1890",
    }
    assert meta["model"]["tag"] == project.tag and meta["model"]["image_size"] == 32
    assert meta["metrics"]["chosen_by"] == "val/macro_f1" and "test" in meta["metrics"]
    assert 0 < meta["unknown"]["threshold"] < 1 and meta["unknown"]["reached"]
    assert meta["top_k"] == {"default": 3, "max": 3}
    assert meta["limits"]["max_request_bytes"] == MAX_REQUEST_BYTES
    assert set(meta["provenance"]) == {"params_sha256", "git"}
    genres = meta["genres"]
    assert [g["genre"] for g in genres["genres"]] == GENRES
    assert {g["genre"]: g["threshold"] for g in genres["genres"]} == GENRE_THRESHOLDS
    assert genres["genres"][0]["metrics"]["held_out_artists"]["ap"] == 0.5
    assert genres["metrics"]["held_out_artists"]["prior_ap"] == 0.3
    assert genres["fallback_top_k"] == 2 and genres["excluded"] == ["Cubism"]
    # packaged together: one version for both models
    assert genres["model"]["tag"] == project.genre_tag
    assert genres["model"]["version"] == meta["model"]["version"] == project.tag.split(":")[1]
    assert len(genres["model"]["weights_sha256"]) == 64


def test_the_bentoml_api_matches_the_declared_upload_routes() -> None:
    """One declaration of each upload route (artist_id.api) and its BentoML method agree."""
    from artist_id import api, service

    entry: Any = service.ArtistID
    methods = {m.route: m for m in entry.apis.values()}
    assert set(methods) == {e.path for e in api.UPLOAD_ENDPOINTS}
    for endpoint in api.UPLOAD_ENDPOINTS:
        spec = methods[endpoint.path].input_spec
        assert set(spec.model_fields) == {endpoint.field, "top_k"}
        assert spec.multipart_fields == [endpoint.field]


def test_docs_routes_in_process(client: Any) -> None:
    assert client.get("/docs").headers["content-type"].startswith("text/html")
    assert client.get("/docs.json").json()["openapi"] == "3.1.0"
    assert "/predict" in {r["route"] for r in client.get("/schema.json").json()["routes"]}


def test_the_guard_answers_before_bentomls_traffic_timeout(client: Any) -> None:
    """W8: an overloaded upload gets the API's 504 before BentoML's, which is not its form."""
    from artist_id import service

    entry: Any = service.ArtistID
    traffic_timeout = entry.config["traffic"]["timeout"]
    assert 0 < service.GUARD.request_timeout_s < traffic_timeout
    assert service.GUARD.request_timeout_s == traffic_timeout - service.REQUEST_TIMEOUT_MARGIN_S
    assert client.get("/readyz").status_code == 200  # the guard was configured by the service


def test_an_upload_past_the_request_timeout_gets_the_api_504_and_the_next_is_answered(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from artist_id import service

    data = good_inputs()["jpeg"]
    monkeypatch.setattr(service.GUARD, "request_timeout_s", 0.0)  # every answer is too late
    for path in ("/predict", "/explain"):
        r = post(client, path, **form(data))
        assert r.status_code == 504, r.text
        assert r.json()["error"] == "processing_timeout"
        assert set(r.json()) == {"error", "detail"}
    monkeypatch.undo()
    assert post(client, "/predict", **form(data)).status_code == 200


def test_health(client: Any) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", list(bad_inputs()))
def test_bad_input_gets_a_4xx_json_error(client: Any, name: str) -> None:
    kwargs, status, error = bad_inputs()[name]
    r = post(client, "/predict", **kwargs)
    assert (r.status_code, r.headers["content-type"]) == (status, "application/json"), r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error
    assert isinstance(body["detail"], str) and body["detail"]


def test_a_chunked_body_is_cut_off_at_the_cap(client: Any) -> None:
    def chunks() -> Any:
        for _ in range(MAX_REQUEST_BYTES // 65536 + 2):
            yield b"\xff" * 65536

    r = post(client, "/predict", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"


def test_get_on_predict_is_a_json_405(client: Any) -> None:
    r = client.get("/predict")
    assert r.status_code == 405 and set(r.json()) == {"error", "detail"}


# --------------------------------------------------------------------- answer logic direct


FIXED_GENRES = GenreMetadata(
    genres=(
        GenreInfo("Cubism", 0.5),
        GenreInfo("Impressionism", 0.3),
        GenreInfo("Surrealism", 0.8),
        GenreInfo("Symbolism", 0.6),
    ),
    image_size=32,
    fallback_top_k=3,
    metrics={},
)


class FixedModel(Predictor):
    """The entry logic with fixed probabilities instead of a model call."""

    def __init__(
        self, threshold: float, proba: list[float], genres: tuple[float, ...] = (0.6, 0.2, 0.9, 0.1)
    ) -> None:
        infos = (
            sm.ArtistInfo("Edgar Degas", "Impressionism", "French", "1834 - 1917"),
            sm.ArtistInfo("Pablo Picasso", "Cubism,Surrealism", "Spanish", "1881 - 1973"),
            sm.ArtistInfo("Vincent van Gogh", "Post-Impressionism", "Dutch", "1853 - 1890"),
        )
        meta = sm.ServingMetadata(
            model="m",
            image_size=32,
            classes=infos,
            unknown=sm.UnknownThreshold(threshold, 0.9, 0.9, 0.5, 10, True),
            metrics={},
            limits=sm.Limits(1_000_000, 1_000_000, ("PNG",), 2_000_000, 2, 5.0, 1_000_000),
            default_top_k=2,
        )
        self.setup(meta, "artist-id:abc", FIXED_GENRES, "artist-id-genre:abc")
        self.proba = np.array([proba], dtype=np.float32)
        self.genre_proba = np.array([genres], dtype=np.float32)

    async def classify(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.uint8 and batch.shape[1:] == (32, 32, 3)
        both = np.concatenate([self.proba, self.genre_proba], axis=1)  # as ArtistModel answers
        return np.repeat(both, len(batch), axis=0)

    def first(self, k: int) -> dict[str, Any]:
        return self.answer(self.proba[0], k, self.genre_proba[0]).model_dump()


def test_unknown_below_the_threshold_still_gives_top_k_and_genres() -> None:
    svc = FixedModel(0.6, [0.2, 0.5, 0.3])
    answer = svc.first(2)
    assert answer["unknown"] and answer["artist"] is None and answer["probability"] == 0.5
    assert [t["artist"] for t in answer["top_k"]] == ["Pablo Picasso", "Vincent van Gogh"]
    assert answer["top_k"][0]["genre"] == "Cubism,Surrealism"
    # the genres of a painter the artist model does not know: Surrealism 0.9 >= 0.8 and
    # Cubism 0.6 >= 0.5 pass their thresholds; Impressionism 0.2 < 0.3, Symbolism 0.1 < 0.6
    assert answer["genres"] == [
        {"genre": "Surrealism", "probability": pytest.approx(0.9), "above_threshold": True},
        {"genre": "Cubism", "probability": pytest.approx(0.6), "above_threshold": True},
    ]


def test_no_genre_above_its_threshold_gives_the_top_three_flagged() -> None:
    svc = FixedModel(0.6, [0.2, 0.5, 0.3], genres=(0.4, 0.25, 0.7, 0.5))
    answer = svc.first(2)
    assert answer["unknown"]
    assert [(g["genre"], g["above_threshold"]) for g in answer["genres"]] == [
        ("Surrealism", False),
        ("Symbolism", False),
        ("Cubism", False),
    ]


def test_genres_are_the_same_whether_the_artist_is_known_or_not() -> None:
    unknown = FixedModel(0.9, [0.2, 0.5, 0.3]).first(3)
    known = FixedModel(0.1, [0.2, 0.5, 0.3]).first(3)
    assert unknown["unknown"] and not known["unknown"]
    assert unknown["genres"] == known["genres"]


def test_batch_answers_split_artist_and_genre_columns(tmp_path: Path) -> None:
    svc = FixedModel(0.5, [0.2, 0.5, 0.3])
    answer = _predict(svc, encode(painting(), "PNG"), None, tmp_path)[0]
    assert answer.probability == 0.5 and answer.artist == "Pablo Picasso"
    assert [g.genre for g in answer.genres] == ["Surrealism", "Cubism"]


def test_known_at_or_above_the_threshold() -> None:
    svc = FixedModel(0.5, [0.2, 0.5, 0.3])
    answer = svc.first(3)
    assert not answer["unknown"] and answer["artist"] == "Pablo Picasso"
    assert answer["model"] == {"name": "m", "version": "abc", "tag": "artist-id:abc"}


def test_ties_keep_label_order() -> None:
    svc = FixedModel(0.1, [0.4, 0.4, 0.2])
    assert [t["artist"] for t in svc.first(3)["top_k"]] == CLASSES


def test_models_of_two_versions_refuse_to_serve_together() -> None:
    from artist_id.service import check_pair

    check_pair("artist-id:abc", "artist-id-genre:abc")
    with pytest.raises(RuntimeError, match="not packaged together"):
        check_pair("artist-id:abc", "artist-id-genre:def")


def _predict(svc: FixedModel, data: bytes, top_k: int | None, tmp: Path) -> list[Any]:
    import anyio

    upload = tmp / "upload"
    upload.write_bytes(data)
    return anyio.run(svc.predict_files, [upload], top_k)


def test_the_packaged_formats_are_the_allowlist(tmp_path: Path) -> None:
    svc = FixedModel(0.5, [0.2, 0.5, 0.3])  # packaged with formats=("PNG",)
    assert _predict(svc, encode(painting(), "PNG"), None, tmp_path)[0].artist
    with pytest.raises(RequestError) as info:
        _predict(svc, encode(painting(), "JPEG"), None, tmp_path)
    assert (info.value.status, info.value.error) == (415, "unsupported_format")


def test_top_k_is_checked_in_process_too(tmp_path: Path) -> None:
    svc = FixedModel(0.5, [0.2, 0.5, 0.3])
    assert len(_predict(svc, encode(painting(), "PNG"), 3, tmp_path)[0].top_k) == 3
    with pytest.raises(RequestError) as info:
        _predict(svc, encode(painting(), "PNG"), 4, tmp_path)
    assert info.value.error == "invalid_top_k" and "from 1 to 3" in info.value.detail


# --------------------------------------------------------------------------------- fuzzing

CONTENT_TYPES = [
    "image/jpeg",
    "application/octet-stream",
    "image/png; charset=binary",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "text/plain",
    "",
]


def _multipart(name: bytes, filename: bytes | None, headers: bytes, data: bytes) -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return b"--b\r\n" + disposition + b"\r\n" + headers + b"\r\n" + data + b"\r\n--b--\r\n"


multipart_bodies = st.builds(
    _multipart,
    st.sampled_from([b"image", b"images", b"top_k", b"\xff\xfe", b""]) | st.binary(max_size=8),
    st.none() | st.binary(max_size=12),
    st.sampled_from([b"", b"Content-Type: image/jpeg\r\n", b"X: \xff\r\n"])
    | st.binary(max_size=20),
    st.binary(max_size=300),
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    body=st.binary(max_size=600) | multipart_bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    top_k=st.none() | st.text(max_size=8),
    path=st.sampled_from(["/predict", "/predict_batch", "/explain"]),
)
def test_no_input_makes_a_500(
    client: Any, body: bytes, content_type: str, top_k: str | None, path: str
) -> None:
    params = {} if top_k is None else {"top_k": top_k}
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(path, content=body, headers=headers, params=params)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "detail"}
