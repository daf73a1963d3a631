"""POST /explain and the web page, in-process (the entry's real ASGI app, local model services)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import numpy as np
import pytest
from PIL import Image

from artist_id import explain, predictor
from artist_id import serving_metadata as sm
from artist_id.api import RequestError
from artist_id.genre_serving import GenreInfo, GenreMetadata
from artist_id.predictor import Predictor
from tests.service.helpers import (
    CLASSES,
    SIZE,
    bad_inputs,
    encode,
    form,
    painting,
    raw,
)

JPEG = encode(painting(11, size=(90, 60)), "JPEG", quality=92)


def test_explain_answers_the_prediction_and_an_overlay(client: Any) -> None:
    r = client.post("/explain", **form(JPEG))
    assert r.status_code == 200, r.text
    answer = r.json()
    predicted = client.post("/predict", **form(JPEG)).json()
    # The same answer as /predict (same model, same decoding), up to float noise.
    assert [t["artist"] for t in answer["top_k"]] == [t["artist"] for t in predicted["top_k"]]
    for a, b in zip(answer["top_k"], predicted["top_k"], strict=True):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    ex = answer["explanation"]
    assert ex["artist"] == answer["top_k"][0]["artist"]  # the best guess, even if unknown
    assert ex["method"] == explain.GRAD_CAM and ex["layer"] == "conv4_bn"  # cnn_small
    assert 0.0 <= ex["peak"]["x"] <= 1.0 and 0.0 <= ex["peak"]["y"] <= 1.0
    png = base64.b64decode(ex["image"]["base64"])
    with Image.open(io.BytesIO(png)) as im:
        assert (im.format, im.size, im.mode) == ("PNG", (384, 384), "RGB")


def test_explain_sends_the_png_itself_when_asked(client: Any) -> None:
    r = client.post("/explain", headers={"accept": "image/png"}, **form(JPEG))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert unquote(r.headers["x-explained-artist"]) in CLASSES
    assert r.headers["x-explanation-layer"] == "conv4_bn"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (384, 384)
    # JSON preferred over PNG when both are acceptable in that order.
    r = client.post("/explain", headers={"accept": "application/json, image/png"}, **form(JPEG))
    assert r.headers["content-type"] == "application/json"


def test_explain_refuses_bad_input_exactly_like_predict(client: Any) -> None:
    mismatches = []
    for name, (kwargs, _, _) in bad_inputs().items():
        a = client.post("/predict", **kwargs)
        b = client.post("/explain", **kwargs)
        if (a.status_code, a.json()["error"]) != (b.status_code, b.json()["error"]):
            mismatches.append(f"{name}: /predict {a.status_code} /explain {b.status_code}")
    assert not mismatches, "\n".join(mismatches)


def test_explain_takes_top_k_like_predict(client: Any) -> None:
    r = client.post("/explain", **raw(JPEG, top_k="1"))
    assert r.status_code == 200 and len(r.json()["top_k"]) == 1


# ------------------------------------------------------------------------------ the page


def test_the_page_is_served_at_the_root_with_its_files(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<label for="file">' in html and 'id="file"' in html  # a labelled file input
    assert 'role="alert"' in html and 'aria-live="polite"' in html
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        a = client.get(f"/ui/{asset}")
        assert a.status_code == 200 and a.headers["content-type"].startswith(kind)
        assert "http://" not in a.text and "https://" not in a.text
        assert f"ui/{asset}" in html
    assert client.get("/ui/service.py").status_code == 404
    assert client.get("/ui/..%2Fservice.py").status_code == 404
    assert client.get("/ui/index.html").status_code == 404


def test_the_api_docs_stay_at_docs_and_list_explain(client: Any) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/docs.json").json()["paths"]
    assert "504" in paths["/explain"]["post"]["responses"]
    assert "image/png" in paths["/explain"]["post"]["responses"]["200"]["content"]


# ------------------------------------------------------------- the cap, logic direct


class SlowExplainer(Predictor):
    """The entry logic with a model that answers at once and explanations that block."""

    def __init__(self, release: anyio.Event) -> None:
        infos = tuple(sm.ArtistInfo(c, "g", "n", "y") for c in CLASSES)
        meta = sm.ServingMetadata(
            model="m",
            image_size=SIZE,
            classes=infos,
            unknown=sm.UnknownThreshold(0.5, 0.9, 0.9, 0.5, 10, True),
            metrics={},
            limits=sm.Limits(1_000_000, 1_000_000, ("JPEG",), 2_000_000, 2, 5.0, 1_000_000),
            default_top_k=3,
        )
        genres = GenreMetadata(
            genres=(GenreInfo("Cubism", 0.5), GenreInfo("Surrealism", 0.5)),
            image_size=SIZE,
            fallback_top_k=2,
            metrics={},
        )
        self.setup(meta, "artist-id:abc", genres, "artist-id-genre:abc")
        self.release = release

    async def classify(self, batch: np.ndarray) -> np.ndarray:
        # the artist probabilities, then the genre model's (as the model service answers)
        return np.tile(np.array([[0.1, 0.7, 0.2, 0.8, 0.1]], np.float32), (len(batch), 1))

    async def describe_explainer(self) -> dict[str, Any]:
        return {"method": explain.GRAD_CAM, "layers": ["conv"]}

    async def explain_packed(self, batch: np.ndarray) -> np.ndarray:
        await self.release.wait()
        n = len(batch)
        return explain.ExplanationBatch(
            classes=np.ones(n, np.int64),
            layer_index=np.zeros(n, np.int64),
            probabilities=np.tile(np.array([[0.1, 0.7, 0.2]], np.float32), (n, 1)),
            contributions=np.zeros((n, 1), np.float32),
            heatmaps=np.zeros((n, SIZE, SIZE), np.float32),
        ).pack()


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(JPEG)
    return path


def test_explanations_beyond_the_cap_get_429_while_predictions_go_on(
    monkeypatch: pytest.MonkeyPatch, upload: Path
) -> None:
    monkeypatch.setattr(predictor, "EXPLAIN_QUEUE_SECONDS", 0.3)

    async def scenario() -> tuple[list[Any], list[str | None]]:
        release = anyio.Event()
        svc = SlowExplainer(release)
        outcomes: list[Any] = []

        async def one_explanation() -> None:
            try:
                answer, png = await svc.explain_file(upload, None)
                assert png.startswith(b"\x89PNG")
                outcomes.append(answer.explanation.artist)
            except RequestError as exc:
                outcomes.append(exc.status)

        predicted: list[str | None] = []
        async with anyio.create_task_group() as tg:
            for _ in range(predictor.EXPLAIN_MAX_IN_FLIGHT + 2):
                tg.start_soon(one_explanation)
            await anyio.sleep(0.6)  # the two beyond the cap have given up by now
            for _ in range(3):  # while the admitted explanations still block
                (answer,) = await svc.predict_files([upload], None)
                predicted.append(answer.artist)
            release.set()
        return outcomes, predicted

    outcomes, predicted = anyio.run(scenario)
    assert predicted == ["Pablo Picasso"] * 3
    assert sorted(outcomes, key=str) == sorted(
        [429, 429] + ["Pablo Picasso"] * predictor.EXPLAIN_MAX_IN_FLIGHT, key=str
    )


def test_an_explanation_over_its_timeout_is_a_504(
    monkeypatch: pytest.MonkeyPatch, upload: Path
) -> None:
    monkeypatch.setattr(predictor, "EXPLAIN_TIMEOUT", 0.2)

    async def scenario() -> int:
        svc = SlowExplainer(anyio.Event())  # never released
        try:
            await svc.explain_file(upload, None)
        except RequestError as exc:
            assert exc.error == "explain_timeout"
            # the slot is given back: the cap does not shrink with each timeout
            assert svc.explain_slots.value == predictor.EXPLAIN_MAX_IN_FLIGHT
            return exc.status
        return 200

    assert anyio.run(scenario) == 504


def test_an_explanation_answers_the_genres_too(upload: Path) -> None:
    """/explain adds the explanation to /predict's answer, genres included (issue 12)."""

    async def scenario() -> Any:
        release = anyio.Event()
        release.set()
        answer, _png = await SlowExplainer(release).explain_file(upload, None)
        return answer

    answer = anyio.run(scenario)
    # the model service's genre columns (0.8, 0.1): Cubism passes its 0.5, Surrealism does not
    assert [(g.genre, g.above_threshold) for g in answer.genres] == [("Cubism", True)]
    assert answer.explanation.artist == CLASSES[1]
