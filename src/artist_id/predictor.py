"""The entry service's logic, without BentoML: uploads -> model input, probabilities -> answers.

:class:`Predictor` decodes each upload with :mod:`artist_id.images` (caps, allowlist, EXIF,
RGB) at the scale the model needs (JPEG draft mode; block averaging for other formats), crops
and resizes it to the model's input, asks :meth:`Predictor.classify` (the model service, in
:mod:`artist_id.service`) for probabilities and builds the :class:`~artist_id.api.Answer` of
each image. :class:`PixelBudget` bounds the pixels being decoded at once across all requests,
so that memory is bounded by the budget, not by the number of concurrent uploads.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from artist_id import explain, images
from artist_id.api import (
    Answer,
    ArtistScore,
    ExplainedAnswer,
    Explanation,
    GenreScore,
    ModelRef,
    RequestError,
    top_k_error,
)
from artist_id.genre_serving import GenreMetadata, genres_answer, genres_metadata
from artist_id.serving_metadata import ServingMetadata

log = logging.getLogger("artist_id.predictor")

DECODE_THREADS = 2  # decodes run at once at most (CPU-bound; more threads only add memory)
DECODE_MARGIN = 2
"""Images are decoded with their shorter side at least this many times the model's input, so
that the final LANCZOS resize still has real detail to filter (as from a full decode)."""

# /explain: a backward pass costs several predictions, so it has its own budget.
EXPLAIN_MAX_IN_FLIGHT = 2  # explanations computed at once (beyond: wait, then 429)
EXPLAIN_QUEUE_SECONDS = 10.0  # wait for a free slot at most this long, then 429
EXPLAIN_TIMEOUT = 30.0  # seconds for one explanation once admitted, then 504


class PixelBudget:
    """At most ``capacity`` pixels held by decodes at once; first come, first served.

    A request for more than the whole capacity waits until nothing else is held, then runs
    alone (the per-image pixel cap keeps such requests out in the service).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.held = 0
        self.peak = 0
        self._waiting: collections.deque[tuple[int, anyio.Event]] = collections.deque()

    def _fits(self, pixels: int) -> bool:
        return self.held == 0 or self.held + pixels <= self.capacity

    def _wake(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            pixels, event = self._waiting.popleft()
            self._take(pixels)
            event.set()

    def _take(self, pixels: int) -> None:
        self.held += pixels
        self.peak = max(self.peak, self.held)

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget for the duration of the block."""
        if not self._waiting and self._fits(pixels):
            self._take(pixels)
        else:
            entry = (pixels, anyio.Event())
            self._waiting.append(entry)
            try:
                await entry[1].wait()
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                else:  # granted just as it was cancelled: give it back
                    self.held -= pixels
                    self._wake()
                raise
        try:
            yield
        finally:
            self.held -= pixels
            self._wake()


class Predictor:
    """Answers from uploads; subclasses provide :meth:`classify` (the model call)."""

    meta: ServingMetadata
    tag: str
    genre_meta: GenreMetadata
    genre_tag: str

    def setup(
        self,
        meta: ServingMetadata,
        tag: str,
        genre_meta: GenreMetadata,
        genre_tag: str,
        *,
        scaled_decode: bool = True,
    ) -> None:
        """``scaled_decode=False`` decodes every upload at full size with no pixel budget (the
        behaviour before draft mode; kept only as the benchmark's baseline)."""
        self.meta = meta
        self.tag = tag
        self.genre_meta = genre_meta
        self.genre_tag = genre_tag
        self.limits = images.DecodeLimits(
            max_bytes=meta.limits.max_bytes,
            max_pixels=meta.limits.max_pixels,
            formats=meta.limits.formats,
        )
        self.min_side = DECODE_MARGIN * meta.image_size if scaled_decode else None
        self.budget = PixelBudget(meta.limits.pixel_budget if scaled_decode else 2**62)
        self.threads = anyio.CapacityLimiter(DECODE_THREADS)
        self.explain_slots = anyio.Semaphore(EXPLAIN_MAX_IN_FLIGHT)
        self._explain_info: dict[str, Any] | None = None

    async def classify(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    async def explain_packed(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Packed :class:`~artist_id.explain.ExplanationBatch` rows (the explainer service)."""
        raise NotImplementedError

    async def describe_explainer(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """The explainer's ``method`` and ``layers`` (see :meth:`Explainer.describe`)."""
        raise NotImplementedError

    # ---- input

    def top_k(self, value: int | None) -> int:
        n = len(self.meta.classes)
        if value is None:
            return self.meta.default_top_k
        if not 1 <= value <= n:
            raise top_k_error(str(value), n)
        return value

    def _open(self, name: str, path: Path) -> images.PendingDecode:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RequestError("bad_request", f"{name}: the upload cannot be read") from exc
        try:
            return images.open_bytes(data, self.limits, min_side=self.min_side)
        except images.ImageError as exc:
            raise RequestError(exc.reason, f"{name}: {exc}") from None

    def _finish(self, name: str, pending: images.PendingDecode) -> np.ndarray:
        try:
            decoded = pending.decode()
        except images.ImageError as exc:
            raise RequestError(exc.reason, f"{name}: {exc}") from None
        square = images.fit_square(decoded.image, self.meta.image_size)
        return np.asarray(square, dtype=np.uint8)

    async def prepare(self, name: str, path: Path) -> np.ndarray:
        """One upload -> the model's uint8 input, decoded under the pixel budget."""
        pending = await anyio.to_thread.run_sync(self._open, name, path, limiter=self.threads)
        with pending:
            async with self.budget.hold(pending.pixels):
                return await anyio.to_thread.run_sync(
                    self._finish, name, pending, limiter=self.threads
                )

    async def predict_files(self, paths: Sequence[Path], top_k: int | None) -> list[Answer]:
        """Answers for uploaded files, in order. Raises :class:`RequestError` for bad input."""
        k = self.top_k(top_k)
        names = ["image"] if len(paths) == 1 else [f"images[{i}]" for i in range(len(paths))]
        arrays = [await self.prepare(name, path) for name, path in zip(names, paths, strict=True)]
        proba = await self.classify(np.stack(arrays))
        n = len(self.meta.classes)  # the artist probabilities, then the genre probabilities
        return [self.answer(row[:n], k, row[n:]) for row in proba]

    # ---- explanations

    def _open_for_overlay(self, path: Path) -> images.PendingDecode:
        min_side = None if self.min_side is None else max(self.min_side, explain.OVERLAY_SIZE)
        try:
            return images.open_bytes(path.read_bytes(), self.limits, min_side=min_side)
        except (OSError, images.ImageError) as exc:  # it decoded a moment ago
            raise RequestError("decode_error", f"image: {exc}") from None

    def _draw(self, pending: images.PendingDecode, found: explain.Explanation) -> bytes:
        try:
            decoded = pending.decode()
        except images.ImageError as exc:
            raise RequestError(exc.reason, f"image: {exc}") from None
        return explain.png_bytes(explain.overlay(decoded.image, found.heatmap))

    async def overlay_png(self, path: Path, found: explain.Explanation) -> bytes:
        """The heat map over the upload (decoded again, at the overlay's scale, under the
        pixel budget), as PNG."""
        pending = await anyio.to_thread.run_sync(self._open_for_overlay, path, limiter=self.threads)
        with pending:
            async with self.budget.hold(pending.pixels):
                return await anyio.to_thread.run_sync(
                    self._draw, pending, found, limiter=self.threads
                )

    async def explain_file(self, path: Path, top_k: int | None) -> tuple[ExplainedAnswer, bytes]:
        """The answer for one upload plus where the model looked, and the overlay PNG.

        The model input is decoded exactly as for /predict. At most EXPLAIN_MAX_IN_FLIGHT
        explanations run at once: a request waits EXPLAIN_QUEUE_SECONDS for a slot (429 after
        that), then has EXPLAIN_TIMEOUT seconds (504 after that).
        """
        k = self.top_k(top_k)
        batch = (await self.prepare("image", path))[None]
        with anyio.move_on_after(EXPLAIN_QUEUE_SECONDS) as waiting:
            await self.explain_slots.acquire()
        if waiting.cancelled_caught:
            raise RequestError(
                "too_many_requests",
                f"{EXPLAIN_MAX_IN_FLIGHT} explanations are being computed and others wait; "
                "retry in a few seconds (/predict is not affected)",
            )
        try:
            with anyio.fail_after(EXPLAIN_TIMEOUT):
                if self._explain_info is None:
                    self._explain_info = dict(await self.describe_explainer())
                packed = await self.explain_packed(batch)
        except TimeoutError:
            raise RequestError(
                "explain_timeout", f"the explanation took over {EXPLAIN_TIMEOUT:g} s"
            ) from None
        finally:
            self.explain_slots.release()
        info = self._explain_info
        found = explain.ExplanationBatch.unpack(
            packed, len(self.meta.classes), len(info["layers"]), self.meta.image_size
        ).explanations(info["layers"], info["method"])[0]
        png = await self.overlay_png(path, found)
        x, y = found.peak
        # the genres come from the model service (the explainer holds the artist model only)
        genre_proba = (await self.classify(batch))[0][len(self.meta.classes) :]
        answer = ExplainedAnswer(
            **self.answer(found.probabilities, k, genre_proba).model_dump(),
            explanation=Explanation(
                artist=self.meta.classes[found.class_index].artist,
                probability=round(float(found.probabilities[found.class_index]), 6),
                method=found.method,
                layer=found.layer,
                layer_contributions=found.contributions,
                peak={"x": round(x, 4), "y": round(y, 4)},
            ),
        )
        return answer, png

    # ---- output

    def model_ref(self) -> ModelRef:
        return ModelRef(name=self.meta.model, version=self.tag.partition(":")[2], tag=self.tag)

    def answer(self, proba: np.ndarray, k: int, genre_proba: np.ndarray) -> Answer:
        """One answer from one row of artist and one row of genre probabilities."""
        order = np.argsort(-proba, kind="stable")
        best = int(order[0])
        p_best = float(proba[best])
        unknown = p_best < self.meta.unknown.threshold
        top = []
        for i in order[:k]:
            info = self.meta.classes[int(i)]
            top.append(
                ArtistScore(
                    artist=info.artist,
                    probability=round(float(proba[int(i)]), 6),
                    genre=info.genre,
                    nationality=info.nationality,
                    years=info.years,
                )
            )
        return Answer(
            artist=None if unknown else self.meta.classes[best].artist,
            probability=round(p_best, 6),
            unknown=bool(unknown),
            top_k=top,
            # whatever the artist answer, "unknown" included: the genre model also knows the
            # genres of painters the artist model was not trained on
            genres=[GenreScore(**g) for g in genres_answer(genre_proba, self.genre_meta)],
            model=self.model_ref(),
        )

    def metadata(self) -> dict[str, Any]:
        m = self.meta
        return {
            "model": {
                **self.model_ref().model_dump(),
                "image_size": m.image_size,
                "sha256": m.model_sha256,
            },
            "classes": [vars(c) for c in m.classes],
            "metrics": m.metrics,
            "unknown": vars(m.unknown),
            "top_k": {"default": m.default_top_k, "max": len(m.classes)},
            "limits": {**vars(m.limits), "formats": list(m.limits.formats)},
            "provenance": m.provenance,
            "genres": genres_metadata(self.genre_meta, self.genre_tag),
        }
