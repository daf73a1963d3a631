"""``artist-id``: the command line (``artist-id predict PATH...`` labels paintings offline).

Exit codes of ``predict``: 0 when every file was answered, 1 when some files were bad (each
reported on stderr with its reason, and listed in the output with an ``error``), 2 on usage
errors (bad option, missing path, no model, nothing to label).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

EXIT_OK = 0
EXIT_SOME_BAD = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """artist-id: which artist painted this picture?"""
    # Before TensorFlow is imported: its C++ start-up chatter is not for this command's users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


@main.command()
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--model",
    "model",
    metavar="FILE|TAG",
    default=None,
    help=(
        "The model: an exported model (.tar, as the package stage writes), a .keras file "
        "(class names from --labels or the artist_id.json beside it) or a BentoML model tag. "
        "Default: models/bento/artist-id.tar if it exists, else artist-id:latest from the "
        "BentoML store."
    ),
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Class names for a bare .keras --model: data/processed/classes.json or artist_id.json.",
)
@click.option(
    "--top-k",
    "top_k",
    type=click.IntRange(min=1),
    default=None,
    help="Artists listed per painting, most probable first (default: the package's top_k; "
    "at most the number of classes).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the answers to this file: .csv (one row per painting, top-k as "
    "artist_N/probability_N columns) or .jsonl (one API answer per line). Default: CSV on "
    "standard output.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=1024),
    default=32,
    show_default=True,
    help="Images per model call.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=min(4, os.cpu_count() or 1),
    show_default=True,
    help="Threads decoding images while the model works on the previous batch.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr (default: when stderr is a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr: no per-file reports.")
def predict(
    paths: tuple[Path, ...],
    model: str | None,
    labels: Path | None,
    top_k: int | None,
    out: Path | None,
    batch_size: int,
    workers: int,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Label paintings: files, folders (recursively) and .zip archives.

    Every picture is decoded by the same safe decoder as the pipeline and the service (byte
    and pixel caps, JPEG/PNG/WEBP only, EXIF orientation); a file that cannot be used is
    reported with its reason and counted, never fatal. Works without a server.

    \b
    Examples:
      artist-id predict painting.jpg
      artist-id predict ../shared/real-sample/images --out predictions.csv
      artist-id predict scans.zip --top-k 1 --out answers.jsonl
    """
    from tqdm import tqdm

    from artist_id import batch

    suffix = out.suffix.lower() if out is not None else ".csv"
    if suffix not in batch.WRITERS:
        raise click.BadParameter(
            f"{out}: the output must end in .csv or .jsonl", param_hint="--out"
        )
    items, refused = batch.collect(list(paths))
    if not items and not refused:
        raise click.UsageError(
            "no pictures found in "
            + ", ".join(map(str, paths))
            + " (looked for "
            + ", ".join(sorted(batch.IMAGE_SUFFIXES))
            + " files and .zip archives)"
        )
    try:
        packaged = batch.load_packaged(model, labels)
    except batch.BatchError as exc:
        raise click.UsageError(str(exc)) from None
    n_classes = len(packaged.classes)
    k = top_k if top_k is not None else packaged.default_top_k
    if k > n_classes:
        raise click.BadParameter(
            f"{k} is more than the model's {n_classes} classes", param_hint="--top-k"
        )
    show = sys.stderr.isatty() if progress is None else progress
    if not quiet:
        click.echo(
            f"model {packaged.tag} ({n_classes} artists) from {packaged.source}; "
            f"{len(items) + len(refused)} file(s)",
            err=True,
        )

    start = time.perf_counter()
    results = list(refused)
    with (
        batch.open_output(out, sys.stdout) as stream,
        tqdm(
            total=len(items) + len(refused),
            unit="img",
            desc="predict",
            file=sys.stderr,
            disable=not show,
            dynamic_ncols=True,
        ) as bar,
    ):
        writer = batch.WRITERS[suffix](stream, k)

        def emit(result: batch.Result) -> None:
            writer.write(result, packaged)
            if result.error is not None and not quiet:
                bar.write(
                    f"bad: {result.item.name}: {result.error.reason}: {result.error}",
                    file=sys.stderr,
                )
            bar.update(1)

        for result in refused:
            emit(result)
        for result in batch.predict_items(items, packaged, batch_size, workers):
            results.append(result)
            emit(result)
    elapsed = time.perf_counter() - start

    reasons = batch.count_reasons(results)
    bad = sum(reasons.values())
    answered = len(results) - bad
    if not quiet:
        detail = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
        rate = answered / elapsed if elapsed > 0 else 0.0
        click.echo(
            f"answered {answered} of {len(results)} file(s)"
            + (f"; {bad} bad ({detail})" if bad else "")
            + f" in {elapsed:.1f} s ({rate:.1f} images/s)"
            + (f" -> {out}" if out is not None else ""),
            err=True,
        )
    sys.exit(EXIT_SOME_BAD if bad else EXIT_OK)


if __name__ == "__main__":
    main()
