"""The HTTP layer without BentoML (artist_id.api): the guard in front of an app, the contract."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from python_multipart.multipart import parse_options_header

from artist_id import api, images

Message = dict[str, Any]


class Recorder:
    """An ASGI app that records the request it gets (headers and body) and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.calls.append((headers, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def settings(**changes: Any) -> api.GuardSettings:
    base = {"max_request_bytes": 10_000, "read_timeout_s": 5.0, "max_images": 3, "max_top_k": 4}
    return api.GuardSettings(**{**base, **changes})


def call(
    guard: api.RequestGuard,
    body: bytes | list[bytes],
    content_type: str | None,
    path: str = "/predict",
    query: bytes = b"",
    method: str = "POST",
    stall: float | None = None,
    chunk_delay: float = 0.0,
) -> tuple[int, dict[str, str], bytes]:
    """Run one request through the guard; ``stall`` waits that long instead of ending the body,
    ``chunk_delay`` before each chunk of it."""
    chunks = [body] if isinstance(body, bytes) else body
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    scope = {"type": "http", "method": method, "path": path, "query_string": query}
    scope["headers"] = headers
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            await anyio.sleep(chunk_delay)
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or bool(stall)}
        if stall:
            await anyio.sleep(stall)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        with anyio.fail_after(30):
            await guard(scope, receive, send)

    anyio.run(main)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], out_headers, body_out


def form_parts(headers: dict[str, str], body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, content) of each part of the body the app received."""
    _, params = parse_options_header(headers["content-type"])
    boundary = b"--" + params[b"boundary"]
    assert body.endswith(boundary + b"--\r\n")
    assert int(headers["content-length"]) == len(body)
    out = []
    for part in body.split(boundary)[1:-1]:
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        _, options = parse_options_header(head.split(b"\r\n")[0].split(b":", 1)[1])
        filename = options.get(b"filename")
        out.append((options[b"name"].decode(), filename.decode() if filename else None, content))
    return out


def multipart(*parts: tuple[bytes, bytes | None, bytes], boundary: bytes = b"XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out += b"--" + boundary + b"\r\n" + disposition + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


MP = "multipart/form-data; boundary=XyZ"


def test_a_raw_body_reaches_the_app_as_a_canonical_form_with_the_query_top_k() -> None:
    app = Recorder()
    status, _, _ = call(
        api.RequestGuard(app, settings()), b"\xff\xd8jpeg", "image/jpeg", query=b"top_k=2"
    )
    assert status == 200
    (headers, body) = app.calls[0]
    assert form_parts(headers, body) == [
        ("image", "upload-0", b"\xff\xd8jpeg"),
        ("top_k", None, b"2"),
    ]


def test_the_app_sees_only_the_file_field_and_a_checked_top_k() -> None:
    app = Recorder()
    body = multipart(
        (b"note", None, b"ignored"),
        (b"images", b"../../etc/passwd", b"one"),
        (b"extra", b"x.bin", b"dropped"),
        (b"images", b"a\x00b.jpg", b"two"),
        (b"top_k", None, b" 3 "),
    )
    status, _, _ = call(api.RequestGuard(app, settings()), body, MP, path="/predict_batch")
    assert status == 200
    assert form_parts(*app.calls[0]) == [
        ("images", "upload-0", b"one"),
        ("images", "upload-1", b"two"),
        ("top_k", None, b"3"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (multipart((b"image", None, b"http://169.254.169.254/")), MP, 400, "not_a_file"),
        (multipart((b"picture", b"a.jpg", b"x")), MP, 400, "missing_image"),
        (multipart((b"image", b"a", b"x"))[:-10], MP, 400, "bad_multipart"),
        (b"garbage", "multipart/form-data", 400, "bad_multipart"),
        (b"--XyZ\r\nContent-Type: x\r\n\r\ndata\r\n--XyZ--\r\n", MP, 400, "bad_multipart"),
        (multipart(*[(b"n", None, b"v")] * 70), MP, 400, "bad_multipart"),
        (multipart((b"image", b"a", b"x"), (b"top_k", b"k", b"2")), MP, 422, "invalid_top_k"),
        (multipart((b"image", b"a", b"x"), (b"top_k", None, b"5")), MP, 422, "invalid_top_k"),
        (multipart((b"image", b"a", b"x"), (b"top_k", None, b"0")), MP, 422, "invalid_top_k"),
        (multipart((b"image", b"a", b"x"), (b"image", b"b", b"y")), MP, 413, "too_many_images"),
        (b'{"image": "http://x"}', "application/json", 415, "unsupported_media_type"),
        (b"\x80\x04K\x01.", "application/vnd.bentoml+pickle", 415, "unsupported_media_type"),
        (b"image=http://x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"x" * 10_001, "image/jpeg", 413, "request_too_large"),
    ],
)
def test_refused_before_the_app(body: bytes, content_type: str, status: int, error: str) -> None:
    app = Recorder()
    got, headers, out = call(api.RequestGuard(app, settings()), body, content_type)
    assert (got, json.loads(out)["error"]) == (status, error), out
    assert headers["content-type"] == "application/json" and not app.calls


def test_too_many_images_is_one_answer_whatever_the_count() -> None:
    answers = set()
    for n in (4, 5, 20):
        body = multipart(*[(b"images", f"{i}.jpg".encode(), b"x") for i in range(n)])
        app = Recorder()
        status, _, out = call(api.RequestGuard(app, settings()), body, MP, path="/predict_batch")
        answers.add((status, out))
        assert not app.calls
    assert answers == {
        (
            413,
            b'{"error":"too_many_images",'
            b'"detail":"/predict_batch takes at most 3 images per request"}',
        )
    }


def test_a_stalled_body_gets_408_and_never_reaches_the_app() -> None:
    app = Recorder()
    guard = api.RequestGuard(app, settings(read_timeout_s=0.2))
    status, headers, out = call(guard, [b"\xff\xd8"], "image/jpeg", stall=5.0)
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(out)["error"] == "request_timeout" and not app.calls
    assert guard.in_flight == 0


class Slow:
    """An ASGI app that reads the body, then waits ``delay`` s before it answers 200, or
    answers its first byte at once and the rest after ``delay`` (``stream``)."""

    def __init__(self, delay: float, stream: bool = False) -> None:
        self.delay = delay
        self.stream = stream
        self.cancelled = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        try:
            if self.stream:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"[", "more_body": True})
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        if not self.stream:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"]" if self.stream else b"{}"})


def test_an_answer_past_the_request_timeout_is_a_504_in_the_error_form() -> None:
    app = Slow(delay=5.0)
    guard = api.RequestGuard(app, settings(request_timeout_s=0.3))
    status, _, out = call(guard, b"img", "image/png")
    assert status == 504 and app.cancelled
    assert json.loads(out) == {
        "error": "processing_timeout",
        "detail": "no answer within 0.3 s of the request: the server is overloaded; retry later",
    }
    assert guard.in_flight == 0


def test_the_request_timeout_counts_from_arrival_and_never_cuts_a_begun_answer() -> None:
    # in time: answered after 0.1 s of a 2 s limit
    assert (
        call(api.RequestGuard(Slow(0.1), settings(request_timeout_s=2.0)), b"i", "image/png")[0]
        == 200
    )
    # the body took 0.4 s of a 0.6 s limit, so the app's 0.3 s (alone in time) is too late
    app = Slow(0.3)
    guard = api.RequestGuard(app, settings(request_timeout_s=0.6))
    assert call(guard, [b"a", b"b", b"c", b"d"], "image/png", chunk_delay=0.1)[0] == 504
    assert app.cancelled
    # an answer begun in time is finished, however long its rest takes
    app = Slow(1.0, stream=True)
    status, _, out = call(api.RequestGuard(app, settings(request_timeout_s=0.5)), b"i", "image/png")
    assert (status, out, app.cancelled) == (200, b"[]", False)


def test_an_app_error_passes_the_deadline_as_it_is() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):  # not an exception group
        call(api.RequestGuard(broken, settings(request_timeout_s=5.0)), b"img", "image/png")


def test_a_body_over_the_cap_in_chunks_is_cut_off() -> None:
    app = Recorder()
    status, _, out = call(api.RequestGuard(app, settings()), [b"x" * 4000] * 3, "image/jpeg")
    assert (status, json.loads(out)["error"]) == (413, "request_too_large") and not app.calls


def test_admission_is_counted_after_the_body_and_refused_beyond_the_limit() -> None:
    app = Recorder()
    guard = api.RequestGuard(app, settings(max_concurrency=1))
    guard.in_flight = 1  # one request being processed
    status, _, out = call(guard, b"img", "image/png")
    assert (status, json.loads(out)["error"]) == (429, "too_many_requests") and not app.calls
    guard.in_flight = 0
    assert call(guard, b"img", "image/png")[0] == 200 and guard.in_flight == 0


def test_not_ready_and_wrong_method_and_other_routes() -> None:
    app = Recorder()
    status, _, out = call(api.RequestGuard(app, settings(max_top_k=0)), b"img", "image/png")
    assert (status, json.loads(out)["error"]) == (503, "not_ready")
    status, headers, out = call(api.RequestGuard(app, settings()), b"", None, method="GET")
    assert (status, headers["allow"], json.loads(out)["error"]) == (
        405,
        "POST",
        "method_not_allowed",
    )
    # Any other route only gets the body cap, and its body untouched.
    status, _, _ = call(api.RequestGuard(app, settings()), b"abc", "text/plain", path="/metadata")
    assert status == 200 and app.calls[-1][1] == b"abc"
    status, _, out = call(api.RequestGuard(app, settings()), [b"x" * 6000] * 2, None, path="/x")
    assert (status, json.loads(out)["error"]) == (413, "request_too_large")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("null", None), (" 2 ", 2), ("4", 4)]
)
def test_parse_top_k(value: str | None, expected: int | None) -> None:
    assert api.parse_top_k(value, 4) == expected


@pytest.mark.parametrize("value", ["0", "5", "-1", "2.0", "1e1", "２", "abc", "9" * 50])
def test_parse_top_k_refuses(value: str) -> None:
    with pytest.raises(api.RequestError) as info:
        api.parse_top_k(value, 4)
    assert (info.value.status, info.value.error) == (422, "invalid_top_k")


def test_every_decoder_reason_is_in_the_contract_with_its_status() -> None:
    for reason, status in images.STATUS_BY_REASON.items():
        assert api.ERRORS[reason][0] == status, reason


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    doc = api.openapi_document(settings(), title="t", version="v", description="d")
    validate(doc)  # type: ignore[arg-type]
    assert {"/predict", "/predict_batch", "/metadata"} <= set(doc["paths"])
    error_schema = doc["components"]["schemas"]["ErrorBody"]
    assert set(error_schema["properties"]["error"]["enum"]) == set(api.ERRORS)


def test_each_upload_route_documents_its_own_504_codes() -> None:
    doc = api.openapi_document(settings(), title="t", version="v", description="d")
    for path, codes in (
        ("/predict", ["processing_timeout"]),
        ("/predict_batch", ["processing_timeout"]),
        ("/explain", ["explain_timeout", "processing_timeout"]),
    ):
        timeout = doc["paths"][path]["post"]["responses"]["504"]
        assert timeout["description"] == "; ".join(f"`{c}`: {api.ERRORS[c][1]}" for c in codes)
        assert timeout["content"]["application/json"]["example"]["error"] == codes[0]


def test_an_early_refusal_reads_a_small_rest_of_the_body_and_keeps_the_connection() -> None:
    app = Recorder()
    guard = api.RequestGuard(app, settings())
    status, headers, _ = call(guard, [b"{", b'"a": 1', b"}"], "application/json")
    assert status == 415 and "connection" not in headers  # body drained: reusable
    status, headers, _ = call(guard, [b"{", b"more"], "application/json", stall=5.0)
    assert status == 415 and headers["connection"] == "close"  # rest never came: close
