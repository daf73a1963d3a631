"""Benchmark: the compiled Gatys step (``tf.function``) vs a plain eager GradientTape loop.

Same trunk, same photo and painting, same size, same process: scikit-learn's ``china.jpg``
as the content and its ``flower.jpg`` as the "painting" (so it runs on a fresh clone, before
any pipeline stage), with the backbone, weights, layers and loss weights of ``params.yaml``'s
``style`` section. Both loops do the same Adam update (the eager one calls the very method
the compiled one wraps). The two loops alternate in rounds (each round restarts from the
photo), so a change in machine load hits both; medians over the rounds are compared. Prints
seconds per iteration of each and the speed-up:

    .venv/bin/python bench/style.py [--size 192] [--rounds 6] [--iterations 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np

from artist_id import style
from artist_id.config import load_params
from artist_id.seeding import seed_everything
from artist_id.stage import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="default: style.image_size")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=5, help="per loop and round")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("artist_id").setLevel(logging.WARNING)

    params = load_params()
    sp = params.style
    size = args.size or sp.image_size
    seed_everything(params.base.seed)
    content = style.prepare_content(style.sample_photo("china.jpg"), size)
    h, w = content.shape[:2]
    painting = style.prepare_style(style.sample_photo("flower.jpg"), w, h)
    vgg = style.build_vgg(sp.backbone, sp.weights)
    extractor = style.build_extractor(vgg, [*sp.style_layers, sp.content_layer])
    weights = style.LossWeights(sp.content_weight, sp.style_weight, sp.tv_weight)
    problem = style.Gatys(
        extractor, len(sp.style_layers), weights, (h, w), learning_rate=sp.learning_rate
    )
    print(
        f"{sp.backbone} ({sp.weights}) at {w}x{h} px, {len(sp.style_layers)} style layers + "
        f"{sp.content_layer}; {args.rounds} rounds of {args.iterations} Adam iterations per "
        f"loop after {args.warmup} warm-up; load average {os.getloadavg()[0]:.1f}"
    )
    loops = {"eager GradientTape loop": problem.step, "compiled tf.function": problem.compiled_step}
    problem.reset(content, painting)
    for step in loops.values():  # tracing and first-call costs are not per iteration
        for _ in range(args.warmup):
            step()
    seconds: dict[str, list[float]] = {label: [] for label in loops}
    finals: dict[str, float] = {}
    for _ in range(args.rounds):
        for label, step in loops.items():
            problem.reset(content, painting)
            start = time.perf_counter()
            for _ in range(args.iterations):
                losses = step()
            seconds[label].append((time.perf_counter() - start) / args.iterations)
            finals[label] = float(np.asarray(losses)[0])
    medians = {label: float(np.median(v)) for label, v in seconds.items()}
    for label, median in medians.items():
        print(
            f"  {label:26s} {median:.3f} s/iteration (median; rounds "
            f"{min(seconds[label]):.3f}-{max(seconds[label]):.3f})   "
            f"loss after {args.iterations}: {finals[label]:.5g}"
        )
    eager, compiled = medians.values()
    print(f"speed-up of the compiled step: {eager / compiled:.1f}x (target >= 2x)")
    a, b = finals.values()
    if not np.isclose(a, b, rtol=1e-3):
        print(f"warning: the two loops ended at different losses ({a:.6g} vs {b:.6g})")


if __name__ == "__main__":
    main()
