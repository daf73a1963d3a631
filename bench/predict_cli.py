"""Benchmark: ``artist-id predict`` on a folder of real paintings against a naive loop.

In the same run, on the same files and the same loaded model (the packaged one,
``models/bento/artist-id.tar``):

* naive: for each file, ``images.decode_file`` + ``fit_square`` + ``model.predict`` on that
  one image, sequentially (what a first script would do);
* command: the library path of ``artist-id predict`` (:func:`artist_id.batch.predict_items`:
  decoding threads overlapping batched ``predict_on_batch``, CSV written to memory);
* end to end: the installed command itself in a subprocess (start-up and model loading
  included), for reference.

Prints images per second and the ratio command / naive. Run after ``dvc repro package``:

    .venv/bin/python bench/predict_cli.py [--folder ../shared/real-dev/images] [--limit 300]

The default folder is ``../shared/real-sample/images`` (full-size paintings); real-dev holds
about 900 paintings re-encoded to at most 512 px.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "real-sample" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--limit", type=int, default=0, help="at most this many files (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=2, help="best of N timed passes")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.chdir(REPO)

    from artist_id import batch, images

    if not args.folder.is_dir():
        raise SystemExit(f"{args.folder} not found (../shared/real-sample or real-dev)")
    items, _ = batch.collect([args.folder])
    if args.limit:
        items = items[: args.limit]
    packaged = batch.load_packaged()
    size = packaged.image_size
    print(
        f"{len(items)} files from {args.folder}; model {packaged.tag} ({size} px); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    # Warm up both paths (tf.function tracing for batch 1 and for a full batch).
    packaged.model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)
    packaged.predict(np.zeros((min(args.batch_size, len(items)), size, size, 3), np.uint8))

    def naive() -> int:
        answered = 0
        for item in items:
            try:
                decoded = images.decode_file(item.path, packaged.limits)
            except images.ImageError:
                continue
            x = np.asarray(images.fit_square(decoded.image, size), np.float32)[None]
            packaged.model.predict(x, verbose=0)
            answered += 1
        return answered

    def command() -> int:
        stream = io.StringIO()
        writer = batch.CsvWriter(stream, packaged.default_top_k)
        answered = 0
        for result in batch.predict_items(items, packaged, args.batch_size, args.workers):
            writer.write(result, packaged)
            answered += result.error is None
        return answered

    def best(fn: object) -> tuple[float, int]:
        times = []
        answered = 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            answered = fn()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times), answered

    t_naive, n_naive = best(naive)
    t_cmd, n_cmd = best(command)
    assert n_naive == n_cmd, (n_naive, n_cmd)

    start = time.perf_counter()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "artist-id"),
            "predict",
            *(str(i.path) for i in items),
            "--quiet",
            "--no-progress",
            "--batch-size",
            str(args.batch_size),
            "--workers",
            str(args.workers),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    t_e2e = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"artist-id predict failed ({proc.returncode}): {proc.stderr[-2000:]}")

    print(f"{'path':<44}{'seconds':>9}{'images/s':>10}")
    naive_label = "naive loop (decode + predict, one by one)"
    print(f"{naive_label:<44}{t_naive:>9.2f}{n_naive / t_naive:>10.1f}")
    print(f"{'artist-id predict (library path)':<44}{t_cmd:>9.2f}{n_cmd / t_cmd:>10.1f}")
    print(
        f"{'artist-id predict (subprocess, with start-up)':<44}{t_e2e:>9.2f}{n_cmd / t_e2e:>10.1f}"
    )
    print(f"ratio command / naive: {t_naive / t_cmd:.2f}x images/s ({n_cmd} images answered)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
