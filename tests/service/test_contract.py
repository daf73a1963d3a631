"""Against ``bentoml serve``: BentoML's own clients, the OpenAPI document and docs page, and
uploads that are slow or stalled (issue 13, sections 2 and 3)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pytest
from bentoml.exceptions import BentoMLException

from artist_id import api
from tests.service.helpers import (
    CLASSES,
    MAX_IMAGES,
    READ_TIMEOUT_S,
    Server,
    form,
    good_inputs,
    raw,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    out = {}
    for name, data in good_inputs().items():
        out[name] = folder / f"{name}.img"
        out[name].write_bytes(data)
    out["text"] = folder / "notes.jpg"
    out["text"].write_bytes(b"not an image at all\n" * 20)
    return out


@contextlib.contextmanager
def recording_http_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request it gets (and serves a JPEG)."""
    hits: list[str] = []
    jpeg = good_inputs()["jpeg"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(jpeg)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/painting.jpg", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------- BentoML's own clients


def test_the_sync_client_sees_the_api_and_answers_like_curl(
    server: Server, files: dict[str, Path]
) -> None:
    with bentoml.SyncHTTPClient(server.url, timeout=60) as client:
        assert {"predict", "predict_batch"} <= set(client.endpoints)
        for name in ("jpeg", "png", "exif_rotated_jpeg"):
            by_client = client.predict(image=files[name])
            by_curl = httpx.post(
                f"{server.url}/predict", timeout=60, **form(files[name].read_bytes())
            )
            assert by_client == by_curl.json(), name
        two = client.predict(image=files["jpeg"], top_k=2)
        assert [t["artist"] for t in two["top_k"]] == [
            t["artist"] for t in client.predict(image=files["jpeg"])["top_k"][:2]
        ]
        batch = client.predict_batch(images=[files["jpeg"], files["png"]], top_k=1)
        curl = httpx.post(
            f"{server.url}/predict_batch",
            timeout=60,
            files=[
                ("images", ("a", files["jpeg"].read_bytes())),
                ("images", ("b", files["png"].read_bytes())),
            ],
            data={"top_k": "1"},
        )
        assert batch == curl.json() and len(batch) == 2 and len(batch[0]["top_k"]) == 1


def test_the_sync_client_gets_the_error_contract(server: Server, files: dict[str, Path]) -> None:
    with bentoml.SyncHTTPClient(server.url, timeout=60) as client:
        with pytest.raises(BentoMLException) as info:
            client.predict(image=files["text"])
        curl = httpx.post(f"{server.url}/predict", timeout=60, **form(files["text"].read_bytes()))
        assert info.value.error_code == curl.status_code == 415
        assert json.loads(str(info.value)) == curl.json()
        assert curl.json()["error"] == "not_an_image"
        with pytest.raises(BentoMLException) as info:
            client.predict(image=files["jpeg"], top_k=len(CLASSES) + 1)
        assert info.value.error_code == 422
        assert json.loads(str(info.value))["error"] == "invalid_top_k"
        with pytest.raises(BentoMLException) as info:
            client.predict_batch(images=[files["jpeg"]] * (MAX_IMAGES + 1))
        assert info.value.error_code == 413
        assert json.loads(str(info.value))["error"] == "too_many_images"


def test_a_url_in_place_of_a_file_is_refused_and_never_fetched(server: Server) -> None:
    with (
        recording_http_server() as (url, hits),
        bentoml.SyncHTTPClient(server.url, timeout=60) as client,
    ):
        # The client sends a URL string as a form field (urlencoded, as no file goes with
        # it), which BentoML 1.4 would download.
        with pytest.raises(BentoMLException) as info:
            client.predict(image=url)
        assert info.value.error_code == 415
        assert json.loads(str(info.value))["error"] == "unsupported_media_type"
        with pytest.raises(BentoMLException) as info:
            client.predict_batch(images=[url])
        assert info.value.error_code == 415
        # The same URL as a text part of a multipart form.
        r = httpx.post(f"{server.url}/predict", data={"image": url}, files={"x": ("x", b"x")})
        assert (r.status_code, r.json()["error"]) == (400, "not_a_file")
        r = httpx.post(f"{server.url}/predict", content=url, headers={"content-type": "text/plain"})
        assert r.status_code == 415
        time.sleep(0.5)
    assert hits == []


def test_the_async_client(server: Server, files: dict[str, Path]) -> None:
    async def run() -> tuple[Any, Any]:
        async with bentoml.AsyncHTTPClient(server.url, timeout=60) as client:
            one = await client.predict(image=files["png"])
            with pytest.raises(BentoMLException) as info:
                await client.predict(image=files["text"])
            return one, info.value

    one, error = asyncio.run(run())
    assert one == httpx.post(f"{server.url}/predict", **form(files["png"].read_bytes())).json()
    assert error.error_code == 415


# ------------------------------------------------------------------- OpenAPI and docs page


def test_the_openapi_document_is_valid_and_describes_the_api(server: Server) -> None:
    from openapi_spec_validator import validate

    doc = httpx.get(f"{server.url}/docs.json").json()
    validate(doc)
    assert {"/predict", "/predict_batch", "/metadata"} <= set(doc["paths"])
    predict = doc["paths"]["/predict"]["post"]
    form_schema = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form_schema["properties"]["image"]["format"] == "binary"
    assert form_schema["properties"]["top_k"]["maximum"] == len(CLASSES)
    assert {"image/*", "application/octet-stream"} <= set(predict["requestBody"]["content"])
    batch_form = doc["paths"]["/predict_batch"]["post"]["requestBody"]["content"]
    assert batch_form[api.MULTIPART]["schema"]["properties"]["images"]["maxItems"] == MAX_IMAGES
    for status in ("400", "408", "413", "415", "422", "429"):
        media = predict["responses"][status]["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert api.ERRORS[media["example"]["error"]][0] == int(status)
    assert "`request_timeout`" in predict["responses"]["408"]["description"]


def _validator(doc: dict[str, Any], ref: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(doc))
    schema = {"$ref": "urn:doc" + ref["$ref"]} if "$ref" in ref else ref
    if schema.get("type") == "array":
        schema = {**schema, "items": {"$ref": "urn:doc" + schema["items"]["$ref"]}}
    return Draft202012Validator(schema, registry=registry)


def test_real_answers_match_the_documented_schemas(server: Server) -> None:
    doc = httpx.get(f"{server.url}/docs.json").json()

    def schema(path: str, method: str, status: str) -> Any:
        op = doc["paths"][path][method]
        return _validator(doc, op["responses"][status]["content"]["application/json"]["schema"])

    jpeg = good_inputs()["jpeg"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        schema("/predict", "post", "200").validate(c.post("/predict", **raw(jpeg)).json())
        batch = c.post("/predict_batch", files=[("images", ("a", jpeg))] * 2).json()
        schema("/predict_batch", "post", "200").validate(batch)
        schema("/metadata", "get", "200").validate(c.get("/metadata").json())
        error = c.post("/predict", **raw(b"nope"))
        schema("/predict", "post", str(error.status_code)).validate(error.json())


def test_the_docs_page_loads_nothing_from_another_host(server: Server) -> None:
    import re

    with httpx.Client(base_url=server.url, timeout=30) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert "googletagmanager" not in page.text.lower()
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs)
        for ref in refs:
            assert c.get(ref).status_code == 200, ref
        assert "validatorUrl: null" in page.text  # Swagger UI's default badge calls a validator
        # "/" is the web page (BentoML's own index, which loads Google Tag Manager, is gone).
        index = c.get("/", follow_redirects=False)
        assert index.status_code == 200 and 'href="docs"' in index.text
        assert "googletagmanager" not in index.text.lower()
        local = re.findall(r'(?:src|href)="([^"]+)"', index.text)
        assert local and not any(re.match(r"(?i)[a-z]+:|//", ref) for ref in local)
        for ref in local:
            assert c.get(f"/{ref}").status_code == 200, ref


class _DevTools:
    """A headless Chromium driven over the DevTools protocol: what one page requests."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                # Chromium's own background traffic (time sync, sign-in...) goes to a dead
                # proxy; it is not the page's and is not what this test counts.
                "--proxy-server=http://127.0.0.1:9",
                "about:blank",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + 60
        self.endpoint = ""
        while time.monotonic() < deadline and not self.endpoint:
            line = self.process.stderr.readline()
            if "DevTools listening on " in line:
                self.endpoint = line.split("DevTools listening on ", 1)[1].strip()
        assert self.endpoint, "chromium did not start its DevTools endpoint"

    def visit(self, url: str, settle: float = 3.0) -> tuple[list[str], list[str]]:
        """(every URL the page requested, the data-path of every rendered Swagger operation)."""
        from httpx_ws import connect_ws

        http_base = "http://" + self.endpoint.split("/")[2]
        targets = httpx.get(f"{http_base}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        requested: list[str] = []
        with connect_ws(page["webSocketDebuggerUrl"], max_message_size_bytes=1 << 24) as ws:
            next_id = 0

            def call(method: str, **params: Any) -> Any:
                nonlocal next_id
                next_id += 1
                ws.send_json({"id": next_id, "method": method, "params": params})
                while True:
                    message = ws.receive_json()
                    if message.get("method") == "Network.requestWillBeSent":
                        requested.append(message["params"]["request"]["url"])
                    if message.get("id") == next_id:
                        return message.get("result", {})

            call("Network.enable")
            call("Page.enable")
            call("Page.navigate", url=url)
            deadline = time.monotonic() + 60
            quiet_since = time.monotonic()
            seen = 0
            paths: list[str] = []
            while time.monotonic() < deadline:
                js = "[...document.querySelectorAll('.opblock')].map(e => e.id)"
                found = call("Runtime.evaluate", expression=js, returnByValue=True)
                paths = found.get("result", {}).get("value") or []
                if len(requested) != seen:
                    seen, quiet_since = len(requested), time.monotonic()
                if paths and time.monotonic() - quiet_since > settle:
                    break
                time.sleep(0.3)
        return requested, paths

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def test_a_browser_renders_the_docs_page_without_third_party_requests(
    server: Server, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    browser = _DevTools(chromium, tmp_path / "profile")
    try:
        requested, operations = browser.visit(f"{server.url}/docs")
    finally:
        browser.close()
    assert f"{server.url}/docs.json" in requested  # Swagger UI fetched the document
    # Swagger UI rendered every route (operation ids: operations-<tag>-<operationId>).
    for op in ("predict", "predict_batch", "explain", "metadata"):
        assert any(o.endswith(f"-{op}") for o in operations), (op, operations)
    elsewhere = [u for u in requested if not u.startswith((server.url + "/", "data:", "blob:"))]
    assert elsewhere == []


# ------------------------------------------------------------------ slow and stalled bodies


def _stalled_upload(url: str, declared: int = 100_000) -> socket.socket:
    """A POST /predict that announces ``declared`` bytes, sends 9 and stops."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode("ascii") + b"\xff\xd8\xff" * 3)
    return sock


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, Any]]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_stalled_body_gets_408_in_the_error_form_after_the_read_timeout(server: Server) -> None:
    sock = _stalled_upload(server.url)
    start = time.monotonic()
    try:
        status, body = _read_response(sock, timeout=READ_TIMEOUT_S + 20)
    finally:
        sock.close()
    elapsed = time.monotonic() - start
    assert status == 408 and body["error"] == "request_timeout", body
    assert "9 of 100,000 declared bytes" in body["detail"]
    assert READ_TIMEOUT_S - 0.5 <= elapsed < READ_TIMEOUT_S + 15


def test_a_slow_body_that_keeps_sending_still_gets_408(server: Server) -> None:
    sock = _stalled_upload(server.url)
    try:
        for _ in range(int(READ_TIMEOUT_S * 4) + 2):  # a byte every 0.5 s, past the timeout
            with contextlib.suppress(OSError):
                sock.sendall(b"\0")
            time.sleep(0.5)
        status, body = _read_response(sock, timeout=10)
    finally:
        sock.close()
    assert status == 408 and body["error"] == "request_timeout"


def test_stalled_uploads_take_no_processing_slot(server: Server) -> None:
    stalled = [_stalled_upload(server.url) for _ in range(api.MAX_CONCURRENCY + 4)]
    try:
        time.sleep(0.5)
        r = httpx.post(f"{server.url}/predict", timeout=60, **form(good_inputs()["jpeg"]))
        assert r.status_code == 200, r.text
    finally:
        for sock in stalled:
            sock.close()
