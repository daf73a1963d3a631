"""Benchmark: the BentoML service against one-image-at-a-time ``model.predict`` in one process.

In the same run:

* baseline: one process decodes each image (``images.decode_bytes`` + ``fit_square``, like the
  service) and calls ``model.predict`` on it alone, sequentially, for the artist model and
  the genre model (the service answers both); also timed without the
  decode (``predict only``) and with ``predict_on_batch`` (the call the service makes, minus
  the batching);
* service: ``bentoml serve`` of the packaged model on a free port (its own BENTOML_HOME in a
  temporary directory), then ``POST /predict`` at each concurrency (default 1, 8, 32):
  throughput and p50 / p95 latency, all answers checked to be 200.

Prints a table and the ratios against the baseline. Run after ``dvc repro package``:

    .venv/bin/python bench/serve.py [--requests 96] [--concurrency 1 8 32]

The images are the real paintings of ../shared/real-sample when present (resized so the longest
side is --max-side px, as an upload from a phone would be), else the pipeline's test images.
Everything runs on the same machine: the client's own CPU use is part of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from artist_id import localserve

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "models" / "bento" / "artist-id.tar"
REAL = REPO.parent / "shared" / "real-sample" / "images" / "images"


def load_images(max_side: int, count: int) -> list[bytes]:
    """JPEG bytes of ``count`` paintings, longest side at most ``max_side``."""
    from PIL import Image

    files = sorted(REAL.glob("*/*.jpg")) or sorted(
        (REPO / "data" / "raw" / "images").rglob("*.jpg")
    )
    if not files:
        raise SystemExit("no images: need ../shared/real-sample or `dvc repro ingest`")
    out = []
    for path in files[:count]:
        with Image.open(path) as src:
            rgb = src.convert("RGB")
        rgb.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ms = np.asarray(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


# ------------------------------------------------------------------------------- baseline


def baseline(
    model_dir: Path, genre_dir: Path, images: list[bytes], repeats: int
) -> dict[str, dict[str, float]]:
    from artist_id import images as im
    from artist_id.models import load_model
    from artist_id.serving_metadata import MODEL_FILE, load_metadata

    meta = load_metadata(model_dir / "artist_id.json")
    artist_model = load_model(model_dir / MODEL_FILE)
    # the service answers the artist AND the genres of every image: so does the baseline
    genre_model = load_model(genre_dir / MODEL_FILE)

    class Both:
        @staticmethod
        def predict(x: np.ndarray, verbose: int = 0) -> None:
            artist_model.predict(x, verbose=verbose)
            genre_model.predict(x, verbose=verbose)

        @staticmethod
        def predict_on_batch(x: np.ndarray) -> None:
            artist_model.predict_on_batch(x)
            genre_model.predict_on_batch(x)

    model = Both()
    limits = im.DecodeLimits(meta.limits.max_bytes, meta.limits.max_pixels, meta.limits.formats)

    def prepare(data: bytes) -> np.ndarray:
        decoded = im.decode_bytes(data, limits)
        square = im.fit_square(decoded.image, meta.image_size)
        return np.asarray(square, dtype=np.float32)[None]

    arrays = [prepare(d) for d in images]
    model.predict(arrays[0], verbose=0)  # warm-up (traces the predict functions)
    model.predict_on_batch(arrays[0])
    runs = {
        # the baseline of the ratios
        "decode + predict": (True, lambda x: model.predict(x, verbose=0)),
        "predict only": (False, lambda x: model.predict(x, verbose=0)),
        # the call the service makes, without batching: separates the gain of skipping
        # predict()'s per-call overhead from the gain of adaptive batching
        "decode + predict_on_batch": (True, model.predict_on_batch),
    }
    results = {}
    for label, (with_decode, call) in runs.items():
        latencies = []
        start = time.perf_counter()
        for i in range(repeats):
            t0 = time.perf_counter()
            x = prepare(images[i % len(images)]) if with_decode else arrays[i % len(arrays)]
            call(x)
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        p50, p95 = percentiles(latencies)
        results[label] = {"rps": repeats / total, "p50": p50, "p95": p95}
    return results


# -------------------------------------------------------------------------------- service


@contextlib.contextmanager
def server(home: Path, log: Path, timeout: float = 300) -> Iterator[str]:
    env = {"BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with localserve.serve("artist_id.service:ArtistID", REPO, log, env, timeout) as srv:
        yield srv.url


async def load_test(
    url: str, images: list[bytes], concurrency: int, requests: int
) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            async with gate:
                t0 = time.perf_counter()
                r = await client.post(
                    "/predict",
                    content=images[i % len(images)],
                    headers={"content-type": "image/jpeg"},
                )
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm-up, one wave
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        total = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{errors} of {requests} requests failed at concurrency {concurrency}")
    p50, p95 = percentiles(latencies)
    return {"rps": requests / total, "p50": p50, "p95": p95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXPORT, help="exported BentoML model")
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency")
    parser.add_argument("--baseline-requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    images = load_images(args.max_side, args.images)
    with tempfile.TemporaryDirectory(prefix="artist-id-bench-") as tmp:
        home = Path(tmp) / "bentoml"
        os.environ["BENTOML_HOME"] = str(home)  # before the first use of BentoML's store
        os.environ["BENTOML_DO_NOT_TRACK"] = "true"
        import bentoml

        from artist_id.packaging import GENRE_EXPORT_NAME, import_bento_model, import_with_genre

        tag = import_with_genre(args.export)  # + artist-id-genre.tar beside it
        model_dir = Path(bentoml.models.get(tag).path)
        genre_tag = import_bento_model(args.export.with_name(GENRE_EXPORT_NAME))  # already in
        genre_dir = Path(bentoml.models.get(genre_tag).path)
        print(
            f"model {tag}, {len(images)} paintings (JPEG, longest side <= {args.max_side} px, "
            f"mean {np.mean([len(i) for i in images]) / 1024:.0f} KiB), "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )

        base = baseline(model_dir, genre_dir, images, args.baseline_requests)
        service = {}
        log = Path(tmp) / "serve.log"
        try:
            with server(home, log) as url:
                for c in args.concurrency:
                    service[c] = asyncio.run(load_test(url, images, c, args.requests))
        except RuntimeError:
            shutil.copy(log, Path(tempfile.gettempdir()) / "artist-id-bench-serve.log")
            print(f"server log kept at {tempfile.gettempdir()}/artist-id-bench-serve.log")
            raise

    ref = base["decode + predict"]
    print()
    print(
        f"{'setup':34s} {'req/s':>8s} {'p50 ms':>9s} {'p95 ms':>9s} "
        f"{'throughput x':>13s} {'p50 x':>7s}"
    )
    for label, r in base.items():
        print(
            f"{'baseline: ' + label:34s} {r['rps']:8.2f} {r['p50']:9.1f} {r['p95']:9.1f} "
            f"{r['rps'] / ref['rps']:13.2f} {r['p50'] / ref['p50']:7.2f}"
        )
    for c, r in service.items():
        print(
            f"{f'service /predict, concurrency {c}':34s} {r['rps']:8.2f} {r['p50']:9.1f} "
            f"{r['p95']:9.1f} {r['rps'] / ref['rps']:13.2f} {r['p50'] / ref['p50']:7.2f}"
        )
    print(
        "\nratios against the baseline 'decode + predict' (sequential model.predict, one image "
        "at a time, one process): throughput x = req/s / baseline req/s; p50 x = p50 / "
        "baseline p50"
    )


if __name__ == "__main__":
    main()
