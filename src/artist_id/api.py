"""The HTTP API of the service, independent of BentoML: contract, request guard, docs.

This module depends on Starlette, python-multipart and pydantic only (no BentoML, no model), so
the HTTP behaviour can be read, tested and kept when BentoML changes:

- **The error contract**: every refusal is ``{"error": <code>, "detail": <text>}`` with the
  status of :data:`ERRORS`; :class:`RequestError` carries one.
- **The wire schemas** (pydantic): :class:`Answer`, :class:`Metadata`, :class:`ErrorBody`.
- **The routes**: :data:`UPLOAD_ENDPOINTS` are the image-taking routes (served by the BentoML
  service's ``@bentoml.api`` methods, behind the guard); :func:`make_app` builds the other
  routes (``/metadata``, ``/docs``, ``/docs.json``, ``/``). Add a route in one of the two.
- **The guard**, :class:`RequestGuard`, an ASGI middleware in front of BentoML's request
  parsing. For every request it enforces the body cap (from Content-Length before reading,
  and while streaming). For an upload route it reads the whole body within the read timeout
  (else 408) *before* the request counts against the concurrency limit, parses it with its own
  limits (content type, multipart structure, file-vs-text fields, image count, ``top_k``), and
  hands BentoML a canonical multipart body it wrote itself: files only in the file field,
  ``top_k`` only as a checked integer. So BentoML's parser never sees a URL in a file field
  (which it would download), malformed multipart (which it answers with a 500), a pickle body
  or a raw image (which it cannot take), and the BentoML client, ``curl -F`` and a raw
  ``--data-binary`` upload all reach the same API method. An upload not answered within
  ``request_timeout_s`` of its arrival (an overloaded server) gets a 504 in this API's form,
  just before BentoML's own traffic timeout would answer in its form.
- **The docs**: :func:`openapi_document` (OpenAPI 3.1, the error contract included) and a
  Swagger UI page that loads only this server's files.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import Any
from urllib.parse import parse_qs

import anyio
from pydantic import BaseModel, Field
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("artist_id.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_CONCURRENCY = 64
"""Requests being processed at once (body received); beyond it the answer is 429 at once."""
SPOOL_BYTES = 1 << 20  # an upload above this goes to a temporary file, not memory
CHUNK_BYTES = 1 << 16
MAX_PARTS = 64  # multipart parts of any kind (files + fields) per request
MAX_FIELD_BYTES = 1024  # a text field (e.g. top_k)
MULTIPART = "multipart/form-data"
RAW_MEDIA_TYPES = ("application/octet-stream",)  # plus any image/* and no Content-Type

# ----------------------------------------------------------------------- error contract

ERRORS: Mapping[str, tuple[int, str]] = {
    "bad_request": (400, "malformed request, e.g. an invalid Content-Length"),
    "empty": (400, "the image file is empty"),
    "bad_multipart": (400, "the multipart form cannot be parsed"),
    "missing_image": (400, "no image file in the form"),
    "not_a_file": (400, "text (e.g. a URL) where a file is expected; URLs are never fetched"),
    "method_not_allowed": (405, "the route takes another HTTP method"),
    "request_timeout": (408, "the request body did not arrive within the read timeout"),
    "request_too_large": (413, "the request body is over the request size limit"),
    "too_many_bytes": (413, "an image file is over the per-image size limit"),
    "too_many_pixels": (413, "an image is over the pixel limit (read from its header)"),
    "too_many_images": (413, "more images than the route takes per request"),
    "unsupported_media_type": (415, "a Content-Type the route does not take"),
    "unsupported_format": (415, "an image format outside the allowlist"),
    "not_an_image": (415, "the file is not an image"),
    "truncated": (422, "the image file is cut short"),
    "decode_error": (422, "the image file is damaged"),
    "invalid_top_k": (422, "top_k is not an integer from 1 to the number of artists"),
    "too_many_requests": (429, "the server is at its concurrency limit; retry later"),
    "internal_error": (500, "an unexpected error; see the server log"),
    "not_ready": (503, "the service is starting"),
    "explain_timeout": (504, "the explanation took longer than its timeout"),
    "processing_timeout": (504, "no answer within the request timeout (server overloaded)"),
}
"""Every error code the service answers, with its HTTP status and meaning."""


class RequestError(Exception):
    """A refused request: answered with the status of ``error`` and ``{"error", "detail"}``."""

    def __init__(self, error: str, detail: str) -> None:
        if error not in ERRORS:
            raise ValueError(f"unknown error code {error!r}")
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.status = ERRORS[error][0]
        self.detail = detail

    def response(self) -> JSONResponse:
        return error_response(self.error, self.detail)


def error_response(error: str, detail: str, *, close: bool = False) -> JSONResponse:
    """The JSON error answer; ``close`` adds ``Connection: close`` (body left unread)."""
    response = JSONResponse({"error": error, "detail": detail}, status_code=ERRORS[error][0])
    if close:
        response.headers["Connection"] = "close"
    return response


def top_k_error(value: str, max_top_k: int) -> RequestError:
    return RequestError(
        "invalid_top_k", f"top_k must be an integer from 1 to {max_top_k}, got {value[:20]!r}"
    )


def parse_top_k(value: str | None, max_top_k: int) -> int | None:
    """``top_k`` as sent in a form or query (``None``, ``""`` and ``"null"`` mean the default)."""
    if value is None:
        return None
    text = value.strip()
    if text in ("", "null"):
        return None
    k = int(text) if text.isascii() and text.isdecimal() and len(text) <= 6 else 0
    if not 1 <= k <= max_top_k:
        raise top_k_error(value, max_top_k)
    return k


# ------------------------------------------------------------------------- wire schemas


class ArtistScore(BaseModel):
    artist: str
    probability: float = Field(ge=0.0, le=1.0)
    genre: str
    nationality: str
    years: str


class GenreScore(BaseModel):
    genre: str
    probability: float = Field(ge=0.0, le=1.0)
    above_threshold: bool = Field(
        description="probability >= the genre's threshold (chosen on validation); false only "
        "when no genre reaches its threshold and the most probable genres are listed instead"
    )


class ModelRef(BaseModel):
    name: str = Field(description="architecture of the packaged model, e.g. style_stats")
    version: str = Field(description="content hash of weights, labels, threshold and limits")
    tag: str = Field(description="BentoML model tag, artist-id:<version>")


class Answer(BaseModel):
    """Which artist painted the image: the best guess, or ``unknown``, and the top k."""

    artist: str | None = Field(description="null when unknown is true")
    probability: float = Field(ge=0.0, le=1.0, description="top-1 probability")
    unknown: bool = Field(description="top-1 probability below the packaged threshold")
    top_k: list[ArtistScore]
    genres: list[GenreScore] = Field(
        description="the genre model's answer, most probable first, also when unknown is true"
    )
    model: ModelRef


_ERROR_ENUM: dict[str, Any] = {"enum": sorted(ERRORS)}


class OverlayImage(BaseModel):
    media_type: str = Field(description="image/png")
    width: int
    height: int
    base64: str = Field(description="the PNG file, base64-encoded")


class Explanation(BaseModel):
    """Where the model looked for one artist (artist_id.explain)."""

    artist: str = Field(description="the artist explained: the best guess, even when unknown")
    probability: float = Field(ge=0.0, le=1.0)
    method: str = Field(description="grad-cam, or hires-cam for style_stats")
    layer: str = Field(description="the layer the heat map comes from")
    layer_contributions: dict[str, float] = Field(
        description="style_stats: each tapped layer's share of the class score (logit) "
        "against the training mean; the map comes from the largest. Empty otherwise."
    )
    peak: dict[str, float] = Field(
        description="x, y of the hottest point, as fractions of the centred square"
    )
    image: OverlayImage | None = Field(
        default=None, description="the heat map over the centred square the model sees"
    )


class ExplainedAnswer(Answer):
    """The answer of /predict plus where the model looked."""

    explanation: Explanation


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer of this project's routes."""

    error: str = Field(json_schema_extra=_ERROR_ENUM)
    detail: str


class ModelInfo(ModelRef):
    image_size: int
    sha256: str


class UnknownInfo(BaseModel):
    threshold: float
    target_precision: float
    val_precision: float
    val_coverage: float
    val_images: int
    reached: bool


class TopKInfo(BaseModel):
    default: int
    max: int


class LimitsInfo(BaseModel):
    max_bytes: int
    max_pixels: int
    formats: list[str]
    max_request_bytes: int
    max_images: int
    read_timeout_s: float
    pixel_budget: int


class ArtistInfoBody(BaseModel):
    artist: str
    genre: str
    nationality: str
    years: str


class GenreModelInfo(BaseModel):
    tag: str = Field(description="BentoML model tag, artist-id-genre:<the artist model's version>")
    version: str
    sha256: str
    weights_sha256: str


class GenreInfoBody(BaseModel):
    genre: str
    threshold: float = Field(ge=0.0, le=1.0)
    metrics: dict[str, Any] = Field(description="per evaluation: ap, f1, prior_ap, support")


class GenresInfo(BaseModel):
    """The genre model served beside the artist model."""

    model: GenreModelInfo
    genres: list[GenreInfoBody]
    fallback_top_k: int
    metrics: dict[str, Any] = Field(description="macro metrics of held_out_artists and paintings")
    excluded: list[str] = Field(description="genres left out: too few artists or paintings")
    note: str


class Metadata(BaseModel):
    """What the service serves: model, classes, metrics, threshold, limits, provenance, genres."""

    model: ModelInfo
    classes: list[ArtistInfoBody]
    metrics: dict[str, Any]
    unknown: UnknownInfo
    top_k: TopKInfo
    limits: LimitsInfo
    provenance: dict[str, Any]
    genres: GenresInfo


# ------------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class UploadEndpoint:
    """A route that takes image uploads; its handler is a ``@bentoml.api`` method."""

    path: str
    field: str  # the multipart file field (a raw body is this field's only file)
    batch: bool  # several images (up to Limits.max_images) or exactly one
    summary: str
    response: type[BaseModel] = Answer
    own_errors: tuple[str, ...] = ()  # error codes only this route answers


PREDICT = UploadEndpoint("/predict", "image", False, "Which artist painted this image?")
PREDICT_BATCH = UploadEndpoint(
    "/predict_batch", "images", True, "Several images in one request; answers in order"
)
EXPLAIN = UploadEndpoint(
    "/explain",
    "image",
    False,
    "The answer of /predict plus a heat map of where the model looked (JSON with a base64 "
    "PNG, or the PNG itself with Accept: image/png)",
    ExplainedAnswer,
    ("explain_timeout",),
)
UPLOAD_ENDPOINTS: tuple[UploadEndpoint, ...] = (PREDICT, PREDICT_BATCH, EXPLAIN)


@dataclass
class GuardSettings:
    """The guard's limits; the entry service fills them from the packaged metadata."""

    max_request_bytes: int = 32_000_000
    read_timeout_s: float = 30.0
    max_images: int = 16
    max_top_k: int = 0  # the number of classes; 0 until configured
    max_concurrency: int = MAX_CONCURRENCY
    # An upload route's whole request, from its arrival: past this, 504 processing_timeout
    # (the service sets it just below BentoML's traffic timeout, whose 504 is not this form).
    request_timeout_s: float = 58.0

    @property
    def ready(self) -> bool:
        return self.max_top_k > 0

    def max_files(self, endpoint: UploadEndpoint) -> int:
        return self.max_images if endpoint.batch else 1


def too_many_images(endpoint: UploadEndpoint, settings: GuardSettings) -> RequestError:
    """The one answer to too many images, whatever their number."""
    if endpoint.batch:
        detail = f"{endpoint.path} takes at most {settings.max_images} images per request"
    else:
        detail = (
            f"{endpoint.path} takes one image per request; send several to "
            f"{PREDICT_BATCH.path} (at most {settings.max_images})"
        )
    return RequestError("too_many_images", detail)


# ------------------------------------------------------------------------------- guard


DRAIN_BYTES = 1 << 20  # after an early refusal, read at most this much more of the body
DRAIN_SECONDS = 2.0


@dataclass
class _ReadState:
    complete: bool = False  # the whole body has been received


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of a body (bounded); True if it ended."""
    received = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while received <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return False
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
    return False


class _ClientGoneError(Exception):
    """The client disconnected before its body was complete: nobody to answer."""


@dataclass
class Upload:
    """A request's images (spooled: memory up to 1 MB, then a temporary file) and top_k."""

    files: list[SpooledTemporaryFile[bytes]] = field(default_factory=list)
    top_k: int | None = None

    def close(self) -> None:
        for f in self.files:
            f.close()


def _spool() -> SpooledTemporaryFile[bytes]:
    """A file in memory up to SPOOL_BYTES, then on disk; closed by its owner (Upload.close)."""
    return SpooledTemporaryFile(max_size=SPOOL_BYTES)


class _RawBody:
    """A body that is the image itself."""

    def __init__(self) -> None:
        self.file: SpooledTemporaryFile[bytes] = _spool()

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def finish(self) -> tuple[list[SpooledTemporaryFile[bytes]], str | None]:
        return [self.file], None

    def close(self) -> None:
        self.file.close()


class _MultipartBody:
    """A streaming multipart/form-data reader with this API's limits.

    Files of ``endpoint.field`` are spooled; ``top_k`` is kept if it is a short text field;
    other parts are counted and dropped. A text value in the file field (e.g. a URL), too many
    files or parts, and malformed structure are refused as soon as they are seen.
    """

    def __init__(self, boundary: bytes, endpoint: UploadEndpoint, max_files: int) -> None:
        self.endpoint = endpoint
        self.max_files = max_files
        self.files: list[SpooledTemporaryFile[bytes]] = []
        self.top_k: bytes | None = None
        self.parts = 0
        self.ended = False
        self._disposition = b""
        self._header_name = b""
        self._header_value = b""
        self._sink: SpooledTemporaryFile[bytes] | bytearray | None = None
        self._is_top_k = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_end": self._end,
            },
        )

    def write(self, data: bytes) -> None:
        try:
            self.parser.write(data)
        except FormParserError as exc:
            raise RequestError("bad_multipart", f"the form cannot be parsed: {exc}") from None

    def finish(self) -> tuple[list[SpooledTemporaryFile[bytes]], str | None]:
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise RequestError("bad_multipart", f"the form cannot be parsed: {exc}") from None
        if not self.ended:
            raise RequestError(
                "bad_multipart", "the form ends before its closing boundary (cut short?)"
            )
        if not self.files:
            field_name = self.endpoint.field
            raise RequestError(
                "missing_image", f"no '{field_name}' file in the form (curl -F {field_name}=@a.jpg)"
            )
        top_k = None if self.top_k is None else self.top_k.decode("utf-8", "replace")
        return self.files, top_k

    def close(self) -> None:
        for f in self.files:
            f.close()

    # python-multipart callbacks

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise RequestError("bad_multipart", f"more than {MAX_PARTS} parts in the form")
        self._disposition = b""
        self._sink = None
        self._is_top_k = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        kind, options = parse_options_header(self._disposition)
        if kind.lower() != b"form-data" or b"name" not in options:
            raise RequestError(
                "bad_multipart", 'every part needs Content-Disposition: form-data; name="..."'
            )
        name = options[b"name"].decode("utf-8", "replace")
        is_file = b"filename" in options
        if name == self.endpoint.field:
            if not is_file:
                raise RequestError(
                    "not_a_file",
                    f"'{name}' must be a file upload (curl -F {name}=@painting.jpg); "
                    "URLs and text are not accepted",
                )
            if len(self.files) >= self.max_files:
                raise RequestError("too_many_images", "")  # reworded by the guard
            spool = _spool()
            self.files.append(spool)
            self._sink = spool
        elif name == "top_k":
            if is_file:
                raise RequestError("invalid_top_k", "top_k must be a form field, not a file")
            self._is_top_k = True
            self._sink = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is None:
            return
        if isinstance(self._sink, bytearray):
            if len(self._sink) + end - start > MAX_FIELD_BYTES:
                raise RequestError("invalid_top_k", "top_k is too long")
            self._sink.extend(data[start:end])
        else:
            self._sink.write(data[start:end])

    def _part_end(self) -> None:
        if self._is_top_k and self.top_k is None and isinstance(self._sink, bytearray):
            self.top_k = bytes(self._sink)
        self._sink = None

    def _end(self) -> None:
        self.ended = True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _content_length(scope: Scope) -> int | None:
    """The declared body size; None if absent, -1 if malformed."""
    text = _header(scope, b"content-length")
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 19 else -1


def _too_large(declared: int | None, limit: int) -> JSONResponse:
    size = f"is {declared:,} bytes" if declared is not None else "exceeds the limit"
    return error_response(
        "request_too_large",
        f"the request body {size}; the limit is {limit:,} bytes",
        close=True,
    )


class RequestGuard:
    """ASGI middleware: body cap, read timeout, upload parsing and admission (see module doc).

    ``endpoints`` are the upload routes it parses; every other request only gets the body cap.
    ``settings`` is shared with the service, which fills it once the packaged limits are read.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: GuardSettings,
        endpoints: tuple[UploadEndpoint, ...] = UPLOAD_ENDPOINTS,
    ) -> None:
        self.app = app
        self.settings = settings
        self.endpoints = {e.path: e for e in endpoints}
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_request_bytes
        declared = _content_length(scope)
        if declared == -1:
            await error_response("bad_request", "invalid Content-Length header", close=True)(
                scope, receive, send
            )
            return
        if declared is not None and declared > limit:
            await _too_large(declared, limit)(scope, receive, send)
            return
        endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await self._capped(scope, receive, send)
        else:
            await self._upload(endpoint, scope, receive, send)

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other route: count the body as it streams, cut it off at the cap with 413."""
        limit = self.settings.max_request_bytes
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

    async def _upload(
        self, endpoint: UploadEndpoint, scope: Scope, receive: Receive, send: Send
    ) -> None:
        settings = self.settings
        arrived = anyio.current_time()
        if scope["method"] != "POST":
            response = error_response("method_not_allowed", f"{endpoint.path} takes POST")
            response.headers["Allow"] = "POST"
            await response(scope, receive, send)
            return
        if not settings.ready:
            await error_response("not_ready", "the service is starting; retry shortly", close=True)(
                scope, receive, send
            )
            return
        state = _ReadState()
        try:
            upload = await self._read(endpoint, scope, receive, state)
        except _ClientGoneError:
            return
        except RequestError as exc:
            log.info("%s refused: %s %s (%s)", endpoint.path, exc.status, exc.error, exc.detail)
            if not state.complete and exc.error not in ("request_timeout", "request_too_large"):
                # Read (and drop) a small rest of the body, so that the client, still
                # sending, gets to read the answer rather than a reset connection.
                state.complete = await _drain(receive)
            # A body left unread cannot be skipped on a kept-alive connection: close it.
            await error_response(exc.error, exc.detail, close=not state.complete)(
                scope, receive, send
            )
            return
        try:
            if self.in_flight >= settings.max_concurrency:
                await error_response(
                    "too_many_requests",
                    f"{settings.max_concurrency} requests are being processed; retry later",
                )(scope, receive, send)
                return
            self.in_flight += 1
            try:
                await self._answer_in_time(endpoint, upload, arrived, scope, receive, send)
            finally:
                self.in_flight -= 1
        finally:
            upload.close()

    async def _read(
        self, endpoint: UploadEndpoint, scope: Scope, receive: Receive, state: _ReadState
    ) -> Upload:
        """The whole body, within the read timeout and the cap, parsed with this API's limits."""
        settings = self.settings
        content_type = _header(scope, b"content-type") or ""
        media_type, params = parse_options_header(content_type)
        media = media_type.decode("latin-1").strip().lower()
        body: _RawBody | _MultipartBody
        max_files = settings.max_files(endpoint)
        if media == MULTIPART:
            boundary = params.get(b"boundary", b"")
            if not boundary or len(boundary) > 200:
                raise RequestError("bad_multipart", "multipart/form-data without a valid boundary")
            body = _MultipartBody(boundary, endpoint, max_files)
        elif media in RAW_MEDIA_TYPES or media.startswith("image/") or not media:
            body = _RawBody()
        else:
            raise RequestError(
                "unsupported_media_type",
                f"Content-Type {media!r} is not accepted: send multipart/form-data "
                f"(curl -F {endpoint.field}=@painting.jpg) or the image itself as image/* or "
                "application/octet-stream",
            )
        try:
            received = 0
            try:
                with anyio.fail_after(settings.read_timeout_s):
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            raise _ClientGoneError
                        chunk = message.get("body", b"")
                        received += len(chunk)
                        if received > settings.max_request_bytes:
                            raise RequestError(
                                "request_too_large",
                                "the request body exceeds the limit; the limit is "
                                f"{settings.max_request_bytes:,} bytes",
                            )
                        if not message.get("more_body", False):
                            state.complete = True
                        body.write(chunk)
                        if state.complete:
                            break
            except TimeoutError:
                declared = _content_length(scope)
                of = f" of {declared:,} declared" if declared is not None else ""
                raise RequestError(
                    "request_timeout",
                    f"the request body did not arrive within {settings.read_timeout_s:g} s "
                    f"({received:,}{of} bytes received)",
                ) from None
            files, form_top_k = body.finish()
        except RequestError as exc:
            body.close()
            if exc.error == "too_many_images":
                raise too_many_images(endpoint, settings) from None
            raise
        except BaseException:
            body.close()
            raise
        upload = Upload(files)
        try:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            raw_top_k = form_top_k if form_top_k is not None else query.get("top_k", [None])[0]
            upload.top_k = parse_top_k(raw_top_k, settings.max_top_k)
        except RequestError:
            upload.close()
            raise
        return upload

    async def _answer_in_time(
        self,
        endpoint: UploadEndpoint,
        upload: Upload,
        arrived: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Forward; if the app has not begun its answer ``request_timeout_s`` after the request
        arrived, cancel it and answer 504 ``processing_timeout`` (an answer already begun is
        never cut: like BentoML's own timeout, the deadline is to the first byte)."""
        limit = self.settings.request_timeout_s
        # A deadline on the app, lifted at its first byte (no task group: the app's own
        # exceptions reach the server as they are, not wrapped in an exception group).
        with anyio.CancelScope(deadline=arrived + limit) as deadline:

            async def watched_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    deadline.deadline = math.inf
                await send(message)

            await self._forward(endpoint, upload, scope, receive, watched_send)
        if deadline.cancelled_caught:
            log.warning("%s: no answer within %g s: 504", endpoint.path, limit)
            await error_response(
                "processing_timeout",
                f"no answer within {limit:g} s of the request: the server is overloaded; "
                "retry later",
            )(scope, receive, send)

    async def _forward(
        self, endpoint: UploadEndpoint, upload: Upload, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Call the app with a canonical multipart body written here."""
        boundary = secrets.token_hex(16)
        length, chunks = _canonical_body(boundary, endpoint.field, upload)
        headers = [
            (k, v)
            for k, v in scope.get("headers", [])
            if k not in (b"content-type", b"content-length", b"transfer-encoding")
        ]
        headers += [
            (b"content-type", f"{MULTIPART}; boundary={boundary}".encode("latin-1")),
            (b"content-length", str(length).encode("latin-1")),
        ]
        done = False

        async def replay() -> Message:
            nonlocal done
            if done:
                return await receive()  # the client's disconnect, if it goes away
            chunk = next(chunks, None)
            if chunk is None:
                done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}

        await self.app({**scope, "headers": headers}, replay, send)


def _canonical_body(boundary: str, field_name: str, upload: Upload) -> tuple[int, Iterator[bytes]]:
    """(length, chunks) of a multipart body: the files in ``field_name``, then ``top_k``."""
    parts: list[tuple[bytes, SpooledTemporaryFile[bytes] | None]] = []
    for i, file in enumerate(upload.files):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
            f'filename="upload-{i}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode("ascii")
        parts.append((head, file))
    if upload.top_k is not None:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n{upload.top_k}'
        ).encode("ascii")
        parts.append((head, None))
    tail = f"--{boundary}--\r\n".encode("ascii")
    sizes = []
    for _, spool in parts:
        if spool is not None:
            spool.seek(0, 2)
            sizes.append(spool.tell())
        else:
            sizes.append(0)
    length = sum(len(h) + n + 2 for (h, _), n in zip(parts, sizes, strict=True)) + len(tail)

    def chunks() -> Iterator[bytes]:
        for head, spool in parts:
            yield head
            if spool is not None:
                spool.seek(0)
                while block := spool.read(CHUNK_BYTES):
                    yield block
            yield b"\r\n"
        yield tail

    return length, chunks()


# -------------------------------------------------------------------------------- docs


def _binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


def _schemas() -> dict[str, Any]:
    """Component schemas of every wire model (JSON Schema 2020-12, as OpenAPI 3.1 takes)."""
    schemas: dict[str, Any] = {}
    for model in (Answer, ExplainedAnswer, ErrorBody, Metadata):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _error_responses(statuses: list[int], own: tuple[str, ...] = ()) -> dict[str, Any]:
    """The error responses of these statuses: every route's codes, plus ``own``."""
    routes_own = {code for ep in UPLOAD_ENDPOINTS for code in ep.own_errors}
    out = {}
    for status in statuses:
        codes = sorted(
            code
            for code, (s, _) in ERRORS.items()
            if s == status and (code not in routes_own or code in own)
        )
        lines = "; ".join(f"`{c}`: {ERRORS[c][1]}" for c in codes)
        example = {"error": codes[0], "detail": ERRORS[codes[0]][1]}
        out[str(status)] = {
            "description": lines,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"},
                    "example": example,
                }
            },
        }
    return out


def openapi_document(
    settings: GuardSettings, *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API: routes, request and response schemas, errors."""
    top_k_schema: dict[str, Any] = {
        "type": "integer",
        "minimum": 1,
        "maximum": max(settings.max_top_k, 1),
        "description": "number of artists in top_k (default: the packaged value)",
    }
    upload_statuses = [400, 405, 408, 413, 415, 422, 429, 500, 503, 504]
    paths: dict[str, Any] = {}
    for ep in UPLOAD_ENDPOINTS:
        upload_errors = _error_responses(upload_statuses, ep.own_errors)
        files: dict[str, Any] = _binary("the image (JPEG, PNG or WEBP); a URL is refused")
        if ep.batch:
            files = {"type": "array", "items": files, "minItems": 1}
            files["maxItems"] = settings.max_images
        form_schema = {
            "type": "object",
            "required": [ep.field],
            "properties": {ep.field: files, "top_k": top_k_schema},
        }
        content: dict[str, Any] = {
            MULTIPART: {
                "schema": form_schema,
                "encoding": {ep.field: {"contentType": "image/jpeg, image/png, image/webp"}},
            }
        }
        parameters = []
        if not ep.batch:
            raw = {"schema": _binary("the image itself")}
            content.update({"image/*": raw, "application/octet-stream": raw})
            parameters.append(
                {
                    "name": "top_k",
                    "in": "query",
                    "required": False,
                    "schema": top_k_schema,
                    "description": "with a raw image body (a form field wins over it)",
                }
            )
        response_schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ep.response.__name__}"}
        if ep.batch:
            response_schema = {"type": "array", "items": response_schema}
        paths[ep.path] = {
            "post": {
                "operationId": ep.path.strip("/"),
                "summary": ep.summary,
                "parameters": parameters,
                "requestBody": {"required": True, "content": content},
                "responses": {
                    "200": {
                        "description": "one answer" if not ep.batch else "one answer per image",
                        "content": {
                            "application/json": {"schema": response_schema},
                            **(
                                {"image/png": {"schema": _binary("the overlay")}}
                                if ep is EXPLAIN
                                else {}
                            ),
                        },
                    },
                    **upload_errors,
                },
            }
        }
    paths["/metadata"] = {
        "get": {
            "operationId": "metadata",
            "summary": "Model, classes, metrics, unknown threshold, limits, provenance",
            "responses": {
                "200": {
                    "description": "the packaged metadata",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Metadata"}}
                    },
                }
            },
        }
    }
    for path, what in (("/livez", "alive"), ("/readyz", "ready to serve")):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "summary": f"200 when the server is {what}",
                "responses": {"200": {"description": what}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


# Swagger UI from the copy bundled with BentoML (served by it under /static_content/), started
# by our own script: no analytics tag, no validator badge (validatorUrl: null), nothing loaded
# from another host.
DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>artist-id API</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/docs.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
</script>
</body>
</html>
"""


# ----------------------------------------------------------------------------- web page

WEB_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
WEB_HEADERS = {
    # Nothing loads from anywhere but this server; no inline scripts or styles.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def web_file(name: str) -> bytes:
    """A file of the page (package data ``artist_id/web``, also in the Bento), read once."""
    return (importlib.resources.files("artist_id") / "web" / name).read_bytes()


def web_response(name: str) -> Response:
    if name not in WEB_FILES:
        return error_response("bad_request", f"no such file: {name[:60]!r}")
    return Response(web_file(name), media_type=WEB_FILES[name], headers=WEB_HEADERS)


def wants_png(accept: str) -> bool:
    """True when an ``Accept`` header asks for ``image/png`` before (or without) JSON."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "image/png" not in kinds:
        return False
    return "application/json" not in kinds or kinds.index("image/png") < kinds.index(
        "application/json"
    )


def make_app(
    metadata: Callable[[], dict[str, Any]], openapi: Callable[[], dict[str, Any]]
) -> Starlette:
    """The non-upload routes (mounted on the entry service, in front of BentoML's own)."""

    async def metadata_route(request: Request) -> Response:
        return JSONResponse(metadata())

    async def openapi_route(request: Request) -> Response:
        return JSONResponse(openapi())

    async def docs_route(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    async def index_route(request: Request) -> Response:
        # The web page (artist_id/web), in place of BentoML's index (which loads Google Tag
        # Manager); the API docs are at /docs.
        return web_response("index.html")

    async def asset_route(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "index.html" or name not in WEB_FILES:
            return JSONResponse(
                {"error": "bad_request", "detail": f"no such file: {name[:60]!r}"},
                status_code=404,
            )
        return web_response(name)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error_response(code, str(exc.detail))

    return Starlette(
        routes=[
            Route("/metadata", metadata_route, methods=["GET"]),
            Route("/docs.json", openapi_route, methods=["GET"]),
            Route("/docs", docs_route, methods=["GET"]),
            Route("/", index_route, methods=["GET"]),
            Route("/ui/{name}", asset_route, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
