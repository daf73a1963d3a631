"""Benchmark: frozen-trunk training with the feature cache vs the naive loop.

For the frozen ``vgg16`` on the processed sample at the default image size, trains
``--epochs`` epochs twice in the same process (same seed, early stopping disabled):

* naive:  ``model.fit`` on images, the frozen trunk runs forward on every batch, every epoch;
* cached: trunk features computed once per image, then ``head.fit`` on the features.

Prints both wall times and the speed-up ratio. Run after ``dvc repro augment``:

    .venv/bin/python bench/train_cache.py [--epochs 10] [--model vgg16]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from artist_id.config import load_params
from artist_id.seeding import seed_everything
from artist_id.stage import read_json, setup_logging
from artist_id.training import load_split, train_model

PROCESSED = Path("data/processed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model", default="vgg16")
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("artist_id").setLevel(logging.WARNING)

    params = load_params()
    # a patience above the epoch count: both runs do exactly --epochs epochs
    mp = dataclasses.replace(
        params.train.model(args.model), epochs=args.epochs, patience=args.epochs + 1
    )
    tp = dataclasses.replace(params.train, **{args.model: mp})
    classes = read_json(PROCESSED / "classes.json")["classes"]
    train = load_split(PROCESSED / "train" / "index.csv")
    val = load_split(PROCESSED / "val" / "index.csv")
    weights = tp.model(args.model).weights
    print(
        f"{args.model}: {len(train.labels)} train / {len(val.labels)} val images at "
        f"{train.image_size} px, {args.epochs} epochs, weights={weights}"
    )

    times = {}
    for label, cache in (
        ("naive (trunk forward every epoch)", False),
        ("feature cache (trunk once)", True),
    ):
        seed_everything(params.base.seed)
        start = time.perf_counter()
        result = train_model(
            args.model,
            tp,
            train,
            val,
            len(classes),
            None,
            seed=params.base.seed,
            verbose=0,
            use_cache=cache,
        )
        times[cache] = time.perf_counter() - start
        acc = max(result.history["val_accuracy"])
        print(f"  {label:36s} {times[cache]:7.1f} s   best val_accuracy {acc:.3f}")
    print(f"speed-up of the feature cache: {times[False] / times[True]:.1f}x")


if __name__ == "__main__":
    main()
