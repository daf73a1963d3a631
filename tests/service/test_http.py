"""Over real HTTP: ``bentoml serve`` of the built Bento (entry + model service processes)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.service.helpers import (
    CLASSES,
    MAX_REQUEST_BYTES,
    Project,
    Server,
    bad_inputs,
    encode,
    form,
    good_inputs,
    painting,
    raw,
    real_jpegs,
    small_real_jpeg,
)

pytestmark = pytest.mark.slow

GOOD = ["jpeg", "png", "greyscale_jpeg", "rgba_png", "exif_rotated_jpeg"]


def close(a: dict[str, Any], b: dict[str, Any], tol: float = 1e-5) -> bool:
    """Same answer up to float noise: a batch of 16 and a batch of 1 may differ in the last
    bits. Compares every artist's probability (top_k holds all 3 classes by default)."""
    pa = {t["artist"]: t["probability"] for t in a["top_k"]}
    pb = {t["artist"]: t["probability"] for t in b["top_k"]}
    return (
        a["model"] == b["model"]
        and pa.keys() == pb.keys()
        and all(abs(pa[k] - pb[k]) <= tol for k in pa)
    )


@pytest.mark.parametrize("name", GOOD)
def test_good_images(server: Server, project: Project, name: str) -> None:
    r = httpx.post(f"{server.url}/predict", timeout=60, **form(good_inputs()[name]))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"]["tag"] == project.tag
    assert {t["artist"] for t in answer["top_k"]} == set(CLASSES)
    assert answer["artist"] in (None, answer["top_k"][0]["artist"])
    assert all(t["genre"] and t["nationality"] and t["years"] for t in answer["top_k"])
    # the genre model answers beside it (its Impressionism threshold of 0 is always passed)
    assert "Impressionism" in {g["genre"] for g in answer["genres"]}


def test_a_real_painting_with_curl_like_upload(server: Server) -> None:
    real_jpegs()  # skips with a reason when ../shared/real-sample is absent
    r = httpx.post(
        f"{server.url}/predict",
        timeout=60,
        files={"image": ("painting.jpg", small_real_jpeg(), "image/jpeg")},
    )
    assert r.status_code == 200 and r.json()["top_k"][0]["nationality"], r.text


def test_bad_inputs_get_4xx_json_and_the_server_keeps_serving(server: Server) -> None:
    failures = []
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for name, (kwargs, status, error) in bad_inputs().items():
            r = c.post("/predict", **kwargs)
            ok = (
                r.status_code == status
                and r.headers.get("content-type") == "application/json"
                and set(r.json()) == {"error", "detail"}
                and r.json()["error"] == error
            )
            if not ok:
                failures.append(f"{name}: {r.status_code} {r.text[:200]}")
        # Refused before the body is read: a 10x body gets its 413 too.
        r = c.post("/predict", **raw(b"\0" * (10 * MAX_REQUEST_BYTES)))
        if r.status_code != 413:
            failures.append(f"10x body: {r.status_code}")
        r = c.post("/predict", **form(good_inputs()["jpeg"]))
        assert r.status_code == 200, r.text
        assert c.get("/livez").status_code == 200 and c.get("/readyz").status_code == 200
    assert server.process.poll() is None, "the server died"
    assert not failures, "\n".join(failures)


def test_batch_and_metadata(server: Server, project: Project) -> None:
    jpeg, png = good_inputs()["jpeg"], good_inputs()["png"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        files = [("images", ("a.jpg", jpeg)), ("images", ("b.png", png))]
        r = c.post("/predict_batch", files=files)
        assert r.status_code == 200, r.text
        batch = r.json()
        singles = [c.post("/predict", **raw(d)).json() for d in (jpeg, png)]
        assert len(batch) == 2 and all(close(a, b) for a, b in zip(batch, singles, strict=True))
        meta = c.get("/metadata").json()
        assert meta["model"]["tag"] == project.tag
        assert meta["genres"]["model"]["tag"] == project.genre_tag
        assert all(answer["genres"] for answer in batch)
        assert [x["artist"] for x in meta["classes"]] == CLASSES
        assert c.get("/nope").status_code == 404


def test_200_requests_at_16_concurrent_match_sequential_answers(server: Server) -> None:
    images = [encode(painting(100 + i, size=(80 + 7 * i, 64)), "JPEG") for i in range(8)]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        expected = [c.post("/predict", **raw(d)).json() for d in images]

    async def run() -> list[tuple[int, int, Any]]:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as ac:

            async def one(i: int) -> tuple[int, int, Any]:
                async with gate:
                    r = await ac.post("/predict", **raw(images[i % len(images)]))
                    return i, r.status_code, r.json()

            return await asyncio.gather(*(one(i) for i in range(200)))

    results = asyncio.run(run())
    statuses = [s for _, s, _ in results]
    assert statuses == [200] * 200, {s: statuses.count(s) for s in set(statuses)}
    mismatched = [i for i, _, a in results if not close(a, expected[i % len(images)])]
    assert not mismatched, f"{len(mismatched)} answers differ from the sequential ones"


def test_explain_over_http_as_json_and_as_png(server: Server) -> None:
    jpeg = encode(painting(21, size=(120, 90)), "JPEG")
    with httpx.Client(base_url=server.url, timeout=120) as c:
        r = c.post("/explain", **form(jpeg))
        assert r.status_code == 200, r.text
        ex = r.json()["explanation"]
        assert ex["layer"] == "conv4_bn" and ex["image"]["media_type"] == "image/png"
        assert ex["artist"] == r.json()["top_k"][0]["artist"]
        png = c.post("/explain", headers={"accept": "image/png"}, **form(jpeg))
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
        bad = c.post("/explain", **raw(b"not an image at all"))
        assert bad.status_code == 415 and bad.json()["error"] == "not_an_image"
        page = c.get("/")
        assert page.status_code == 200 and "ui/app.js" in page.text


def test_predict_keeps_answering_while_explain_is_under_load(server: Server) -> None:
    """Explanations run in a process of their own behind a cap: a flood of them (far beyond
    the cap) must not stop /predict. Each /explain gets a 200 or a 429, never a 5xx."""
    images = [encode(painting(300 + i, size=(96, 72)), "JPEG") for i in range(4)]

    async def run() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as ac:
            explained: list[int] = []
            predicted: list[int] = []
            stop = asyncio.Event()

            async def flood(i: int) -> None:
                while not stop.is_set():
                    r = await ac.post("/explain", **raw(images[i % len(images)]))
                    explained.append(r.status_code)

            async def predictions() -> None:
                await asyncio.sleep(1.0)  # the flood is on
                for i in range(30):
                    r = await ac.post("/predict", **raw(images[i % len(images)]))
                    predicted.append(r.status_code)
                stop.set()

            await asyncio.gather(predictions(), *(flood(i) for i in range(12)))
            return explained, predicted

    explained, predicted = asyncio.run(run())
    assert predicted == [200] * 30
    assert explained and set(explained) <= {200, 429}, sorted(set(explained))


def test_the_entry_worker_that_decodes_uploads_holds_no_tensorflow(server: Server) -> None:
    # Uploads are decoded in the entry service's worker; the models live in their own workers.
    # The memory benchmark (bench/uploads.py) watches the entry worker, found by service name.
    from artist_id.localserve import service_workers

    workers = service_workers(server)
    assert set(workers) == {"artist_id", "artist_id_model", "artist_id_explainer"}

    def loads_tensorflow(proc: Any) -> bool:
        return any("tensorflow" in m.path for m in proc.memory_maps())

    assert not loads_tensorflow(workers["artist_id"])
    assert loads_tensorflow(workers["artist_id_model"])
