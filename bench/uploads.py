"""Benchmark: large uploads, decoded at the model's scale under a pixel budget vs at full size.

Serves the packaged model twice, one server after the other, with the same code:

* baseline: ``ARTIST_ID_FULL_DECODE=1``, the decode path before issue 13 (every upload decoded
  at full size, colour-converted and cropped at full size, at most two at once, no budget);
* current: the default (JPEG draft mode, block averaging before colour conversion, the
  ``package.pixel_budget`` bound on pixels being decoded at once).

For each server it measures ``POST /predict`` latency on a 4,000 px JPEG (sequential requests
after a warm-up) and the RSS of the entry worker (the process that decodes) before, at its peak
during rounds of 8 concurrent 36-megapixel uploads (PNG, then JPEG), and after them. Prints a
table, the p50 ratio (goal: at least 3x faster) and the peak RSS (goal: under 1 GB).

    .venv/bin/python bench/uploads.py [--export models/bento/artist-id.tar] [--requests 20]

Everything runs on this machine, the client included; quote ``uptime``'s load with the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from artist_id import localserve

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "models" / "bento" / "artist-id.tar"
REAL = REPO.parent / "shared" / "real-sample" / "images" / "images"
MB = 1024 * 1024


def painting_4000px() -> bytes:
    """A 4,000 x 3,000 JPEG: a real painting upscaled when ../shared is there, else texture."""
    from PIL import Image

    files = sorted(REAL.glob("*/*.jpg"))
    if files:
        with Image.open(max(files, key=lambda p: p.stat().st_size)) as src:
            img = src.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    else:
        rng = np.random.default_rng(0)
        coarse = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def megapixels_36(fmt: str) -> bytes:
    """A 6,000 x 6,000 image (36 MP, under the default 40 MP cap and 10 MB byte cap)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    resample = Image.Resampling.NEAREST if fmt == "PNG" else Image.Resampling.BICUBIC
    img = Image.fromarray(coarse).resize((6000, 6000), resample)
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def entry_worker(server: localserve.Server) -> object:
    """The psutil.Process of the entry service's worker (it decodes the uploads)."""
    found = localserve.service_workers(server)
    if "artist_id" not in found:
        raise RuntimeError(f"entry worker process not found among {sorted(found)}")
    return found["artist_id"]


class PeakRSS:
    """Samples a process's RSS every 20 ms in a thread; ``peak`` in bytes."""

    def __init__(self, proc: object) -> None:
        self.proc = proc
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)  # type: ignore[attr-defined]
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def concurrent_uploads(url: str, data: bytes, n: int) -> list[int]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one() -> int:
            r = await client.post("/predict", files={"image": ("big", data)})
            return r.status_code

        return list(await asyncio.gather(*(one() for _ in range(n))))


def measure(
    url: str, proc: object, jpeg_4k: bytes, big: dict[str, bytes], requests: int, rounds: int
) -> dict[str, float]:
    import httpx

    rss = proc.memory_info().rss  # type: ignore[attr-defined]
    out: dict[str, float] = {"rss_start": rss / MB}
    with httpx.Client(base_url=url, timeout=300) as client:
        for _ in range(3):  # warm-up
            assert client.post("/predict", files={"image": ("p", jpeg_4k)}).status_code == 200
        latencies = []
        for _ in range(requests):
            t0 = time.perf_counter()
            r = client.post("/predict", files={"image": ("p", jpeg_4k)})
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    out["p50_ms"] = float(np.percentile(latencies, 50) * 1000)
    out["p95_ms"] = float(np.percentile(latencies, 95) * 1000)
    for fmt, data in big.items():
        with PeakRSS(proc) as peak:
            t0 = time.perf_counter()
            for _ in range(rounds):
                statuses = asyncio.run(concurrent_uploads(url, data, 8))
                assert statuses == [200] * 8, statuses
            out[f"{fmt}_s_per_round"] = (time.perf_counter() - t0) / rounds
        out[f"rss_peak_{fmt}"] = peak.peak / MB
    time.sleep(5)
    out["rss_after"] = proc.memory_info().rss / MB  # type: ignore[attr-defined]
    return out


@contextlib.contextmanager
def serving(home: Path, log: Path, full_decode: bool) -> Iterator[localserve.Server]:
    env = {"BENTOML_HOME": str(home), "ARTIST_ID_FULL_DECODE": "1" if full_decode else "0"}
    with localserve.serve("artist_id.service:ArtistID", REPO, log, env, 300) as server:
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXPORT, help="exported BentoML model")
    parser.add_argument("--requests", type=int, default=20, help="sequential 4,000 px requests")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 8 concurrent 36 MP")
    args = parser.parse_args()

    jpeg_4k = painting_4000px()
    big = {"png": megapixels_36("PNG"), "jpeg": megapixels_36("JPEG")}
    with tempfile.TemporaryDirectory(prefix="artist-id-bench-") as tmp:
        home = Path(tmp) / "bentoml"
        os.environ["BENTOML_HOME"] = str(home)  # before the first use of BentoML's store
        os.environ["BENTOML_DO_NOT_TRACK"] = "true"
        from artist_id.packaging import import_with_genre

        tag = import_with_genre(args.export)  # + artist-id-genre.tar beside it
        print(
            f"model {tag}; 4,000 px JPEG {len(jpeg_4k) / MB:.1f} MB; 36 MP PNG "
            f"{len(big['png']) / MB:.1f} MB, JPEG {len(big['jpeg']) / MB:.1f} MB; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        results = {}
        for label, full in (("baseline (full decode)", True), ("current", False)):
            log = Path(tmp) / f"serve-{full}.log"
            with serving(home, log, full) as server:
                proc = entry_worker(server)
                results[label] = measure(server.url, proc, jpeg_4k, big, args.requests, args.rounds)
            print(f"  measured {label}; load average {os.getloadavg()[0]:.1f}")

    keys = [
        ("p50_ms", "/predict p50 ms (4,000 px JPEG)"),
        ("p95_ms", "/predict p95 ms"),
        ("rss_start", "entry RSS at start, MB"),
        ("rss_peak_png", "entry RSS peak, 8 x 36 MP PNG, MB"),
        ("rss_peak_jpeg", "entry RSS peak, 8 x 36 MP JPEG, MB"),
        ("rss_after", "entry RSS 5 s after, MB"),
        ("png_s_per_round", "s per round of 8 x 36 MP PNG"),
        ("jpeg_s_per_round", "s per round of 8 x 36 MP JPEG"),
    ]
    base, cur = results["baseline (full decode)"], results["current"]
    print(f"\n{'':40s} {'baseline':>10s} {'current':>10s} {'ratio':>7s}")
    for key, label in keys:
        print(f"{label:40s} {base[key]:10.1f} {cur[key]:10.1f} {base[key] / cur[key]:7.2f}")
    speedup = base["p50_ms"] / cur["p50_ms"]
    peak = max(cur["rss_peak_png"], cur["rss_peak_jpeg"])
    print(
        f"\n/predict p50 on a 4,000 px JPEG: {speedup:.1f}x faster (goal >= 3x): "
        f"{'met' if speedup >= 3 else 'NOT met'}"
    )
    print(
        f"entry worker peak RSS with 8 concurrent 36 MP uploads: {peak:.0f} MB "
        f"(goal < 1024 MB): {'met' if peak < 1024 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
