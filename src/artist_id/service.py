"""The BentoML service: which artist painted this picture?

Two BentoML services, one process each under ``bentoml serve``:

- :class:`ArtistModel` (internal) loads the packaged Keras model (``safe_mode=True``) and
  exposes one batchable API, ``classify`` (uint8 images -> probabilities). BentoML's adaptive
  batching merges concurrent calls into one ``predict_on_batch``. It listens only on a
  private Unix socket of the entry service; it is not reachable from the network.
- :class:`ArtistID` (entry, port 3000) owns the public HTTP surface, a small Starlette app
  mounted on the service: ``POST /predict``, ``POST /predict_batch``, ``GET /metadata``
  (BentoML itself adds ``/livez``, ``/readyz`` and ``/metrics``). Every upload is parsed and
  decoded here, with :mod:`artist_id.images`, and every concurrent request's images go to
  ``classify``, so concurrent single-image requests are batched by the server.

Why the public routes are not ``@bentoml.api`` methods: BentoML 1.4's request parsing for
file-typed parameters downloads the file when the client sends a URL instead, answers a
malformed multipart body or a binary non-file part with a 500, and cannot take both a
multipart form and a raw body on one route. Owning the parsing lets every bad input get a
4xx JSON ``{"error", "detail"}`` and keeps URL fetching out entirely.

Hardening, outermost first: :class:`BodyLimitMiddleware` caps every request body (from
Content-Length before reading, and while streaming); the routes accept only
``multipart/form-data`` and raw ``image/*`` / ``application/octet-stream`` bodies (so the
BentoML pickle content type, JSON, text and forms are refused with 415); each image is
checked against the byte cap before decoding, against the pixel cap from its header, and
decoded only by the allow-listed Pillow plugins (the client's Content-Type is never trusted),
EXIF-transposed and converted to RGB. The model itself holds all preprocessing: the service
only crops/resizes to the model's input size (:func:`artist_id.images.fit_square`).

The model is ``artist-id:latest`` in the BentoML store (``make bento`` imports the file the
package stage exports); set ``ARTIST_ID_MODEL_TAG`` to serve another version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import anyio
import bentoml
import numpy as np
from bentoml.models import BentoModel
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from artist_id import images
from artist_id.packaging import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    ServingMetadata,
    load_metadata,
)

log = logging.getLogger("artist_id.service")

MODEL_TAG = os.environ.get("ARTIST_ID_MODEL_TAG", f"{MODEL_NAME}:latest")

# Used only until the entry service has read the packaged limits (no request is served
# before that: BentoML finishes the service's start-up before it accepts traffic).
DEFAULT_MAX_REQUEST_BYTES = 32_000_000
MAX_BATCH = 32  # images per model call after adaptive batching
DECODE_THREADS = 2  # concurrent decodes: bounds the memory of pixel buffers in flight
RAW_MEDIA_TYPES = ("application/octet-stream",)  # plus any image/*
MULTIPART = "multipart/form-data"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestError(Exception):
    """Bad input: answered with ``status`` and JSON ``{"error": error, "detail": detail}``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


# ------------------------------------------------------------------------------ middleware


@dataclass
class _RequestCap:
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES


REQUEST_CAP = _RequestCap()
"""The server-wide body cap; :class:`ArtistID` sets it from the packaged limits."""


class BodyLimitMiddleware:
    """Cap the body of every request at the ASGI level (BentoML 1.4 has no such setting).

    A Content-Length above the cap is answered 413 before a byte of the body is read; a body
    without Content-Length (chunked) is counted as it streams and cut off with a 413 as soon
    as it passes the cap. The app then sees a client disconnect and its response is dropped.
    """

    def __init__(self, app: ASGIApp, cap: _RequestCap = REQUEST_CAP) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap.max_bytes
        declared = _content_length(scope)
        if declared == -1:
            await error_response(400, "bad_request", "invalid Content-Length header")(
                scope, receive, send
            )
            return
        if declared is not None and declared > limit:
            await _too_large(declared, limit)(scope, receive, send)
            return

        received = 0
        started = False
        cut_off = False

        async def limited_receive() -> Message:
            nonlocal received, cut_off
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    if not started:
                        await _too_large(None, limit)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off:
                return  # the 413 has been sent; drop whatever the app answers
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size; None if absent, -1 if malformed."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


def _too_large(declared: int | None, limit: int) -> JSONResponse:
    size = f"is {declared:,} bytes" if declared is not None else "exceeds the limit"
    response = error_response(
        413, "request_too_large", f"the request body {size}; the limit is {limit:,} bytes"
    )
    response.headers["Connection"] = "close"
    return response


# --------------------------------------------------------------------------- model service


@bentoml.service(
    name="artist_id_model",
    workers=1,
    threads=1,
    traffic={"timeout": 60},
    # The entry's client to this service: BentoML 1.4.40 replaces its connection pool every
    # 100 requests / 300 s by closing the old one under requests still in flight, which fail
    # with "Server disconnected" (a 500 for the user) once concurrent traffic crosses the mark.
    # One worker behind a private socket has nothing to rebalance: keep the pool.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 10.0**9},
)
class ArtistModel:
    """The Keras model behind a batchable API; internal (reached only by :class:`ArtistID`)."""

    bento_model = BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from artist_id.models import load_model

        self.meta = load_metadata(self.bento_model.path_of(METADATA_FILE))
        size = self.meta.image_size
        self.model = load_model(
            self.bento_model.path_of(MODEL_FILE),
            image_size=size,
            num_classes=len(self.meta.classes),
        )
        # Trace the predict function now, not on the first requests: Keras retraces once for
        # a second batch size, then generalises to any batch size.
        for n in (1, 2):
            self.classify(np.zeros((n, size, size, 3), dtype=np.uint8))
        log.info(
            "loaded %s (%s, %d px) from %s",
            self.bento_model.tag,
            self.meta.model,
            size,
            self.bento_model.path,
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=10_000)
    def classify(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB images ``(n, size, size, 3)`` -> float32 probabilities ``(n, classes)``."""
        size = self.meta.image_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected uint8 (n, {size}, {size}, 3), got {batch.dtype} {batch.shape}"
            )
        proba = self.model.predict_on_batch(batch.astype(np.float32))
        return np.asarray(proba, dtype=np.float32)


# --------------------------------------------------------------------------- entry service


@dataclass(frozen=True)
class Upload:
    """The images of one request (raw bytes, not yet decoded) and the requested top-k."""

    images: list[tuple[str, bytes]]  # (name for error messages, bytes)
    top_k: str | None


class ArtistIDBase:
    """The entry service's logic, independent of how BentoML wires it (tested directly)."""

    meta: ServingMetadata
    tag: str

    def _setup(self, meta: ServingMetadata, tag: str) -> None:
        self.meta = meta
        self.tag = tag
        self.limits = images.DecodeLimits(
            max_bytes=meta.limits.max_bytes,
            max_pixels=meta.limits.max_pixels,
            formats=meta.limits.formats,
        )
        self.decode_limiter = anyio.CapacityLimiter(DECODE_THREADS)

    async def classify(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- input

    def top_k(self, value: str | None) -> int:
        n = len(self.meta.classes)
        if value is None or value == "":
            return self.meta.default_top_k
        text = value.strip()
        k = int(text) if text.isascii() and text.isdecimal() and len(text) <= 6 else 0
        if not 1 <= k <= n:
            raise RequestError(
                422, "invalid_top_k", f"top_k must be an integer from 1 to {n}, got {value[:20]!r}"
            )
        return k

    def prepare(self, name: str, data: bytes) -> np.ndarray:
        """Decode one upload (caps, allowlist, EXIF, RGB) into the model's uint8 input."""
        try:
            decoded = images.decode_bytes(data, self.limits)
        except images.ImageError as exc:
            raise RequestError(exc.status, exc.reason, f"{name}: {exc}") from None
        square = images.fit_square(decoded.image, self.meta.image_size)
        return np.asarray(square, dtype=np.uint8)

    async def decode_all(self, upload: Upload) -> np.ndarray:
        arrays = []
        for name, data in upload.images:
            arrays.append(
                await anyio.to_thread.run_sync(
                    self.prepare, name, data, limiter=self.decode_limiter
                )
            )
        return np.stack(arrays)

    # ---- output

    def answer(self, proba: np.ndarray, k: int) -> dict[str, Any]:
        """One JSON answer from one row of probabilities."""
        order = np.argsort(-proba, kind="stable")
        best = int(order[0])
        p_best = float(proba[best])
        unknown = p_best < self.meta.unknown.threshold
        top = []
        for i in order[:k]:
            info = self.meta.classes[int(i)]
            top.append(
                {
                    "artist": info.artist,
                    "probability": round(float(proba[int(i)]), 6),
                    "genre": info.genre,
                    "nationality": info.nationality,
                    "years": info.years,
                }
            )
        return {
            "artist": None if unknown else self.meta.classes[best].artist,
            "probability": round(p_best, 6),
            "unknown": bool(unknown),
            "top_k": top,
            "model": {
                "name": self.meta.model,
                "version": self.tag.partition(":")[2],
                "tag": self.tag,
            },
        }

    async def predict_upload(self, upload: Upload) -> list[dict[str, Any]]:
        k = self.top_k(upload.top_k)
        batch = await self.decode_all(upload)
        proba = await self.classify(batch)
        return [self.answer(row, k) for row in proba]

    def metadata(self) -> dict[str, Any]:
        m = self.meta
        return {
            "model": {
                "name": m.model,
                "version": self.tag.partition(":")[2],
                "tag": self.tag,
                "image_size": m.image_size,
                "sha256": m.model_sha256,
            },
            "classes": [vars(c) for c in m.classes],
            "metrics": m.metrics,
            "unknown": vars(m.unknown),
            "top_k": {"default": m.default_top_k, "max": len(m.classes)},
            "limits": {**vars(m.limits), "formats": list(m.limits.formats)},
            "provenance": m.provenance,
        }


@bentoml.service(
    name="artist_id",
    workers=1,
    # Requests beyond max_concurrency are answered 429 at once: with the body cap this bounds
    # the memory held by request bodies to max_concurrency * max_request_bytes.
    traffic={"timeout": 60, "max_concurrency": 64},
    labels={"project": "artist-id", "owner": "artist-id"},
)
class ArtistID(ArtistIDBase):
    """Public entry: ``POST /predict``, ``POST /predict_batch``, ``GET /metadata``."""

    bento_model = BentoModel(MODEL_TAG)
    model_service = bentoml.depends(ArtistModel)

    def __init__(self) -> None:
        meta = load_metadata(self.bento_model.path_of(METADATA_FILE))
        self._setup(meta, str(self.bento_model.tag))
        REQUEST_CAP.max_bytes = meta.limits.max_request_bytes
        log.info(
            "serving %s: %d classes, unknown below p=%.3f",
            self.tag,
            len(meta.classes),
            meta.unknown.threshold,
        )

    async def classify(self, batch: np.ndarray) -> np.ndarray:
        # A RemoteProxy under `bentoml serve` (adaptive batching happens there), a local
        # ArtistModel instance in-process; both expose to_async.
        import aiohttp

        try:
            result = await self.model_service.to_async.classify(batch)
        except aiohttp.ClientConnectionError:
            # A pooled keep-alive connection the model server closed as it was reused
            # (bentoml/BentoML#4971). Inference is idempotent: retry once on a new connection.
            log.warning("connection to the model service lost; retrying once")
            result = await self.model_service.to_async.classify(batch)
        return np.asarray(result, dtype=np.float32)


# ----------------------------------------------------------------------------- HTTP routes


def _service() -> ArtistIDBase:
    return cast(ArtistIDBase, bentoml.get_current_service())


async def read_upload(request: Request, field: str, max_images: int) -> Upload:
    """The images and top_k of a request: multipart field ``field`` or a raw image body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query_top_k = request.query_params.get("top_k")
    if media_type == MULTIPART:
        try:
            # One file more than allowed, so that too many files get a clear 413 below.
            form = await request.form(max_files=max_images + 1, max_fields=16, max_part_size=4096)
        except HTTPException as exc:  # starlette's wrapper of MultiPartException
            raise RequestError(400, "bad_multipart", str(exc.detail)) from None
        except ClientDisconnect:
            raise
        except Exception as exc:  # whatever else a hostile body makes the parser raise
            log.info("multipart parser failed", exc_info=True)
            raise RequestError(400, "bad_multipart", f"the form cannot be parsed: {exc}") from None
        try:
            values = form.getlist(field)
            top_k = form.get("top_k")
            if isinstance(top_k, UploadFile):
                raise RequestError(422, "invalid_top_k", "top_k must be a form field, not a file")
            files: list[tuple[str, bytes]] = []
            for i, value in enumerate(values):
                if not isinstance(value, UploadFile):
                    raise RequestError(
                        400,
                        "not_a_file",
                        f"'{field}' must be a file upload (curl -F {field}=@painting.jpg); "
                        "URLs and text are not accepted",
                    )
                label = value.filename or f"{field}[{i}]"
                files.append(
                    (f"{field}[{i}] ({label})" if len(values) > 1 else label, await value.read())
                )
        finally:
            await form.close()
        if not files:
            raise RequestError(
                400,
                "missing_image",
                f"no '{field}' file in the form (curl -F {field}=@painting.jpg)",
            )
        return Upload(files, top_k if top_k is not None else query_top_k)
    if media_type in RAW_MEDIA_TYPES or media_type.startswith("image/") or not media_type:
        body = await request.body()
        return Upload([(field, body)], query_top_k)
    raise RequestError(
        415,
        "unsupported_media_type",
        f"Content-Type {media_type!r} is not accepted: send multipart/form-data "
        f"(curl -F {field}=@painting.jpg) or the image itself as image/* or "
        "application/octet-stream",
    )


async def _handle(request: Request, field: str, single: bool) -> Response:
    service = _service()
    try:
        limit = 1 if single else service.meta.limits.max_images
        upload = await read_upload(request, field, limit)
        if single and len(upload.images) > 1:
            raise RequestError(
                400, "too_many_images", "/predict takes one image; send several to /predict_batch"
            )
        if len(upload.images) > limit:
            raise RequestError(
                413,
                "too_many_images",
                f"{len(upload.images)} images; the limit is {limit} per request",
            )
        answers = await service.predict_upload(upload)
    except RequestError as exc:
        log.info("%s rejected: %s %s (%s)", request.url.path, exc.status, exc.error, exc.detail)
        return error_response(exc.status, exc.error, exc.detail)
    except ClientDisconnect:
        # The body limit cut the upload off (it has answered 413) or the client went away.
        return Response(status_code=499)
    except Exception:
        # Answered here rather than by a Starlette handler: those re-raise after answering,
        # and uvicorn then drops the keep-alive connection under the client's next request.
        log.exception("unexpected error on %s", request.url.path)
        return error_response(
            500, "internal_error", "an unexpected error occurred; see the server log"
        )
    return JSONResponse(answers[0] if single else answers)


async def predict(request: Request) -> Response:
    """One image -> ``{artist, probability, unknown, top_k, model}``."""
    return await _handle(request, "image", single=True)


async def predict_batch(request: Request) -> Response:
    """Several images (multipart field ``images``) -> a list of answers, in order."""
    return await _handle(request, "images", single=False)


async def metadata(request: Request) -> Response:
    return JSONResponse(_service().metadata())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))


web = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
    ],
    exception_handlers={HTTPException: _http_error},
)

# `bentoml.service` returns a bentoml Service wrapping the class; its type stubs say the class.
_entry: Any = ArtistID
_entry.mount_asgi_app(web, path="/", name="artist_id_api")
_entry.add_asgi_middleware(BodyLimitMiddleware)
