"""The BentoML service: which artist painted this picture?

Two BentoML services, one process each under ``bentoml serve``:

- :class:`ArtistModel` (internal; the one place model services are declared) loads the packaged
  Keras models (``safe_mode=True``), the artist model and the genre model packaged with it
  (same version), and exposes one batchable API, ``classify`` (uint8 images -> artist
  probabilities, then genre probabilities). BentoML's adaptive batching merges concurrent
  calls into one batch for both models. It listens only on a private Unix socket of the entry
  service.
- :class:`ArtistExplainer` (internal) holds a second copy of the model for ``/explain``: heat
  maps of where the model looked (:mod:`artist_id.explain`), batched up to
  ``EXPLAIN_MAX_BATCH``. A process of its own, on ``EXPLAIN_THREADS`` TensorFlow thread(s), so
  that explanations (a backward pass, several times the cost of a prediction) never queue in
  front of ``classify`` and leave it a core; the entry admits at most
  ``predictor.EXPLAIN_MAX_IN_FLIGHT`` at once (429 beyond) and gives each
  ``predictor.EXPLAIN_TIMEOUT`` seconds (504).
- :class:`ArtistID` (entry, port 3000) declares the public API as ``@bentoml.api`` methods,
  ``predict``, ``predict_batch`` and ``explain`` (so BentoML's own clients, ``/schema.json``
  and the OpenAPI document see them), decodes the uploads and builds the answers
  (:class:`artist_id.predictor.Predictor`), and asks ``classify`` for probabilities.

The HTTP layer lives in :mod:`artist_id.api` (no BentoML in it): the request guard in front of
BentoML's parsing (body cap, read timeout, upload parsing, URL and malformed-multipart refusal,
admission), the error contract, ``/metadata`` and the docs. The routes are declared there
(:data:`artist_id.api.UPLOAD_ENDPOINTS` and :func:`artist_id.api.make_app`); a test checks that
the ``@bentoml.api`` methods below match them.

The models are ``artist-id:latest`` and ``artist-id-genre:latest`` in the BentoML store
(``make bento`` imports the files the package stage exports); set ``ARTIST_ID_MODEL_TAG`` and
``ARTIST_ID_GENRE_MODEL_TAG`` to serve another version (both services refuse to start on two
models of different versions). Every answer carries a ``genres`` field
(:func:`artist_id.genre_serving.genres_answer`), also when the artist is "unknown".
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import bentoml
import numpy as np
from bentoml.models import BentoModel
from pydantic import Field
from starlette.responses import Response

from artist_id import api
from artist_id.explain import OVERLAY_SIZE
from artist_id.genre_serving import GENRE_METADATA_FILE, GENRE_MODEL_NAME, load_genre_metadata
from artist_id.predictor import Predictor
from artist_id.serving_metadata import METADATA_FILE, MODEL_FILE, MODEL_NAME, load_metadata

log = logging.getLogger("artist_id.service")

MODEL_TAG = os.environ.get("ARTIST_ID_MODEL_TAG", f"{MODEL_NAME}:latest")
# The genre model packaged with it (same version; checked at start-up by check_pair).
GENRE_TAG = os.environ.get("ARTIST_ID_GENRE_MODEL_TAG", f"{GENRE_MODEL_NAME}:latest")
MAX_BATCH = 32  # images per model call after adaptive batching
EXPLAIN_MAX_BATCH = 4  # images per explainer call after adaptive batching
EXPLAIN_THREADS = 1  # CPU threads of the explainer's TensorFlow: the other cores stay free
REQUEST_TIMEOUT_S = 60  # BentoML's traffic timeout: the whole request, body included (504)
# The guard answers an unanswered upload this much sooner, in the API's error form (W8).
REQUEST_TIMEOUT_MARGIN_S = 2
# Benchmark baseline only: decode uploads at full size with no pixel budget (bench/uploads.py).
FULL_DECODE = os.environ.get("ARTIST_ID_FULL_DECODE") == "1"

TopK = Annotated[
    int | None, Field(ge=1, description="number of artists in top_k (default: packaged value)")
]

# ================================================================ BentoML 1.4 workarounds
# Everything below that exists only because of BentoML 1.4 (pinned `bentoml>=1.4.39,<1.5`,
# seen with 1.4.40). Revisit each item when the pin moves; the tests named guard it.
#
# W1. A URL sent in place of a file is downloaded by the server (`MultipartSerde.ensure_file`,
#     since bentoml/BentoML#4411, 1.2), and a malformed multipart body or a text part where a
#     file is expected ends in a 500 (no upstream issue found). -> The request guard
#     (artist_id.api.RequestGuard) parses uploads itself and hands BentoML a canonical body.
#     Tests: test_a_url_in_place_of_a_file_is_refused_and_never_fetched, test_no_input_makes_a_500.
# W2. No request body limit and no read timeout (no upstream issue found): a stalled upload
#     holds its request until the traffic timeout, then a 504 in BentoML's own form. -> The
#     guard caps the body and answers 408 after `package.read_timeout_s`.
#     Tests: test_a_stalled_body_gets_408_in_the_error_form_after_the_read_timeout.
# W3. `traffic.max_concurrency` counts a request from its first byte (no upstream issue found),
#     so 64 stalled uploads make every other client get 429. -> No max_concurrency on the
#     entry service; the guard admits a request once its body is in (api.MAX_CONCURRENCY).
#     Tests: test_stalled_uploads_take_no_processing_slot.
# W4. The client to a dependency replaces its connection pool every 100 requests / 300 s by
#     closing the old one under requests still in flight ("Server disconnected" -> 500),
#     since bentoml/BentoML#5522 (1.4.31; reported as bentoml/BentoML#5540). One worker
#     behind a private socket has nothing to rebalance: keep the pool (`RUNNER_CONNECTION`).
#     Tests: test_200_requests_at_16_concurrent_match_sequential_answers.
# W5. A pooled keep-alive connection the model server closed can fail on reuse
#     (bentoml/BentoML#4971): inference is idempotent, retry once (`call_model`).
# W6. An exception raised in an API method becomes BentoML's own body (`{"error": ...}`, or a
#     one-element list for 4xx BentoMLExceptions; no upstream issue found). -> API methods
#     return the project's error response, which BentoML sends as it is (`error_answer`).
# W7. BentoML's index page (`/`) loads Google Tag Manager and its `/docs.json` is not valid
#     OpenAPI (`"type": "file"`, its own error schemas; no upstream issue found). ->
#     artist_id.api serves `/docs`, `/docs.json` and `/` (mounted routes are matched before
#     BentoML's own), reusing the Swagger UI files BentoML bundles under /static_content/.
#     Tests: test_the_docs_page_loads_nothing_from_another_host, test_a_browser_renders_...
# W8. The traffic timeout answers 504 in BentoML's own form (`{"error": "Not able to process
#     the request in 60 seconds"}`, no `detail`, no code; TimeoutMiddleware, no upstream issue
#     found), outside every middleware of the service. -> The guard answers an upload not
#     begun `REQUEST_TIMEOUT_MARGIN_S` before it with 504 `processing_timeout` in the API's
#     form (GuardSettings.request_timeout_s).
#     Tests: test_an_answer_past_the_request_timeout_is_a_504_in_the_error_form (fake app),
#     test_an_upload_past_the_request_timeout_gets_the_api_504_and_the_next_is_answered.

RUNNER_CONNECTION = {"max_requests": 2**31 - 1, "max_age": 10.0**9}  # W4
GUARD = api.GuardSettings()  # W1-W3, W8: filled from the packaged limits by ArtistID.__init__


async def call_model(service: Any, batch: np.ndarray) -> np.ndarray:  # W5
    import aiohttp

    try:
        result = await service.to_async.classify(batch)
    except aiohttp.ClientConnectionError:
        log.warning("connection to the model service lost; retrying once")
        result = await service.to_async.classify(batch)
    return np.asarray(result, dtype=np.float32)


def error_answer(exc: api.RequestError) -> Response:  # W6
    """The project's error response, returned (not raised) from an API method."""
    return exc.response()


# ============================================================================ model services


@bentoml.service(
    name="artist_id_model",
    workers=1,
    threads=1,
    traffic={"timeout": REQUEST_TIMEOUT_S},
    runner_connection=RUNNER_CONNECTION,
)
class ArtistModel:
    """The artist and genre models behind one batchable API; internal (reached only by
    :class:`ArtistID`). One call runs both on the same batch: adaptive batching covers both."""

    bento_model = BentoModel(MODEL_TAG)
    genre_bento_model = BentoModel(GENRE_TAG)

    def __init__(self) -> None:
        from artist_id.models import load_model, shared_trunk_model

        check_pair(str(self.bento_model.tag), str(self.genre_bento_model.tag))
        self.meta = load_metadata(self.bento_model.path_of(METADATA_FILE))
        self.genre_meta = load_genre_metadata(self.genre_bento_model.path_of(GENRE_METADATA_FILE))
        size = self.meta.image_size
        self.model = load_model(
            self.bento_model.path_of(MODEL_FILE),
            image_size=size,
            num_classes=len(self.meta.classes),
        )
        self.genre_model = load_model(
            self.genre_bento_model.path_of(MODEL_FILE),
            image_size=size,
            num_classes=len(self.genre_meta.genres),
        )
        # style_stats and the genre model share their trunk: one pass serves both
        self.both = shared_trunk_model(self.model, self.genre_model)
        # Trace the predict function now, not on the first requests: Keras retraces once for
        # a second batch size, then generalises to any batch size.
        for n in (1, 2):
            self.classify(np.zeros((n, size, size, 3), dtype=np.uint8))
        log.info(
            "loaded %s (%s, %d px) from %s; genre model %s (%s)",
            self.bento_model.tag,
            self.meta.model,
            size,
            self.bento_model.path,
            self.genre_bento_model.tag,
            "one trunk pass for both" if self.both is not None else "its own trunk pass",
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=10_000)
    def classify(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB images ``(n, size, size, 3)`` -> float32 ``(n, classes + genres)``: the
        artist model's softmax, then the genre model's sigmoids (one array: one batch)."""
        size = self.meta.image_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected uint8 (n, {size}, {size}, 3), got {batch.dtype} {batch.shape}"
            )
        x = batch.astype(np.float32)
        if self.both is not None:
            artists, genres = self.both.predict_on_batch(x)
        else:
            artists = self.model.predict_on_batch(x)
            genres = self.genre_model.predict_on_batch(x)
        return np.concatenate(
            [np.asarray(artists, dtype=np.float32), np.asarray(genres, dtype=np.float32)], axis=1
        )


def check_pair(artist_tag: str, genre_tag: str) -> None:
    """The artist and genre models must be the pair the package stage built (same version)."""
    if artist_tag.partition(":")[2] != genre_tag.partition(":")[2]:
        raise RuntimeError(
            f"{artist_tag} and {genre_tag} were not packaged together (versions differ): "
            "import both files of one `dvc repro package` run (make bento), or set "
            "ARTIST_ID_MODEL_TAG and ARTIST_ID_GENRE_MODEL_TAG to one version"
        )


@bentoml.service(
    name="artist_id_explainer",
    workers=1,
    threads=1,
    traffic={"timeout": REQUEST_TIMEOUT_S},
    runner_connection=RUNNER_CONNECTION,
)
class ArtistExplainer:
    """Heat maps of where the model looked; internal (reached only by :class:`ArtistID`)."""

    bento_model = BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import tensorflow as tf

        from artist_id.explain import Explainer
        from artist_id.models import load_model

        try:  # possible only before TensorFlow runs its first op (true in its own process)
            tf.config.threading.set_intra_op_parallelism_threads(EXPLAIN_THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(EXPLAIN_THREADS)
        except RuntimeError:
            log.info("TensorFlow already started in this process: explainer threads not capped")
        meta = load_metadata(self.bento_model.path_of(METADATA_FILE))
        size = meta.image_size
        model = load_model(
            self.bento_model.path_of(MODEL_FILE), image_size=size, num_classes=len(meta.classes)
        )
        self.explainer = Explainer(model)
        for n in (1, 2):  # trace the gradient pass now, not on the first requests
            self.explainer.explain_array(np.zeros((n, size, size, 3), dtype=np.uint8))
        log.info("explainer ready: %s on %s", self.explainer.method, self.explainer.layers)

    @bentoml.api(batchable=True, max_batch_size=EXPLAIN_MAX_BATCH, max_latency_ms=10_000)
    def explain(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB images ``(n, size, size, 3)`` -> packed ExplanationBatch rows."""
        size = self.explainer.size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected uint8 (n, {size}, {size}, 3), got {batch.dtype} {batch.shape}"
            )
        return self.explainer.explain_array(batch)

    @bentoml.api
    def describe(self) -> dict[str, Any]:
        """Method, layers and sizes: what unpacking :meth:`explain`'s rows needs."""
        return self.explainer.describe()


# ============================================================================ entry service


@bentoml.service(
    name="artist_id",
    workers=1,
    # No max_concurrency here (W3): the guard admits at most api.MAX_CONCURRENCY requests
    # whose body has arrived and answers 429 beyond; bodies are capped and time-limited.
    traffic={"timeout": REQUEST_TIMEOUT_S},
    labels={"project": "artist-id", "owner": "artist-id"},
)
class ArtistID(Predictor):
    """Which artist painted this picture? ``POST /predict``, ``POST /predict_batch``."""

    bento_model = BentoModel(MODEL_TAG)
    genre_bento_model = BentoModel(GENRE_TAG)
    model_service = bentoml.depends(ArtistModel)
    explainer_service = bentoml.depends(ArtistExplainer)

    def __init__(self) -> None:
        tag, genre_tag = str(self.bento_model.tag), str(self.genre_bento_model.tag)
        check_pair(tag, genre_tag)
        meta = load_metadata(self.bento_model.path_of(METADATA_FILE))
        genre_meta = load_genre_metadata(self.genre_bento_model.path_of(GENRE_METADATA_FILE))
        self.setup(meta, tag, genre_meta, genre_tag, scaled_decode=not FULL_DECODE)
        limits = meta.limits
        GUARD.max_request_bytes = limits.max_request_bytes
        GUARD.read_timeout_s = limits.read_timeout_s
        GUARD.request_timeout_s = REQUEST_TIMEOUT_S - REQUEST_TIMEOUT_MARGIN_S
        GUARD.max_images = limits.max_images
        GUARD.max_top_k = len(meta.classes)
        log.info(
            "serving %s: %d classes, unknown below p=%.3f; %s: %d genres%s",
            self.tag,
            len(meta.classes),
            meta.unknown.threshold,
            genre_tag,
            len(genre_meta.genres),
            " (FULL_DECODE: benchmark baseline)" if FULL_DECODE else "",
        )

    async def classify(self, batch: np.ndarray) -> np.ndarray:
        # A RemoteProxy under `bentoml serve` (adaptive batching happens there), a local
        # ArtistModel instance in-process; both expose to_async.
        return await call_model(self.model_service, batch)

    async def explain_packed(self, batch: np.ndarray) -> np.ndarray:
        result = await self.explainer_service.to_async.explain(batch)
        return np.asarray(result, dtype=np.float32)

    async def describe_explainer(self) -> dict[str, Any]:
        return dict(await self.explainer_service.to_async.describe())

    async def _answer(self, paths: list[Path], top_k: int | None) -> list[api.Answer] | Response:
        try:
            return await self.predict_files(paths, top_k)
        except api.RequestError as exc:
            log.info("refused: %s %s (%s)", exc.status, exc.error, exc.detail)
            return error_answer(exc)
        except Exception:
            log.exception("unexpected error")
            return error_answer(
                api.RequestError("internal_error", "an unexpected error occurred; see the log")
            )

    @bentoml.api(route=api.PREDICT.path)
    async def predict(self, image: Path, top_k: TopK = None) -> api.Answer:
        """Which artist painted this image? The best guess (or unknown), the top k, the genres."""
        answers = await self._answer([image], top_k)
        # W6: an error is a Response, which BentoML sends as it is.
        return answers[0] if isinstance(answers, list) else answers  # type: ignore[return-value]

    @bentoml.api(route=api.PREDICT_BATCH.path)
    async def predict_batch(self, images: list[Path], top_k: TopK = None) -> list[api.Answer]:
        """Several images in one request: one answer per image, in order."""
        if len(images) > GUARD.max_images:  # the guard refuses it first over HTTP
            return error_answer(api.too_many_images(api.PREDICT_BATCH, GUARD))  # type: ignore[return-value]
        return await self._answer(images, top_k)  # type: ignore[return-value]

    @bentoml.api(route=api.EXPLAIN.path)
    async def explain(
        self, image: Path, ctx: bentoml.Context, top_k: TopK = None
    ) -> api.ExplainedAnswer:
        """The answer of /predict plus where the model looked: a heat map over the picture
        (base64 PNG in JSON, or the PNG itself with ``Accept: image/png``)."""
        try:
            answer, png = await self.explain_file(image, top_k)
        except Exception as exc:
            if isinstance(exc, api.RequestError):
                log.info("refused: %s %s (%s)", exc.status, exc.error, exc.detail)
                error = exc
            else:
                log.exception("unexpected error")
                error = api.RequestError("internal_error", "an unexpected error occurred")
            # With a Context parameter BentoML sends ctx.response's status, not the Response's.
            ctx.response.status_code = error.status
            if error.status == 429:
                ctx.response.metadata["Retry-After"] = "5"
            return error_answer(error)  # type: ignore[return-value]
        if api.wants_png(ctx.request.headers.get("accept", "")):
            ex = answer.explanation
            return Response(  # type: ignore[return-value]
                png,
                media_type="image/png",
                headers={
                    "X-Explained-Artist": quote(ex.artist),  # percent-encoded UTF-8
                    "X-Explanation-Method": ex.method,
                    "X-Explanation-Layer": ex.layer,
                },
            )
        answer.explanation.image = api.OverlayImage(
            media_type="image/png",
            width=OVERLAY_SIZE,
            height=OVERLAY_SIZE,
            base64=base64.b64encode(png).decode("ascii"),
        )
        return answer


def _current() -> ArtistID:
    service: ArtistID = bentoml.get_current_service()
    return service


def _openapi() -> dict[str, Any]:
    service = _current()
    return api.openapi_document(
        GUARD,
        title="artist-id",
        version=service.tag.partition(":")[2],
        description=(
            "Which artist painted this picture? Upload a painting (JPEG, PNG or WEBP) to "
            "`/predict`; every error is JSON `{error, detail}` with the status listed per route. "
            "Health: `/livez`, `/readyz`."
        ),
    )


# The HTTP layer (artist_id.api) around the entry service: its routes and the guard (W1-W3, W7).
# `bentoml.service` returns a bentoml Service wrapping the class; its type stubs say the class.
_entry: Any = ArtistID
_entry.mount_asgi_app(api.make_app(lambda: _current().metadata(), _openapi), path="/")
_entry.add_asgi_middleware(api.RequestGuard, settings=GUARD)
