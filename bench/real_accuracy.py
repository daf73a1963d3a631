"""What costs what on real paintings: heads on stored features, with bootstrap intervals.

Run after ``dvc repro features`` (and, for the pipeline rows, ``dvc repro evaluate``) of a
real-data configuration, e.g. ``../shared/real-dev`` with ``select.min_paintings=100``.
Everything reads the feature store, so each line costs seconds, not a trunk pass:

* the pipeline's own models (``reports/evaluate/<m>/predictions.csv``), those of ``--models``;
* a plain L2 logistic regression (C chosen on validation macro-F1) on the stored
  ``paintings`` taps of the *original* training paintings: channel statistics, the block5
  average, both, the statistics reduced with PCA;
* the same with the augmented copies of ``data/processed/train`` added (do copies help a
  frozen-trunk head?);
* ``--sizes 224 512 768``: the statistics recomputed at other input sizes (the painting's centre
  square at S px, as the pipeline's ``base.image_size=S`` feeds the model: with
  ``ingest.max_side=512``, 512 is about the paintings' own resolution, the square's side being
  their shorter side, and 768 is upsampling), one trunk pass per painting
  and size (cached in ``--cache``), each with a paired bootstrap of its difference to the
  first size (the same test paintings, :func:`artist_id.uncertainty.paired_comparison`);
* ``--covariance block3_conv3``: the statistics with the channel covariance of these layers
  added (``train.style_stats.covariance``; the pipeline's own ``ChannelCovariance``), at the
  run's size or each of ``--sizes``, recomputed (one trunk pass per painting, cached in
  ``--cache``), with a paired bootstrap of its difference to the statistics alone, and with
  ``--curve`` its learning curve too;
* ``--curve``: a learning curve of that regression (a quarter, half, three quarters and all
  of the training paintings, stratified, five draws each; the same validation and test
  paintings) and where a power law fitted to its error, ``1 - F1 = a * n^-b``, puts
  ``--curve-at`` training paintings (e.g. the archive's 1,300 for the three big artists);
* ``--artists``: only these classes of the run's split (e.g. the archive's three big artists
  out of real-dev's five); the pipeline rows are then left out (a five-class model is not a
  three-class one).

Test macro-F1 with a 95 % percentile bootstrap interval over test paintings (2,000 resamples,
:func:`artist_id.uncertainty.bootstrap_intervals`, the intervals the metrics files carry).

    .venv/bin/python bench/real_accuracy.py [--project .] [--models style_stats vgg16]
        [--artists "Edgar Degas" "Pablo Picasso" "Vincent van Gogh"] [--sizes 224 512]
        [--covariance block3_conv3] [--curve [--curve-at 1300]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.optimize import curve_fit
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from artist_id.features import open_features
from artist_id.uncertainty import bootstrap_intervals

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def line(name: str, y: np.ndarray, pred: np.ndarray, val: float | None = None) -> None:
    f1 = f1_score(y, pred, average="macro")
    low, high = bootstrap_intervals(y, pred, metrics=("macro_f1",), n_resamples=2000)["macro_f1"]
    val_text = f"val {val:.3f}" if val is not None else " " * 9
    print(f"  {name:52s} {val_text}  test {f1:.3f} [{low:.3f}, {high:.3f}]", flush=True)


class Data:
    def __init__(self, project: Path, artists: Sequence[str] = ()) -> None:
        split = pd.read_csv(project / "data/processed/split.csv", dtype=str)
        if artists:
            unknown = sorted(set(artists) - set(split["artist"]))
            if unknown:
                raise SystemExit(f"--artists: {unknown} are not in this run's split")
            split = split[split["artist"].isin(artists)]
        self.classes = sorted(split["artist"].unique())
        label = {a: i for i, a in enumerate(self.classes)}
        self.parts = {
            s: split[split["split"] == s].sort_values("image_id") for s in ("train", "val", "test")
        }
        self.y = {s: p["artist"].map(label).to_numpy() for s, p in self.parts.items()}
        self.label = label
        self.project = project
        self.paint = open_features("paintings", project / "data/features")
        self.row_of = {image_id: k for k, image_id in enumerate(self.paint.image_ids)}

    def x(self, split: str, taps: Sequence[str]) -> np.ndarray:
        ids = self.parts[split]["image_id"]
        return self.paint.rows([self.paint.paths[self.row_of[i]] for i in ids], taps)


def logistic(
    data: Data,
    name: str,
    x: dict[str, np.ndarray],
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    pca: int | None = None,
) -> np.ndarray:
    """Fit on train (+ extra rows), choose C on validation, report test; test probabilities."""
    x_train, y_train = x["train"], data.y["train"]
    if extra is not None:
        x_train, y_train = np.vstack([x_train, extra[0]]), np.concatenate([y_train, extra[1]])
    val_f1, model, xs = fit_best(data, x, x_train, y_train, pca)
    proba = np.asarray(model.predict_proba(xs["test"]))
    line(f"{name} (C={model.C:g})", data.y["test"], proba.argmax(1), val_f1)
    return proba


def fit_best(
    data: Data,
    x: dict[str, np.ndarray],
    x_train: np.ndarray,
    y_train: np.ndarray,
    pca: int | None = None,
) -> tuple[float, LogisticRegression, dict[str, np.ndarray]]:
    """The regression with the best validation macro-F1 over C_GRID, and the scaled splits."""
    scaler = StandardScaler().fit(x_train)
    xs = {s: scaler.transform(v) for s, v in x.items()}
    xs["train"] = scaler.transform(x_train)
    if pca:
        reducer = PCA(min(pca, len(x_train) - 1), random_state=0).fit(xs["train"])
        xs = {s: reducer.transform(v) for s, v in xs.items()}
    best: tuple[float, LogisticRegression] | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        model.fit(xs["train"], y_train)
        f1 = float(f1_score(data.y["val"], model.predict(xs["val"]), average="macro"))
        if best is None or f1 > best[0]:
            best = (f1, model)
    assert best is not None
    return best[0], best[1], xs


def learning_curve(
    data: Data,
    x: dict[str, np.ndarray],
    at: int,
    draws: int = 5,
    what: str = "the statistics",
) -> None:
    """Test macro-F1 with fewer training paintings, and a power law's guess at ``at``."""
    y = data.y["train"]
    sizes, means = [], []
    print(f"  learning curve of the regression on {what} (C chosen on validation each time):")
    for fraction in (0.25, 0.5, 0.75, 1.0):
        scores = []
        for seed in range(draws if fraction < 1 else 1):
            keep = np.arange(len(y))
            if fraction < 1:
                keep, _ = train_test_split(keep, train_size=fraction, stratify=y, random_state=seed)
            _, model, xs = fit_best(data, x, x["train"][keep], y[keep])
            scores.append(f1_score(data.y["test"], model.predict(xs["test"]), average="macro"))
        sizes.append(len(keep))
        means.append(float(np.mean(scores)))
        print(
            f"    {len(keep):5d} training paintings: test {means[-1]:.3f} (sd {np.std(scores):.3f})"
        )
    (a, b), cov = curve_fit(
        lambda n, a, b: a * n ** (-b), np.array(sizes, float), 1 - np.array(means), p0=(1, 0.3)
    )
    # The guess's standard error from the fit's covariance (delta method), under the power law.
    grad = np.array([at ** (-b), -a * np.log(at) * at ** (-b)])
    se = float(np.sqrt(grad @ cov @ grad))
    guess = 1 - a * at ** (-b)
    print(
        f"    power law 1 - F1 = {a:.3f} n^-{b:.3f}: {at} training paintings -> {guess:.3f} "
        f"(+- {2 * se:.3f}, two standard errors of the fit; an extrapolation from "
        f"{sizes[-1]}, not a measurement)"
    )


def statistics_at(
    data: Data, size: int, cache: Path, covariance: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The ``paintings`` style taps of every split painting, recomputed at ``size`` px, with
    the ``cov:`` taps of ``covariance`` after them (``style_stats``' order)."""
    from artist_id import images
    from artist_id.features import model_taps, sha256_file, weights_file
    from artist_id.models import build_tap_extractor

    trunk = data.paint.trunk
    taps = data.paint.style_taps
    if covariance:
        layers = [t.partition(":")[2] for t in taps]
        taps = model_taps("style_stats", layers, covariance) or taps
    elif int(trunk["input_size"]) == size == int(trunk["working_size"]):
        return {s: data.x(s, taps) for s in data.parts}  # the run's own: in the store
    manifest = pd.read_csv(data.project / "data/raw/manifest.csv", dtype=str)
    path_of = dict(zip(manifest["image_id"], manifest["path"], strict=True))
    ids = [i for s in ("train", "val", "test") for i in data.parts[s]["image_id"]]
    weights = weights_file(str(trunk["weights"]))
    assert weights is not None, "a random trunk has no stored statistics"
    key = f"{sha256_file(weights)[:12]}-{size}-{'-'.join(taps)}".replace(":", "_")
    file = cache / f"{key}.npz"
    known: dict[str, np.ndarray] = {}
    if file.is_file():
        with np.load(file) as saved:
            known = dict(zip(saved["ids"], saved["x"], strict=True))
    todo = [i for i in ids if i not in known]
    if todo:
        model = build_tap_extractor(str(trunk["weights"]), size, size, taps)
        start = time.perf_counter()
        for k in range(0, len(todo), 4):
            part = todo[k : k + 4]
            batch = np.stack(
                [images.square_array(Image.open(data.project / path_of[i]), size) for i in part]
            ).astype("float32")
            for i, row in zip(part, np.asarray(model(batch, training=False)), strict=True):
                known[i] = row
        seconds = time.perf_counter() - start
        print(f"  ({len(todo)} trunk passes at {size} px: {seconds / len(todo):.3f} s each)")
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(file, ids=np.array(list(known)), x=np.stack(list(known.values())))
    return {s: np.stack([known[i] for i in data.parts[s]["image_id"]]) for s in data.parts}


def compare_sizes(data: Data, sizes: Sequence[int], cache: Path) -> None:
    """Logistic regression on the statistics at each size; paired difference to the first."""
    from artist_id.uncertainty import paired_comparison

    print(f"  statistics at other input sizes ({', '.join(map(str, sizes))} px):")
    first: np.ndarray | None = None
    for size in sizes:
        proba = logistic(
            data, f"LR channel mean/std at {size} px", statistics_at(data, size, cache)
        )
        pred = proba.argmax(1)
        if first is None:
            first = pred
            continue
        c = paired_comparison(data.y["test"], first, pred, metrics=("macro_f1",), n_resamples=2000)
        d = c["macro_f1"]
        print(
            f"    {size} px minus {sizes[0]} px: {d.delta:+.3f} [{d.low:+.3f}, {d.high:+.3f}] "
            f"({d.verdict})"
        )


def compare_covariance(
    data: Data, layers: Sequence[str], size: int, cache: Path, curve_at: int | None
) -> None:
    """The statistics alone and with the covariance of ``layers``, paired, at ``size`` px."""
    from artist_id.uncertainty import paired_comparison

    alone = statistics_at(data, size, cache)
    both = statistics_at(data, size, cache, layers)
    what = f"LR channel mean/std + covariance of {', '.join(layers)} at {size} px"
    first = logistic(data, f"LR channel mean/std at {size} px", alone).argmax(1)
    second = logistic(data, what, both).argmax(1)
    d = paired_comparison(data.y["test"], first, second, metrics=("macro_f1",), n_resamples=2000)[
        "macro_f1"
    ]
    print(f"    with minus without: {d.delta:+.3f} [{d.low:+.3f}, {d.high:+.3f}] ({d.verdict})")
    if curve_at is not None:
        learning_curve(data, both, curve_at, what="the statistics with the covariance")


def pipeline_rows(data: Data, models: Sequence[str]) -> None:
    """The pipeline's own models from their predictions.csv (split, label, predicted, ...)."""
    for m in models:
        file = data.project / "reports/evaluate" / m / "predictions.csv"
        if not file.is_file():
            print(f"  (no {file})")
            continue
        frame = pd.read_csv(file)
        val, test = frame[frame["split"] == "val"], frame[frame["split"] == "test"]
        val_f1 = f1_score(val["label"], val["predicted"], average="macro")
        line(f"pipeline {m}", test["label"].to_numpy(), test["predicted"].to_numpy(), val_f1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path())
    parser.add_argument("--models", nargs="*", default=["style_stats", "vgg16"])
    parser.add_argument("--artists", nargs="*", default=[], help="only these classes")
    parser.add_argument("--sizes", nargs="*", type=int, default=[], help="e.g. 224 512")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "artist-id-real-accuracy",
        help="statistics computed for --sizes (one trunk pass per painting and size)",
    )
    parser.add_argument(
        "--covariance", nargs="*", default=[], help="e.g. block3_conv3: statistics + covariance"
    )
    parser.add_argument("--curve", action="store_true", help="learning curve, extrapolated")
    parser.add_argument("--curve-at", type=int, default=1300, help="training paintings")
    args = parser.parse_args()
    data = Data(args.project, args.artists)
    counts = {s: len(p) for s, p in data.parts.items()}
    print(f"{args.project}: {len(data.classes)} classes, {counts} paintings")
    print(f"  trunk: {dict(data.paint.trunk)}")
    if args.artists:
        print("  (--artists: the pipeline's own models are left out)")
    else:
        pipeline_rows(data, args.models)
    if args.sizes:
        compare_sizes(data, args.sizes, args.cache)
    if args.covariance:
        for size in args.sizes or [int(data.paint.trunk["input_size"])]:
            curve_at = args.curve_at if args.curve else None
            compare_covariance(data, args.covariance, size, args.cache, curve_at)
    stats_taps = data.paint.style_taps
    splits = ("train", "val", "test")
    stats = {s: data.x(s, stats_taps) for s in splits}
    gap = {s: data.x(s, ["gap:block5_pool"]) for s in splits}
    p_stats = logistic(data, "LR channel mean/std (style_stats taps)", stats)
    if args.curve:
        learning_curve(data, stats, args.curve_at)
    p_gap = logistic(data, "LR block5 average (vgg16 taps)", gap)
    logistic(data, "LR both", {s: np.hstack([stats[s], gap[s]]) for s in splits})
    logistic(data, "LR channel mean/std, PCA 128", stats, pca=128)
    line(
        "ensemble LR stats + LR block5 (mean prob.)",
        data.y["test"],
        (p_stats + p_gap).argmax(1),
    )
    train_index = pd.read_csv(args.project / "data/processed/train/index.csv")
    augmented = train_index[train_index["augmented"]]
    if len(augmented):
        store = open_features("style_stats", args.project / "data/features")
        extra = (
            store.rows(list(augmented["path"])),
            augmented["artist"].map(data.label).to_numpy(),
        )
        logistic(data, f"LR channel mean/std + {len(augmented)} augmented copies", stats, extra)


if __name__ == "__main__":
    main()
